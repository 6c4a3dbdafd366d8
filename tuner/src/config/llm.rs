//! The validated `[llm]` section: the keys only the LLM classifier needs (`[external]` has the
//! endpoint and timeout). `crate::llm::LlmConfig` turns it into what the classifier runs with.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use super::ceiling::Ceilings;

/// The validated `[llm]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmSection {
    /// Sent as `model`; llama-server ignores it, Ollama and vLLM route by it.
    pub model: String,
    /// Name of an environment variable holding the API key.
    pub api_key_env: Option<String>,
    /// A file whose first line is the API key; wins over `api_key_env`.
    pub api_key_file: Option<PathBuf>,
    /// PEM certificates an `https://` server's chain must end in, instead of the public
    /// roots: a model server on the LAN with a private CA.
    pub ca_file: Option<PathBuf>,
    pub connect_timeout_ms: u64,
    /// Retries after a 429 or 503.
    pub max_retries: u32,
    /// First retry delay; doubles each time.
    pub backoff_ms: u64,
    /// Where answers persist; `None` keeps them in memory.
    pub cache_path: Option<PathBuf>,
    /// How long to wait for a server whose `/health` says it is still loading.
    pub health_wait_ms: u64,
    /// After a failure, how long to leave the server alone.
    pub retry_down_ms: u64,
    /// Uids besides root and the tuner's own whose listener on a loopback endpoint's port is
    /// taken for the server (`llm::server_check`).
    pub server_uids: Vec<u32>,
    /// Allows plain `http://` to another host, which nothing can verify.
    pub plain_http_remote: bool,
    /// Longest response body read.
    pub max_response_kib: u64,
    pub ceilings: Ceilings,
}

pub const DEFAULT_CACHE_PATH: &str = "/var/lib/sched_hint/llm-cache.json";

impl Default for LlmSection {
    fn default() -> Self {
        LlmSection {
            model: "local".into(),
            api_key_env: None,
            api_key_file: None,
            ca_file: None,
            connect_timeout_ms: 1_000,
            max_retries: 3,
            backoff_ms: 250,
            cache_path: Some(PathBuf::from(DEFAULT_CACHE_PATH)),
            health_wait_ms: 5_000,
            retry_down_ms: 30_000,
            server_uids: Vec::new(),
            plain_http_remote: false,
            max_response_kib: 256,
            ceilings: Ceilings::default(),
        }
    }
}

/// The loopback addresses `host` (a URL's host: `127.0.0.1`, `[::1]`, `localhost`) stands
/// for, or `None` when it is not this host.
pub fn loopback_addrs(host: &str) -> Option<Vec<IpAddr>> {
    if host.eq_ignore_ascii_case("localhost") {
        return Some(vec![
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ]);
    }
    let ip: IpAddr = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()?;
    ip.is_loopback().then(|| vec![ip])
}
