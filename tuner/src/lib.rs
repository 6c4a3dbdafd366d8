//! sched_hint tuner: tells the scheduler what each process is for.
//!
//! Linux schedulers cannot see whether a task is an audio graph, a compiler or a database.
//! The tuner observes processes (procfs, sysfs), classifies them in a fixed order
//! (exclusions and manual settings, a TOML rule catalog, behaviour heuristics, an optional
//! external classifier), plans a preferred NUMA node for each, and writes the result as a
//! hint: through `/dev/sched_hint` on a patched kernel, or as policy, nice, EEVDF slice and
//! affinity on a stock one.
//!
//! ```text
//! $ tuner once --dry-run
//! PID   COMM          CLASS        NODE  SOURCE     CONF  DECIDED BY            ACTION
//! 812   pipewire      latency      -     rule       0.95  rule:audio-server     new
//! 4711  rustc         batch        -     rule       0.95  rule:compiler         new
//! 5120  python3       interactive  -     heuristic  0.63  heuristic:short-bursts new
//! $ sudo tuner hint set 4711 --class background
//! $ tuner hint get 4711
//! pid 4711: class background node - inherit true source admin ttl none generation 3
//! ```
//!
//! Layout: [`observe`] (what runs, where), [`classify`] (what it is for), [`plan`] (which
//! node), [`apply`] (how the kernel hears it), [`engine`] (one pass and the state between
//! passes), [`daemon`] (the event loop), [`app`] (wiring the configuration into all of
//! them), [`metrics`], [`config`], [`commands`] (the CLI). Imports point one way, down that
//! list's layers: `commands` → `app` → `daemon` → `engine` → `observe`/`classify`/`plan`/
//! `apply` → `config`, `hint`, `uapi` (a test in `tests/it/layers.rs` checks it).

pub mod app;
pub mod apply;
pub mod classify;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod engine;
pub mod error;
pub mod glob;
pub mod hint;
pub mod llm;
pub mod lock;
pub mod metrics;
pub mod observe;
pub mod output;
pub mod plan;
pub mod ratelimit;
pub mod service;
pub mod state;
pub mod sys;
pub mod uapi;

pub use error::Error;
