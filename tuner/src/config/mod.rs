//! Configuration: TOML parsed into [`raw`] structs that keep every value's position, then
//! validated into [`Config`], which the rest of the program uses. Errors name the file, line
//! and column of the offending key.
//!
//! `configs/tuner.toml` is the annotated default: `tuner config example` prints it, and a
//! test checks that it parses to exactly [`Config::default`].

pub mod ceiling;
pub mod llm;
mod raw;
pub mod roles;
pub mod rules;
mod validate;

use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::glob::Glob;
use crate::hint::HintClass;
use ceiling::Ceilings;
use llm::LlmSection;
use rules::{Rule, RuleSet};

/// The annotated example, also the documentation of every key.
pub const EXAMPLE: &str = include_str!("../../../configs/tuner.toml");
/// Read when no `--config` is given; its absence means built-in defaults.
pub const DEFAULT_PATH: &str = "/etc/sched_hint/tuner.toml";
/// The path that means standard input wherever the tuner reads a configuration.
pub const STDIN_PATH: &str = "-";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{origin}:{line}:{column}: {message}")]
    At {
        origin: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{origin}: {message}")]
    File { origin: String, message: String },
}

impl ConfigError {
    pub fn at(origin: &str, src: &str, span: Range<usize>, message: impl Into<String>) -> Self {
        let (line, column) = line_col(src, span.start);
        ConfigError::At {
            origin: origin.to_owned(),
            line,
            column,
            message: message.into(),
        }
    }

    pub fn file(path: &Path, message: impl Into<String>) -> Self {
        ConfigError::File {
            origin: path.display().to_string(),
            message: message.into(),
        }
    }

    pub fn from_toml(origin: &str, src: &str, e: &toml::de::Error) -> Self {
        let message = e.message().trim().replace('\n', " ");
        match e.span() {
            Some(span) => Self::at(origin, src, span, message),
            None => ConfigError::File {
                origin: origin.to_owned(),
                message,
            },
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// How hints reach the kernel: `daemon.backend`, `--backend`, and what a sink reports itself
/// as (`auto` resolves to `ioctl` or `stock` when the sink opens, see `apply::resolve`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    Auto,
    Ioctl,
    Stock,
    DryRun,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Ioctl => "ioctl",
            Self::Stock => "stock",
            Self::DryRun => "dry-run",
        }
    }
}

impl std::str::FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "ioctl" => Ok(Self::Ioctl),
            "stock" => Ok(Self::Stock),
            "dry-run" => Ok(Self::DryRun),
            _ => Err(format!(
                "unknown backend {s:?} (expected auto, ioctl, stock or dry-run)"
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnExit {
    Clear,
    Keep,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnRestart {
    /// Take the hints back as the tuner's own, where the process still holds them.
    Adopt,
    /// Put back what they replaced.
    Restore,
}

/// The default `[daemon] state_file`, inside the systemd unit's `StateDirectory=`.
pub const DEFAULT_STATE_FILE: &str = "/var/lib/sched_hint/state.json";

#[derive(Debug, Clone, PartialEq)]
pub struct DaemonConfig {
    pub interval_ms: u64,
    /// 0: hints never expire.
    pub ttl_scans: u32,
    pub backend: Backend,
    pub device: PathBuf,
    /// The single-instance lock: a second `tuner run` fails while the first holds it.
    pub lock_path: PathBuf,
    pub on_exit: OnExit,
    /// What a start does with hints a previous run left in the state file (after a crash,
    /// or `on_exit = "keep"`).
    pub on_restart: OnRestart,
    /// Where the tuner records what it wrote and what it replaced.
    pub state_file: PathBuf,
    pub max_writes_per_s: u32,
    pub write_burst: u32,
}

impl DaemonConfig {
    pub fn ttl_ms(&self) -> u64 {
        self.interval_ms * u64::from(self.ttl_scans)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObserveConfig {
    pub proc_root: PathBuf,
    pub sys_root: PathBuf,
    pub threads: bool,
    pub numa_min_rss_kib: u64,
    pub numa_maps_every_scans: u32,
    pub static_refresh_scans: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExcludeConfig {
    pub comm: Vec<Glob>,
    pub exe: Vec<Glob>,
    pub cgroup: Vec<Glob>,
    pub uids: Vec<u32>,
    pub manual_settings: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RulesConfig {
    pub defaults: bool,
    pub paths: Vec<PathBuf>,
    /// Scans a thread keeps a role while it shows no role (a compute thread idle between
    /// requests stays compute); another role's match replaces it at once.
    pub role_hold_scans: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HeuristicsConfig {
    pub enabled: bool,
    pub idle_cpu_pct: f64,
    pub idle_wakeups_per_s: f64,
    pub interactive_wakeups_per_s: f64,
    pub interactive_max_burst_us: f64,
    pub cpu_bound_pct: f64,
    pub cpu_bound_min_burst_us: f64,
    pub throughput_cpu_pct: f64,
    pub stable_scans: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExternalConfig {
    pub enabled: bool,
    pub kind: String,
    pub endpoint: String,
    /// The port of `endpoint`, whose owner is excluded from hints.
    pub endpoint_port: Option<u16>,
    pub pid_file: Option<PathBuf>,
    pub timeout_ms: u64,
    pub max_batch: usize,
    pub min_confidence: f32,
    pub cache_ttl_ms: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlanConfig {
    pub numa: bool,
    pub majority_pct: u32,
    pub large_rss_kib: u64,
    pub spread_instances: bool,
    pub hysteresis_pct: u32,
    pub stable_scans: u32,
    pub cpu_weight_pct: u32,
    /// When a process's memory follows its hint's node (`migrate_pages`, both backends).
    pub migrate: MigrateMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrateMode {
    Never,
    Strict,
    Always,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StockPolicy {
    Normal,
    Batch,
    Idle,
}

/// How one class is expressed on a stock kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StockClass {
    pub policy: StockPolicy,
    pub nice: i32,
    /// 0: the kernel's base slice.
    pub slice_us: u64,
}

impl StockClass {
    pub const DEFAULT: StockClass = StockClass {
        policy: StockPolicy::Normal,
        nice: 0,
        slice_us: 0,
    };

    /// Why this class would raise a task above what its owner may set itself (a negative
    /// nice, or a slice that can be below the kernel's base slice), or `None`.
    pub fn raises(&self) -> Option<String> {
        if self.nice < 0 {
            return Some(format!("nice {} is below 0", self.nice));
        }
        if self.slice_us != 0 && self.slice_us < MAX_BASE_SLICE_US {
            return Some(format!(
                "slice_us {} can be below the base slice ({MAX_BASE_SLICE_US} us on 8+ CPUs)",
                self.slice_us
            ));
        }
        None
    }
}

/// The largest default EEVDF base slice: 0.75 ms x (1 + ilog2(min(CPUs, 8))).
pub const MAX_BASE_SLICE_US: u64 = 3000;

/// `[trust]`: the most favoured class any source but the admin's `[[manual]]` entries may
/// give, per uid and cgroup (Documentation/tuner-trust-model.md).
#[derive(Debug, Clone, PartialEq)]
pub struct TrustConfig {
    pub ceilings: Ceilings,
}

impl Default for TrustConfig {
    /// The shipped ceilings: anyone may hold every class (the exe checks guard the raising
    /// ones), but `nobody`, the uid that untrusted daemons and sandboxes run as, never
    /// more than throughput.
    fn default() -> Self {
        let mut ceilings = Ceilings::new(HintClass::Latency);
        ceilings.set_uid(NOBODY_UID, HintClass::Throughput);
        TrustConfig { ceilings }
    }
}

/// `nobody`.
pub const NOBODY_UID: u32 = 65534;

#[derive(Debug, Clone, PartialEq)]
pub struct StockConfig {
    /// Indexed by [`HintClass::index`]; the `none` entry is the kernel default.
    pub classes: [StockClass; 6],
}

impl StockConfig {
    pub fn class(&self, class: HintClass) -> StockClass {
        self.classes[class.index()]
    }

    /// The classes `new` expresses differently from `self`: the tasks holding them must be
    /// written again after a reload.
    pub fn changed_classes(&self, new: &StockConfig) -> Vec<HintClass> {
        HintClass::ALL
            .into_iter()
            .filter(|c| self.class(*c) != new.class(*c))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct MetricsConfig {
    pub enabled: bool,
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub daemon: DaemonConfig,
    pub observe: ObserveConfig,
    pub exclude: ExcludeConfig,
    pub rules: RulesConfig,
    pub heuristics: HeuristicsConfig,
    pub external: ExternalConfig,
    pub llm: LlmSection,
    pub plan: PlanConfig,
    pub stock: StockConfig,
    pub metrics: MetricsConfig,
    pub trust: TrustConfig,
    /// `[[manual]]` entries: admin settings, tried before any rule.
    pub manual: Vec<Rule>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            daemon: DaemonConfig {
                interval_ms: 5000,
                ttl_scans: 6,
                backend: Backend::Auto,
                device: PathBuf::from("/dev/sched_hint"),
                lock_path: PathBuf::from("/run/sched_hint/tuner.lock"),
                on_exit: OnExit::Clear,
                on_restart: OnRestart::Adopt,
                state_file: PathBuf::from(DEFAULT_STATE_FILE),
                max_writes_per_s: 200,
                write_burst: 400,
            },
            observe: ObserveConfig {
                proc_root: PathBuf::from("/proc"),
                sys_root: PathBuf::from("/sys"),
                threads: true,
                numa_min_rss_kib: 64 * 1024,
                numa_maps_every_scans: 6,
                static_refresh_scans: 12,
            },
            exclude: ExcludeConfig {
                comm: Vec::new(),
                exe: Vec::new(),
                cgroup: Vec::new(),
                uids: Vec::new(),
                manual_settings: true,
            },
            rules: RulesConfig {
                defaults: true,
                paths: vec![PathBuf::from("/etc/sched_hint/rules.d")],
                // A minute at the default 5 s interval: longer than a pause between
                // requests, short enough that a thread whose job changed is seen so.
                role_hold_scans: 12,
            },
            heuristics: HeuristicsConfig {
                enabled: true,
                idle_cpu_pct: 0.5,
                idle_wakeups_per_s: 2.0,
                interactive_wakeups_per_s: 20.0,
                interactive_max_burst_us: 2000.0,
                cpu_bound_pct: 60.0,
                cpu_bound_min_burst_us: 5000.0,
                throughput_cpu_pct: 150.0,
                stable_scans: 2,
            },
            external: ExternalConfig {
                enabled: false,
                kind: "llm".into(),
                endpoint: "http://127.0.0.1:8080".into(),
                endpoint_port: Some(8080),
                pid_file: None,
                timeout_ms: 30_000,
                max_batch: 16,
                min_confidence: 0.6,
                cache_ttl_ms: 600_000,
            },
            llm: LlmSection::default(),
            plan: PlanConfig {
                numa: true,
                majority_pct: 50,
                large_rss_kib: 512 * 1024,
                spread_instances: true,
                hysteresis_pct: 15,
                stable_scans: 3,
                cpu_weight_pct: 50,
                migrate: MigrateMode::Strict,
            },
            stock: StockConfig {
                classes: [
                    StockClass::DEFAULT,
                    // The base slice, as the patched class's row: a 500 us custom slice
                    // doubled p99 on the unpatched kernel (9.0 -> 18.0 ms) and nearly halved
                    // the request rate; one longer than the base slice lets every waking
                    // base-slice task cut a burst (PREEMPT_SHORT). Documentation/results,
                    // "The latency class in series v2" and "Why the class lost".
                    StockClass {
                        policy: StockPolicy::Normal,
                        nice: -5,
                        slice_us: 0,
                    },
                    StockClass {
                        policy: StockPolicy::Normal,
                        nice: 0,
                        slice_us: 1000,
                    },
                    StockClass {
                        policy: StockPolicy::Normal,
                        nice: 0,
                        slice_us: 6000,
                    },
                    StockClass {
                        policy: StockPolicy::Batch,
                        nice: 0,
                        slice_us: 12000,
                    },
                    StockClass {
                        policy: StockPolicy::Idle,
                        nice: 0,
                        slice_us: 0,
                    },
                ],
            },
            metrics: MetricsConfig {
                enabled: false,
                listen: "127.0.0.1:9464".parse().expect("literal address"),
            },
            trust: TrustConfig::default(),
            manual: Vec::new(),
        }
    }
}

impl Config {
    /// Parses and validates configuration text; `origin` names it in errors.
    pub fn parse(src: &str, origin: &str) -> Result<Config, ConfigError> {
        let raw: raw::RawConfig =
            toml::from_str(src).map_err(|e| ConfigError::from_toml(origin, src, &e))?;
        validate::validate(raw, src, origin)
    }

    /// Reads `path` (`-`: standard input); `None` reads [`DEFAULT_PATH`] when it exists,
    /// else uses the defaults.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let path = match path {
            Some(p) if p == Path::new(STDIN_PATH) => {
                let mut src = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut src)
                    .map_err(|e| ConfigError::file(p, e.to_string().to_lowercase()))?;
                return Config::parse(&src, "<stdin>");
            }
            Some(p) => p.to_path_buf(),
            None if Path::new(DEFAULT_PATH).exists() => PathBuf::from(DEFAULT_PATH),
            None => return Ok(Config::default()),
        };
        let src = std::fs::read_to_string(&path)
            .map_err(|e| ConfigError::file(&path, e.to_string().to_lowercase()))?;
        Config::parse(&src, &path.display().to_string())
    }

    /// The settings that differ in `new` but that a SIGHUP cannot apply, because the parts
    /// they configure are built once at start (the backend and its device, the lock, the
    /// observed roots, the external classifier and its client, the metrics listener). The
    /// daemon logs them; everything else takes effect with the reload.
    pub fn restart_needed(&self, new: &Config) -> Vec<&'static str> {
        let (o, n) = (self, new);
        let checks = [
            ("daemon.backend", o.daemon.backend != n.daemon.backend),
            ("daemon.device", o.daemon.device != n.daemon.device),
            ("daemon.lock_path", o.daemon.lock_path != n.daemon.lock_path),
            (
                "observe.proc_root",
                o.observe.proc_root != n.observe.proc_root,
            ),
            ("observe.sys_root", o.observe.sys_root != n.observe.sys_root),
            ("external.enabled", o.external.enabled != n.external.enabled),
            ("external.kind", o.external.kind != n.external.kind),
            (
                "external.endpoint",
                o.external.endpoint != n.external.endpoint,
            ),
            (
                "external.timeout_ms",
                o.external.timeout_ms != n.external.timeout_ms,
            ),
            (
                "external.max_batch",
                o.external.max_batch != n.external.max_batch,
            ),
            ("llm", o.llm != n.llm),
            ("metrics", o.metrics != n.metrics),
        ];
        checks
            .into_iter()
            .filter_map(|(name, changed)| changed.then_some(name))
            .collect()
    }

    /// The effective rule set: manual entries, user rules, then the embedded catalog.
    pub fn load_rules(&self) -> Result<RuleSet, ConfigError> {
        let mut all = self.manual.clone();
        all.extend(rules::load_rule_paths(&self.rules.paths)?);
        if self.rules.defaults {
            all.extend(rules::default_rules()?);
        }
        Ok(RuleSet { rules: all })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 19, reproduction 10, and issue 16: the stock latency class keeps the base slice,
    /// as the patched class's row does: a shorter custom slice doubled p99 on a stock kernel,
    /// and a longer one lets base-slice wakers cut its bursts.
    #[test]
    fn stock_latency_class_keeps_the_base_slice() {
        let latency = Config::default().stock.class(HintClass::Latency);
        assert_eq!(latency.slice_us, 0, "slice_us = {}", latency.slice_us);
    }

    #[test]
    fn restart_needed_names_what_a_reload_cannot_apply() {
        let old = Config::default();
        let mut new = Config::default();
        new.stock.classes[HintClass::Batch.index()].nice = 3;
        new.daemon.interval_ms = 2000;
        new.exclude.uids.push(33);
        assert!(old.restart_needed(&new).is_empty(), "all of these reload");
        new.daemon.backend = Backend::Stock;
        new.observe.proc_root = PathBuf::from("/other/proc");
        new.external.endpoint = "http://127.0.0.1:9".into();
        new.metrics.enabled = true;
        assert_eq!(
            old.restart_needed(&new),
            vec![
                "daemon.backend",
                "observe.proc_root",
                "external.endpoint",
                "metrics"
            ]
        );
    }

    #[test]
    fn example_is_the_default() {
        let parsed = Config::parse(EXAMPLE, "configs/tuner.toml").expect("example parses");
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn trust_ceilings_keep_the_shipped_entries_and_stock_cannot_raise_everyone() {
        let c = Config::parse("[trust.ceilings.uid]\n\"1000\" = \"batch\"\n", "t").unwrap();
        assert_eq!(c.trust.ceilings.cap(1000, "/"), HintClass::Batch);
        assert_eq!(c.trust.ceilings.cap(NOBODY_UID, "/"), HintClass::Throughput);
        assert_eq!(c.trust.ceilings.cap(0, "/"), HintClass::Latency);
        let lifted = Config::parse("[trust.ceilings.uid]\n\"65534\" = \"latency\"\n", "t").unwrap();
        assert_eq!(
            lifted.trust.ceilings.cap(NOBODY_UID, "/"),
            HintClass::Latency
        );
        for bad in [
            "[stock.batch]\nnice = -1\n",
            "[stock.throughput]\nslice_us = 500\n",
            "[stock.background]\npolicy = \"normal\"\nnice = -20\n",
        ] {
            let e = Config::parse(bad, "t").unwrap_err().to_string();
            assert!(
                e.contains("only latency and interactive may do"),
                "{bad}: {e}"
            );
        }
        assert!(Config::parse("[stock.interactive]\nnice = -2\n", "t").is_ok());
    }

    #[test]
    fn empty_file_is_the_default() {
        assert_eq!(Config::parse("", "empty").unwrap(), Config::default());
    }

    #[test]
    fn line_col_counts_from_one() {
        let src = "a = 1\nbb = 2\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 6), (2, 1));
        assert_eq!(line_col(src, 11), (2, 6));
    }

    #[test]
    fn errors_are_line_precise() {
        let cases = [
            (
                "[daemon]\ninterval_ms = 0\n",
                "x.toml:2:15: daemon.interval_ms must be within 100..=3600000, got 0",
            ),
            (
                "[daemon]\nbackend = \"kernel\"\n",
                "x.toml:2:11: unknown backend \"kernel\"",
            ),
            (
                "[metrics]\nlisten = \"0.0.0.0:9464\"\n",
                "x.toml:2:10: metrics.listen must be a loopback address",
            ),
            (
                "[plan]\nmajority_pct = 101\n",
                "x.toml:2:16: plan.majority_pct must be within 1..=100, got 101",
            ),
            (
                "[stock.latency]\nnice = -30\n",
                "x.toml:2:8: stock.latency.nice must be within -20..=19, got -30",
            ),
            (
                "[daemon]\nintervall_ms = 5\n",
                "x.toml:2:1: unknown field `intervall_ms`",
            ),
            ("[daemon\n", "x.toml:1:8: "),
            (
                "[[manual]]\nname = \"m\"\ncomm = [\"x\"]\nclass = \"turbo\"\n",
                "x.toml:4:9: unknown class \"turbo\"",
            ),
        ];
        for (src, want) in cases {
            let got = Config::parse(src, "x.toml").unwrap_err().to_string();
            assert!(
                got.starts_with(want),
                "for {src:?}\n got: {got}\nwant: {want}"
            );
            assert!(!got.contains('\n'), "one line: {got}");
        }
    }

    /// Issue 21: memory follows a node on either backend, so its setting lives in `[plan]`;
    /// a config that still says `[stock] migrate` means the same.
    #[test]
    fn migrate_is_a_plan_setting_and_its_old_name_still_counts() {
        let plan = |src: &str| Config::parse(src, "m.toml").map(|c| c.plan.migrate);
        assert_eq!(plan("").unwrap(), MigrateMode::Strict);
        assert_eq!(
            plan("[plan]\nmigrate = \"always\"\n").unwrap(),
            MigrateMode::Always
        );
        assert_eq!(
            plan("[stock]\nmigrate = \"never\"\n").unwrap(),
            MigrateMode::Never
        );
        assert_eq!(
            plan("[plan]\nmigrate = \"never\"\n[stock]\nmigrate = \"never\"\n").unwrap(),
            MigrateMode::Never
        );
        let e = plan("[plan]\nmigrate = \"always\"\n[stock]\nmigrate = \"never\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("m.toml:2:11: plan.migrate and its old name stock.migrate disagree"),
            "{e}"
        );
        let e = plan("[plan]\nmigrate = \"sometimes\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("m.toml:2:11: plan.migrate must be one of never, strict, always"),
            "{e}"
        );
    }

    #[test]
    fn manual_entries_come_first_with_admin_source() {
        let src = "[[manual]]\nname = \"pin-rustc\"\ncomm = [\"rustc\"]\nclass = \"background\"\nnode = 1\n";
        let cfg = Config::parse(src, "m.toml").unwrap();
        let rules = cfg.load_rules().unwrap();
        let first = &rules.rules[0];
        assert_eq!(first.name, "pin-rustc");
        assert_eq!(first.source, crate::hint::HintSource::Admin);
        assert_eq!(first.node, Some(1));
        assert!(rules.rules.iter().any(|r| r.name == "compiler"));
    }

    #[test]
    fn missing_file_is_a_file_error() {
        let e = Config::load(Some(Path::new("/nonexistent/tuner.toml")))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/nonexistent/tuner.toml: no such file"),
            "{e}"
        );
    }
}
