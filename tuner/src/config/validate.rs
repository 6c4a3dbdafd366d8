//! Raw configuration → [`Config`], range-checking every value where it was written.

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::ceiling::{parse_ceiling, Ceilings};
use super::llm::LlmSection;
use super::raw::{Opt, RawCeilings, RawConfig, RawLlm, RawStockClass};
use super::rules::validate_rule;
use super::{
    Backend, Config, ConfigError, MigrateMode, OnExit, OnRestart, StockClass, StockPolicy,
};
use crate::glob::Glob;
use crate::hint::{HintClass, HintSource};
use crate::uapi::SCHED_HINT_TTL_MAX_MS;

struct Checker<'a> {
    src: &'a str,
    origin: &'a str,
}

impl Checker<'_> {
    fn err<T>(&self, s: &Spanned<T>, message: String) -> ConfigError {
        ConfigError::at(self.origin, self.src, s.span(), message)
    }

    fn int(
        &self,
        v: &Opt<i64>,
        key: &str,
        range: RangeInclusive<i64>,
        default: i64,
    ) -> Result<i64, ConfigError> {
        match v {
            None => Ok(default),
            Some(s) if range.contains(s.get_ref()) => Ok(*s.get_ref()),
            Some(s) => Err(self.err(
                s,
                format!(
                    "{key} must be within {}..={}, got {}",
                    range.start(),
                    range.end(),
                    s.get_ref()
                ),
            )),
        }
    }

    fn float(
        &self,
        v: &Opt<f64>,
        key: &str,
        range: RangeInclusive<f64>,
        default: f64,
    ) -> Result<f64, ConfigError> {
        match v {
            None => Ok(default),
            Some(s) if range.contains(s.get_ref()) => Ok(*s.get_ref()),
            Some(s) => Err(self.err(
                s,
                format!(
                    "{key} must be within {}..={}, got {}",
                    range.start(),
                    range.end(),
                    s.get_ref()
                ),
            )),
        }
    }

    fn parsed<T: std::str::FromStr<Err = String>>(
        &self,
        v: &Opt<String>,
        default: T,
    ) -> Result<T, ConfigError> {
        match v {
            None => Ok(default),
            Some(s) => s.get_ref().parse().map_err(|e| self.err(s, e)),
        }
    }

    fn choice<T: Copy>(
        &self,
        v: &Opt<String>,
        key: &str,
        options: &[(&str, T)],
        default: T,
    ) -> Result<T, ConfigError> {
        let Some(s) = v else { return Ok(default) };
        options
            .iter()
            .find(|(name, _)| name == s.get_ref())
            .map(|(_, t)| *t)
            .ok_or_else(|| {
                let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
                self.err(
                    s,
                    format!(
                        "{key} must be one of {}, got {:?}",
                        names.join(", "),
                        s.get_ref()
                    ),
                )
            })
    }

    fn globs(
        &self,
        v: &Option<Vec<Spanned<String>>>,
        key: &str,
        default: &[Glob],
    ) -> Result<Vec<Glob>, ConfigError> {
        let Some(list) = v else {
            return Ok(default.to_vec());
        };
        list.iter()
            .map(|s| {
                if s.get_ref().is_empty() {
                    Err(self.err(s, format!("{key}: empty pattern")))
                } else {
                    Ok(Glob::new(s.get_ref()))
                }
            })
            .collect()
    }

    fn path(&self, v: &Opt<String>, key: &str, default: &Path) -> Result<PathBuf, ConfigError> {
        match v {
            None => Ok(default.to_path_buf()),
            Some(s) if s.get_ref().starts_with('/') => Ok(PathBuf::from(s.get_ref())),
            Some(s) => Err(self.err(
                s,
                format!("{key} must be an absolute path, got {:?}", s.get_ref()),
            )),
        }
    }

    fn stock_class(
        &self,
        raw: &Option<RawStockClass>,
        name: &str,
        default: StockClass,
    ) -> Result<StockClass, ConfigError> {
        let Some(raw) = raw else { return Ok(default) };
        let policies = [
            ("normal", StockPolicy::Normal),
            ("batch", StockPolicy::Batch),
            ("idle", StockPolicy::Idle),
        ];
        let policy = self.choice(
            &raw.policy,
            &format!("stock.{name}.policy"),
            &policies,
            default.policy,
        )?;
        let nice = self.int(
            &raw.nice,
            &format!("stock.{name}.nice"),
            -20..=19,
            i64::from(default.nice),
        )?;
        let slice_us = match &raw.slice_us {
            None => default.slice_us,
            Some(s) if *s.get_ref() == 0 || (100..=100_000).contains(s.get_ref()) => {
                *s.get_ref() as u64
            }
            Some(s) => {
                return Err(self.err(
                    s,
                    format!(
                        "stock.{name}.slice_us must be 0 or within 100..=100000, got {}",
                        s.get_ref()
                    ),
                ))
            }
        };
        Ok(StockClass {
            policy,
            nice: nice as i32,
            slice_us,
        })
    }
}

/// The port of an `http://host:port/...` or `https://...` endpoint (80 or 443 when none is
/// given).
fn endpoint_port(endpoint: &str) -> Option<u16> {
    let (rest, default) = match endpoint.strip_prefix("https://") {
        Some(rest) => (rest, 443),
        None => (endpoint.strip_prefix("http://")?, 80),
    };
    let authority = rest.split('/').next()?;
    if authority.is_empty() {
        return None;
    }
    match authority.rsplit_once(':') {
        Some((_, port)) if !port.ends_with(']') => port.parse().ok(),
        _ => Some(default),
    }
}

/// Why `endpoint` cannot be used as written, if it cannot: plain http to another host, where
/// anyone on the path can answer, needs the admin's word (`llm.plain_http_remote`).
fn endpoint_unverifiable(endpoint: &str, plain_http_remote: bool) -> Option<String> {
    let url = reqwest::Url::parse(endpoint).ok()?;
    let host = url.host_str()?;
    if url.scheme() != "http" || plain_http_remote || super::llm::loopback_addrs(host).is_some() {
        return None;
    }
    Some(format!(
        "external.endpoint {endpoint:?}: nothing can tell who answers plain http on another \
         host; use https://, or set llm.plain_http_remote = true"
    ))
}

/// A ceiling table (`[trust.ceilings]`, `[llm.ceilings]`): entries written override the
/// defaults' entries one by one, so a config that names uid 1000 keeps the shipped entry
/// for uid 65534 (an admin lifts that one by naming it).
fn ceilings(
    c: &Checker<'_>,
    r: &RawCeilings,
    d: &Ceilings,
    key: &str,
) -> Result<Ceilings, ConfigError> {
    let ceiling = |s: &Spanned<String>, key: String| {
        parse_ceiling(s.get_ref()).map_err(|e| c.err(s, format!("{key}: {e}")))
    };
    let mut out = d.clone();
    if let Some(s) = &r.default {
        out.set_default(ceiling(s, format!("{key}.default"))?);
    }
    for (uid, s) in &r.uid {
        let u = uid
            .parse::<u32>()
            .map_err(|_| c.err(s, format!("{key}.uid: {uid:?} is not a uid")))?;
        out.set_uid(u, ceiling(s, format!("{key}.uid"))?);
    }
    for (cgroup, s) in &r.cgroup {
        let class = ceiling(s, format!("{key}.cgroup"))?;
        out.set_cgroup(cgroup, class)
            .map_err(|e| c.err(s, format!("{key}.cgroup: {e}")))?;
    }
    Ok(out)
}

/// `[llm]`: what only the LLM classifier needs (`[external]` has the endpoint and timeout).
fn llm_section(c: &Checker<'_>, r: &RawLlm, d: &LlmSection) -> Result<LlmSection, ConfigError> {
    let ceilings = ceilings(c, &r.ceilings, &d.ceilings, "llm.ceilings")?;
    let optional_path = |v: &Opt<String>, key: &str, default: &Option<PathBuf>| match v {
        None => Ok(default.clone()),
        Some(s) if s.get_ref().is_empty() => Ok(None),
        Some(_) => c.path(v, key, &PathBuf::new()).map(Some),
    };
    Ok(LlmSection {
        model: r
            .model
            .as_ref()
            .map_or(d.model.clone(), |s| s.get_ref().clone()),
        api_key_env: match &r.api_key_env {
            None => d.api_key_env.clone(),
            Some(s) if s.get_ref().is_empty() => None,
            Some(s) => Some(s.get_ref().clone()),
        },
        api_key_file: optional_path(&r.api_key_file, "llm.api_key_file", &d.api_key_file)?,
        ca_file: optional_path(&r.ca_file, "llm.ca_file", &d.ca_file)?,
        connect_timeout_ms: c.int(
            &r.connect_timeout_ms,
            "llm.connect_timeout_ms",
            1..=600_000,
            d.connect_timeout_ms as i64,
        )? as u64,
        max_retries: c.int(
            &r.max_retries,
            "llm.max_retries",
            0..=20,
            i64::from(d.max_retries),
        )? as u32,
        backoff_ms: c.int(
            &r.backoff_ms,
            "llm.backoff_ms",
            0..=60_000,
            d.backoff_ms as i64,
        )? as u64,
        cache_path: optional_path(&r.cache_path, "llm.cache_path", &d.cache_path)?,
        health_wait_ms: c.int(
            &r.health_wait_ms,
            "llm.health_wait_ms",
            0..=600_000,
            d.health_wait_ms as i64,
        )? as u64,
        retry_down_ms: c.int(
            &r.retry_down_ms,
            "llm.retry_down_ms",
            0..=86_400_000,
            d.retry_down_ms as i64,
        )? as u64,
        server_uids: match &r.server_uids {
            None => d.server_uids.clone(),
            Some(s) => s
                .get_ref()
                .iter()
                .map(|&u| {
                    u32::try_from(u)
                        .map_err(|_| c.err(s, format!("llm.server_uids: {u} is not a uid")))
                })
                .collect::<Result<_, _>>()?,
        },
        plain_http_remote: r
            .plain_http_remote
            .as_ref()
            .map_or(d.plain_http_remote, |s| *s.get_ref()),
        max_response_kib: c.int(
            &r.max_response_kib,
            "llm.max_response_kib",
            1..=65_536,
            d.max_response_kib as i64,
        )? as u64,
        ceilings,
    })
}

pub(super) fn validate(raw: RawConfig, src: &str, origin: &str) -> Result<Config, ConfigError> {
    let c = Checker { src, origin };
    let d = Config::default();
    let mut cfg = d.clone();

    let r = &raw.daemon;
    cfg.daemon.interval_ms = c.int(
        &r.interval_ms,
        "daemon.interval_ms",
        100..=3_600_000,
        d.daemon.interval_ms as i64,
    )? as u64;
    cfg.daemon.ttl_scans = c.int(
        &r.ttl_scans,
        "daemon.ttl_scans",
        0..=1000,
        i64::from(d.daemon.ttl_scans),
    )? as u32;
    if cfg.daemon.ttl_scans == 1 {
        let s = r.ttl_scans.as_ref().expect("only a written value can be 1");
        return Err(c.err(
            s,
            "daemon.ttl_scans must be 0 (no expiry) or at least 2, else hints expire between scans"
                .into(),
        ));
    }
    // The kernel refuses a longer TTL rather than cut it short.
    if cfg.daemon.ttl_ms() > u64::from(SCHED_HINT_TTL_MAX_MS) {
        let s = r
            .ttl_scans
            .as_ref()
            .or(r.interval_ms.as_ref())
            .expect("the defaults give a TTL within the kernel's bound");
        return Err(c.err(
            s,
            format!(
                "daemon.ttl_scans x daemon.interval_ms is {} ms, above the kernel's limit of {} ms (seven days)",
                cfg.daemon.ttl_ms(),
                SCHED_HINT_TTL_MAX_MS
            ),
        ));
    }
    cfg.daemon.backend = c.parsed::<Backend>(&r.backend, d.daemon.backend)?;
    cfg.daemon.device = c.path(&r.device, "daemon.device", &d.daemon.device)?;
    cfg.daemon.lock_path = c.path(&r.lock_path, "daemon.lock_path", &d.daemon.lock_path)?;
    cfg.daemon.on_exit = c.choice(
        &r.on_exit,
        "daemon.on_exit",
        &[("clear", OnExit::Clear), ("keep", OnExit::Keep)],
        d.daemon.on_exit,
    )?;
    cfg.daemon.on_restart = c.choice(
        &r.on_restart,
        "daemon.on_restart",
        &[("adopt", OnRestart::Adopt), ("restore", OnRestart::Restore)],
        d.daemon.on_restart,
    )?;
    cfg.daemon.state_file = c.path(&r.state_file, "daemon.state_file", &d.daemon.state_file)?;
    cfg.daemon.max_writes_per_s = c.int(
        &r.max_writes_per_s,
        "daemon.max_writes_per_s",
        1..=1_000_000,
        i64::from(d.daemon.max_writes_per_s),
    )? as u32;
    cfg.daemon.write_burst = c.int(
        &r.write_burst,
        "daemon.write_burst",
        1..=1_000_000,
        i64::from(d.daemon.write_burst),
    )? as u32;

    let r = &raw.observe;
    cfg.observe.proc_root = c.path(&r.proc_root, "observe.proc_root", &d.observe.proc_root)?;
    cfg.observe.sys_root = c.path(&r.sys_root, "observe.sys_root", &d.observe.sys_root)?;
    cfg.observe.threads = r
        .threads
        .as_ref()
        .map_or(d.observe.threads, |s| *s.get_ref());
    cfg.observe.numa_min_rss_kib = c.int(
        &r.numa_min_rss_mib,
        "observe.numa_min_rss_mib",
        0..=1 << 30,
        (d.observe.numa_min_rss_kib / 1024) as i64,
    )? as u64
        * 1024;
    cfg.observe.numa_maps_every_scans = c.int(
        &r.numa_maps_every_scans,
        "observe.numa_maps_every_scans",
        1..=10_000,
        i64::from(d.observe.numa_maps_every_scans),
    )? as u32;
    cfg.observe.static_refresh_scans = c.int(
        &r.static_refresh_scans,
        "observe.static_refresh_scans",
        1..=10_000,
        i64::from(d.observe.static_refresh_scans),
    )? as u32;

    let r = &raw.exclude;
    cfg.exclude.comm = c.globs(&r.comm, "exclude.comm", &d.exclude.comm)?;
    cfg.exclude.exe = c.globs(&r.exe, "exclude.exe", &d.exclude.exe)?;
    cfg.exclude.cgroup = c.globs(&r.cgroup, "exclude.cgroup", &d.exclude.cgroup)?;
    if let Some(uids) = &r.uids {
        cfg.exclude.uids = uids
            .iter()
            .map(|u| {
                u32::try_from(*u.get_ref()).map_err(|_| {
                    c.err(u, format!("exclude.uids: uid {} out of range", u.get_ref()))
                })
            })
            .collect::<Result<_, _>>()?;
    }
    cfg.exclude.manual_settings = r
        .manual_settings
        .as_ref()
        .map_or(d.exclude.manual_settings, |s| *s.get_ref());

    let r = &raw.rules;
    cfg.rules.defaults = r
        .defaults
        .as_ref()
        .map_or(d.rules.defaults, |s| *s.get_ref());
    if let Some(paths) = &r.paths {
        cfg.rules.paths = paths
            .iter()
            .map(|p| c.path(&Some(p.clone()), "rules.paths", &PathBuf::new()))
            .collect::<Result<_, _>>()?;
    }
    cfg.rules.role_hold_scans = c.int(
        &r.role_hold_scans,
        "rules.role_hold_scans",
        1..=10_000,
        i64::from(d.rules.role_hold_scans),
    )? as u32;

    let r = &raw.heuristics;
    let h = &d.heuristics;
    cfg.heuristics.enabled = r.enabled.as_ref().map_or(h.enabled, |s| *s.get_ref());
    cfg.heuristics.idle_cpu_pct = c.float(
        &r.idle_cpu_pct,
        "heuristics.idle_cpu_pct",
        0.0..=100.0,
        h.idle_cpu_pct,
    )?;
    cfg.heuristics.idle_wakeups_per_s = c.float(
        &r.idle_wakeups_per_s,
        "heuristics.idle_wakeups_per_s",
        0.0..=1e6,
        h.idle_wakeups_per_s,
    )?;
    cfg.heuristics.interactive_wakeups_per_s = c.float(
        &r.interactive_wakeups_per_s,
        "heuristics.interactive_wakeups_per_s",
        0.0..=1e6,
        h.interactive_wakeups_per_s,
    )?;
    cfg.heuristics.interactive_max_burst_us = c.float(
        &r.interactive_max_burst_us,
        "heuristics.interactive_max_burst_us",
        1.0..=1e7,
        h.interactive_max_burst_us,
    )?;
    cfg.heuristics.cpu_bound_pct = c.float(
        &r.cpu_bound_pct,
        "heuristics.cpu_bound_pct",
        1.0..=100_000.0,
        h.cpu_bound_pct,
    )?;
    cfg.heuristics.cpu_bound_min_burst_us = c.float(
        &r.cpu_bound_min_burst_us,
        "heuristics.cpu_bound_min_burst_us",
        1.0..=1e7,
        h.cpu_bound_min_burst_us,
    )?;
    cfg.heuristics.throughput_cpu_pct = c.float(
        &r.throughput_cpu_pct,
        "heuristics.throughput_cpu_pct",
        1.0..=100_000.0,
        h.throughput_cpu_pct,
    )?;
    cfg.heuristics.stable_scans = c.int(
        &r.stable_scans,
        "heuristics.stable_scans",
        1..=1000,
        i64::from(h.stable_scans),
    )? as u32;

    let r = &raw.external;
    let e = &d.external;
    cfg.external.enabled = r.enabled.as_ref().map_or(e.enabled, |s| *s.get_ref());
    cfg.external.kind = r
        .kind
        .as_ref()
        .map_or(e.kind.clone(), |s| s.get_ref().clone());
    if let Some(s) = &r.endpoint {
        cfg.external.endpoint_port = Some(endpoint_port(s.get_ref()).ok_or_else(|| {
            c.err(
                s,
                format!(
                    "external.endpoint must look like http://host:port or https://host:port, got {:?}",
                    s.get_ref()
                ),
            )
        })?);
        cfg.external.endpoint = s.get_ref().clone();
    }
    cfg.external.pid_file = match &r.pid_file {
        None => e.pid_file.clone(),
        Some(s) if s.get_ref().is_empty() => None,
        Some(s) => Some(c.path(&Some(s.clone()), "external.pid_file", &PathBuf::new())?),
    };
    cfg.external.timeout_ms = c.int(
        &r.timeout_ms,
        "external.timeout_ms",
        1..=600_000,
        e.timeout_ms as i64,
    )? as u64;
    cfg.external.max_batch = c.int(
        &r.max_batch,
        "external.max_batch",
        1..=1024,
        e.max_batch as i64,
    )? as usize;
    cfg.external.min_confidence = c.float(
        &r.min_confidence,
        "external.min_confidence",
        0.0..=1.0,
        f64::from(e.min_confidence),
    )? as f32;
    cfg.external.cache_ttl_ms = c.int(
        &r.cache_ttl_ms,
        "external.cache_ttl_ms",
        0..=86_400_000,
        e.cache_ttl_ms as i64,
    )? as u64;

    cfg.llm = llm_section(&c, &raw.llm, &d.llm)?;
    if let Some(s) = &raw.external.endpoint {
        if let Some(why) = endpoint_unverifiable(s.get_ref(), cfg.llm.plain_http_remote) {
            return Err(c.err(s, why));
        }
    }

    let r = &raw.plan;
    let p = &d.plan;
    cfg.plan.numa = r.numa.as_ref().map_or(p.numa, |s| *s.get_ref());
    cfg.plan.majority_pct = c.int(
        &r.majority_pct,
        "plan.majority_pct",
        1..=100,
        i64::from(p.majority_pct),
    )? as u32;
    cfg.plan.large_rss_kib = c.int(
        &r.large_rss_mib,
        "plan.large_rss_mib",
        0..=1 << 30,
        (p.large_rss_kib / 1024) as i64,
    )? as u64
        * 1024;
    cfg.plan.spread_instances = r
        .spread_instances
        .as_ref()
        .map_or(p.spread_instances, |s| *s.get_ref());
    cfg.plan.hysteresis_pct = c.int(
        &r.hysteresis_pct,
        "plan.hysteresis_pct",
        0..=100,
        i64::from(p.hysteresis_pct),
    )? as u32;
    cfg.plan.stable_scans = c.int(
        &r.stable_scans,
        "plan.stable_scans",
        1..=1000,
        i64::from(p.stable_scans),
    )? as u32;
    cfg.plan.cpu_weight_pct = c.int(
        &r.cpu_weight_pct,
        "plan.cpu_weight_pct",
        0..=100,
        i64::from(p.cpu_weight_pct),
    )? as u32;

    let migrate = [
        ("never", MigrateMode::Never),
        ("strict", MigrateMode::Strict),
        ("always", MigrateMode::Always),
    ];
    // `[stock] migrate` predates the ioctl backend's migrations; a config that says it
    // still means it, but not next to a `[plan] migrate` that says something else.
    let old = c.choice(&raw.stock.migrate, "stock.migrate", &migrate, p.migrate)?;
    cfg.plan.migrate = c.choice(&r.migrate, "plan.migrate", &migrate, old)?;
    if let (Some(new), Some(_)) = (&r.migrate, &raw.stock.migrate) {
        if cfg.plan.migrate != old {
            return Err(c.err(
                new,
                "plan.migrate and its old name stock.migrate disagree: keep plan.migrate".into(),
            ));
        }
    }

    let r = &raw.stock;
    let raw_classes = [
        (HintClass::Latency, &r.latency),
        (HintClass::Interactive, &r.interactive),
        (HintClass::Throughput, &r.throughput),
        (HintClass::Batch, &r.batch),
        (HintClass::Background, &r.background),
    ];
    for (class, raw_class) in raw_classes {
        let sc = c.stock_class(raw_class, class.as_str(), d.stock.class(class))?;
        // Every uid may hold the classes that do not raise (trust model): they must not
        // give more than an unprivileged process may take itself.
        if !class.is_raising() {
            if let Some(why) = sc.raises() {
                let raw = raw_class.as_ref().expect("defaults do not raise");
                let at = raw.nice.as_ref().filter(|_| sc.nice < 0);
                let at = at
                    .map(|s| s.span())
                    .or(raw.slice_us.as_ref().map(|s| s.span()));
                return Err(ConfigError::at(
                    origin,
                    src,
                    at.unwrap_or_default(),
                    format!("stock.{class}: {why}, which only latency and interactive may do"),
                ));
            }
        }
        cfg.stock.classes[class.index()] = sc;
    }

    cfg.trust.ceilings = ceilings(&c, &raw.trust.ceilings, &d.trust.ceilings, "trust.ceilings")?;

    let r = &raw.metrics;
    cfg.metrics.enabled = r
        .enabled
        .as_ref()
        .map_or(d.metrics.enabled, |s| *s.get_ref());
    if let Some(s) = &r.listen {
        let addr: std::net::SocketAddr = s.get_ref().parse().map_err(|_| {
            c.err(
                s,
                format!("metrics.listen must be ip:port, got {:?}", s.get_ref()),
            )
        })?;
        if !addr.ip().is_loopback() {
            return Err(c.err(
                s,
                format!("metrics.listen must be a loopback address, got {addr}"),
            ));
        }
        cfg.metrics.listen = addr;
    }

    cfg.manual = raw
        .manual
        .iter()
        .map(|m| validate_rule(m, src, origin, HintSource::Admin))
        .collect::<Result<_, _>>()?;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_ports() {
        assert_eq!(endpoint_port("http://127.0.0.1:8080"), Some(8080));
        assert_eq!(endpoint_port("http://localhost:11434/v1"), Some(11434));
        assert_eq!(endpoint_port("http://localhost/v1"), Some(80));
        assert_eq!(endpoint_port("unix:/run/llm.sock"), None);
        assert_eq!(endpoint_port("http://[::1]:99/x"), Some(99));
        assert_eq!(endpoint_port("https://llm.example/v1"), Some(443));
        assert_eq!(endpoint_port("https://"), None);
    }

    /// Issue 20, reproduction 7: https endpoints were refused; plain http to another host
    /// is now refused unless the admin says so.
    #[test]
    fn https_endpoints_are_accepted_and_remote_plain_http_needs_a_word() {
        let c = Config::parse(
            "[external]\nendpoint = \"https://llm.example:8443/v1\"\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.external.endpoint_port, Some(8443));
        let remote = "[external]\nendpoint = \"http://10.0.2.100:8080\"\n";
        let e = Config::parse(remote, "t").unwrap_err().to_string();
        assert!(e.starts_with("t:2:12: ") && e.contains("plain http"), "{e}");
        let opted = format!("{remote}[llm]\nplain_http_remote = true\n");
        assert!(Config::parse(&opted, "t").is_ok());
        let c = Config::parse("[llm]\nserver_uids = [998]\nmax_response_kib = 64\n", "t").unwrap();
        assert_eq!(
            (c.llm.server_uids.as_slice(), c.llm.max_response_kib),
            (&[998][..], 64)
        );
        assert!(Config::parse("[llm]\nserver_uids = [-1]\n", "t").is_err());
    }

    #[test]
    fn ttl_scans_of_one_is_rejected() {
        let e = Config::parse("[daemon]\nttl_scans = 1\n", "t")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("t:2:13: daemon.ttl_scans must be 0"), "{e}");
    }

    #[test]
    fn ttl_above_the_kernels_bound_is_rejected() {
        let e = Config::parse("[daemon]\ninterval_ms = 3600000\nttl_scans = 200\n", "t")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("720000000 ms, above the kernel's limit of 604800000 ms"),
            "{e}"
        );
        let ok = Config::parse("[daemon]\ninterval_ms = 3600000\nttl_scans = 168\n", "t");
        assert_eq!(ok.unwrap().daemon.ttl_ms(), 604_800_000);
    }

    #[test]
    fn stock_classes_override_one_key_at_a_time() {
        let cfg = Config::parse("[stock.batch]\nnice = 10\n", "t").unwrap();
        let b = cfg.stock.class(HintClass::Batch);
        assert_eq!(
            (b.policy, b.nice, b.slice_us),
            (StockPolicy::Batch, 10, 12000)
        );
    }
}
