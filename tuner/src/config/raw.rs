//! The configuration as written: every key optional, every value with its position.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::rules::RawRule;

pub type Opt<T> = Option<Spanned<T>>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub daemon: RawDaemon,
    #[serde(default)]
    pub observe: RawObserve,
    #[serde(default)]
    pub exclude: RawExclude,
    #[serde(default)]
    pub rules: RawRules,
    #[serde(default)]
    pub heuristics: RawHeuristics,
    #[serde(default)]
    pub external: RawExternal,
    #[serde(default)]
    pub llm: RawLlm,
    #[serde(default)]
    pub plan: RawPlan,
    #[serde(default)]
    pub stock: RawStock,
    #[serde(default)]
    pub metrics: RawMetrics,
    #[serde(default)]
    pub trust: RawTrust,
    #[serde(default)]
    pub manual: Vec<RawRule>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDaemon {
    pub interval_ms: Opt<i64>,
    pub ttl_scans: Opt<i64>,
    pub backend: Opt<String>,
    pub device: Opt<String>,
    pub lock_path: Opt<String>,
    pub on_exit: Opt<String>,
    pub on_restart: Opt<String>,
    pub state_file: Opt<String>,
    pub max_writes_per_s: Opt<i64>,
    pub write_burst: Opt<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawObserve {
    pub proc_root: Opt<String>,
    pub sys_root: Opt<String>,
    pub threads: Opt<bool>,
    pub numa_min_rss_mib: Opt<i64>,
    pub numa_maps_every_scans: Opt<i64>,
    pub static_refresh_scans: Opt<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExclude {
    pub comm: Option<Vec<Spanned<String>>>,
    pub exe: Option<Vec<Spanned<String>>>,
    pub cgroup: Option<Vec<Spanned<String>>>,
    pub uids: Option<Vec<Spanned<i64>>>,
    pub manual_settings: Opt<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRules {
    pub defaults: Opt<bool>,
    pub paths: Option<Vec<Spanned<String>>>,
    pub role_hold_scans: Opt<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeuristics {
    pub enabled: Opt<bool>,
    pub idle_cpu_pct: Opt<f64>,
    pub idle_wakeups_per_s: Opt<f64>,
    pub interactive_wakeups_per_s: Opt<f64>,
    pub interactive_max_burst_us: Opt<f64>,
    pub cpu_bound_pct: Opt<f64>,
    pub cpu_bound_min_burst_us: Opt<f64>,
    pub throughput_cpu_pct: Opt<f64>,
    pub stable_scans: Opt<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExternal {
    pub enabled: Opt<bool>,
    pub kind: Opt<String>,
    pub endpoint: Opt<String>,
    pub pid_file: Opt<String>,
    pub timeout_ms: Opt<i64>,
    pub max_batch: Opt<i64>,
    pub min_confidence: Opt<f64>,
    pub cache_ttl_ms: Opt<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLlm {
    pub model: Opt<String>,
    pub api_key_env: Opt<String>,
    pub api_key_file: Opt<String>,
    pub ca_file: Opt<String>,
    pub connect_timeout_ms: Opt<i64>,
    pub max_retries: Opt<i64>,
    pub backoff_ms: Opt<i64>,
    pub cache_path: Opt<String>,
    pub health_wait_ms: Opt<i64>,
    pub retry_down_ms: Opt<i64>,
    pub server_uids: Opt<Vec<i64>>,
    pub plain_http_remote: Opt<bool>,
    pub max_response_kib: Opt<i64>,
    #[serde(default)]
    pub ceilings: RawCeilings,
}

/// `[trust]`: what any source but the admin may grant (Documentation/tuner-trust-model.md).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrust {
    #[serde(default)]
    pub ceilings: RawCeilings,
}

/// `[trust.ceilings]` and `[llm.ceilings]`: keys are uids and cgroup paths, values class
/// names or "none".
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCeilings {
    pub default: Opt<String>,
    #[serde(default)]
    pub uid: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub cgroup: BTreeMap<String, Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlan {
    pub numa: Opt<bool>,
    pub majority_pct: Opt<i64>,
    pub large_rss_mib: Opt<i64>,
    pub spread_instances: Opt<bool>,
    pub hysteresis_pct: Opt<i64>,
    pub stable_scans: Opt<i64>,
    pub cpu_weight_pct: Opt<i64>,
    pub migrate: Opt<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStockClass {
    pub policy: Opt<String>,
    pub nice: Opt<i64>,
    pub slice_us: Opt<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStock {
    /// The old home of `[plan] migrate`, still read.
    pub migrate: Opt<String>,
    pub latency: Option<RawStockClass>,
    pub interactive: Option<RawStockClass>,
    pub throughput: Option<RawStockClass>,
    pub batch: Option<RawStockClass>,
    pub background: Option<RawStockClass>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    pub enabled: Opt<bool>,
    pub listen: Opt<String>,
}
