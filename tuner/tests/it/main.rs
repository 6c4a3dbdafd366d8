//! The tuner's integration tests: one binary, real servers on 127.0.0.1.

mod cli_input;
mod commands;
mod daemon;
mod errors;
mod exit_restore;
mod flood;
mod hostile_names;
mod layers;
mod llm_fault;
mod llm_fault_server;
mod llm_once;
mod llm_real;
mod llm_support;
mod llm_tls;
mod llm_trust;
mod service;
mod serving_roles;
mod serving_rules;
mod support;
mod trust;
mod trust_live;
mod uapi_bindings;
