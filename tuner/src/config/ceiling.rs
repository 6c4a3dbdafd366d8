//! Ceilings: the most favoured class a source may grant, per uid and per cgroup. `[trust]`
//! holds the ones for every source but the admin, `[llm]` tighter ones for the model.
//!
//! Classes rank latency > interactive > throughput > batch > background. The model's answer is
//! clamped down to the ceiling of the process it is about; a ceiling of `none` means the model
//! may grant nothing there, so its answer is dropped. A verdict carries a class only: the model
//! can never choose a scheduling policy (RT or otherwise) or a NUMA node.
//!
//! Which ceiling applies: the uid entry and the longest matching cgroup prefix, the lower of
//! the two when both exist; the default only when neither does.

use std::collections::{BTreeMap, HashMap};

use crate::hint::HintClass;

fn lower(a: HintClass, b: HintClass) -> HintClass {
    if a.rank() <= b.rank() {
        a
    } else {
        b
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CeilingError {
    #[error(
        "unknown class {0:?} (want latency, interactive, throughput, batch, background or none)"
    )]
    Class(String),
    #[error("ceiling uid {0:?} is not a number")]
    Uid(String),
    #[error("ceiling cgroup {0:?} must be an absolute cgroup path")]
    Cgroup(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Ceilings {
    default: HintClass,
    uid: HashMap<u32, HintClass>,
    /// Longest prefix first.
    cgroup: Vec<(String, HintClass)>,
}

impl Default for Ceilings {
    fn default() -> Self {
        Ceilings::new(DEFAULT_CEILING)
    }
}

/// Without configuration the model may grant at most `interactive`.
pub const DEFAULT_CEILING: HintClass = HintClass::Interactive;

/// A ceiling as written: a class name or `none`.
pub fn parse_ceiling(s: &str) -> Result<HintClass, CeilingError> {
    s.parse().map_err(|_| CeilingError::Class(s.to_string()))
}

impl Ceilings {
    /// Only a default; add entries with [`Ceilings::set_uid`] and [`Ceilings::set_cgroup`].
    pub fn new(default: HintClass) -> Self {
        Ceilings {
            default,
            uid: HashMap::new(),
            cgroup: Vec::new(),
        }
    }

    pub fn default_class(&self) -> HintClass {
        self.default
    }

    pub fn set_default(&mut self, class: HintClass) {
        self.default = class;
    }

    pub fn set_uid(&mut self, uid: u32, class: HintClass) {
        self.uid.insert(uid, class);
    }

    /// `prefix` must be an absolute cgroup path; a trailing `/` is ignored.
    pub fn set_cgroup(&mut self, prefix: &str, class: HintClass) -> Result<(), CeilingError> {
        if !prefix.starts_with('/') {
            return Err(CeilingError::Cgroup(prefix.to_string()));
        }
        let p = if prefix.len() > 1 {
            prefix.trim_end_matches('/')
        } else {
            prefix
        };
        self.cgroup.retain(|(q, _)| q != p);
        self.cgroup.push((p.to_string(), class));
        self.cgroup
            .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        Ok(())
    }

    /// From tables as written: uids and cgroup paths as keys, ceilings as values.
    pub fn from_raw(
        default: &str,
        uid: &BTreeMap<String, String>,
        cgroup: &BTreeMap<String, String>,
    ) -> Result<Self, CeilingError> {
        let mut c = Ceilings::new(parse_ceiling(default)?);
        for (k, v) in uid {
            let u = k
                .trim()
                .parse::<u32>()
                .map_err(|_| CeilingError::Uid(k.clone()))?;
            c.set_uid(u, parse_ceiling(v)?);
        }
        for (k, v) in cgroup {
            c.set_cgroup(k, parse_ceiling(v)?)?;
        }
        Ok(c)
    }

    /// The ceiling for a process with this uid in this cgroup.
    pub fn cap(&self, uid: u32, cgroup: &str) -> HintClass {
        let u = self.uid.get(&uid).copied();
        let c = self
            .cgroup
            .iter()
            .find(|(p, _)| cgroup_under(cgroup, p))
            .map(|(_, c)| *c);
        match (u, c) {
            (Some(u), Some(c)) => lower(u, c),
            (Some(x), None) | (None, Some(x)) => x,
            (None, None) => self.default,
        }
    }

    /// The class to apply: the model's answer clamped down to the ceiling, or `None` where the
    /// ceiling is `none` (or the answer was `none`).
    pub fn clamp(&self, answer: HintClass, uid: u32, cgroup: &str) -> Option<HintClass> {
        let c = lower(answer, self.cap(uid, cgroup));
        (c != HintClass::None).then_some(c)
    }

    /// For `tuner config check` and the docs: "default=interactive uid:0=latency ...".
    pub fn describe(&self) -> String {
        let mut s = format!("default={}", self.default);
        let mut uids: Vec<_> = self.uid.iter().collect();
        uids.sort();
        for (u, c) in uids {
            s.push_str(&format!(" uid:{u}={c}"));
        }
        for (p, c) in &self.cgroup {
            s.push_str(&format!(" cgroup:{p}={c}"));
        }
        s
    }
}

/// Whether `path` is `prefix` or lies below it, on a path component boundary.
fn cgroup_under(path: &str, prefix: &str) -> bool {
    if prefix == "/" {
        return path.starts_with('/');
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use HintClass::*;

    fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn ceilings() -> Ceilings {
        Ceilings::from_raw(
            "interactive",
            &map(&[("0", "latency"), ("1000", "batch"), ("65534", "none")]),
            &map(&[
                ("/system.slice", "throughput"),
                ("/system.slice/audio.service/", "latency"),
            ]),
        )
        .unwrap()
    }

    #[test]
    fn order_is_latency_first() {
        let order = [Latency, Interactive, Throughput, Batch, Background, None];
        assert!(order.windows(2).all(|w| w[0].rank() > w[1].rank()));
    }

    #[test]
    fn clamp_never_raises() {
        let c = ceilings();
        for answer in [Latency, Interactive, Throughput, Batch, Background] {
            for (uid, cg) in [
                (0, "/"),
                (1000, "/user.slice"),
                (7, "/system.slice/x.service"),
            ] {
                let got = c.clamp(answer, uid, cg).unwrap();
                assert!(
                    got.rank() <= answer.rank(),
                    "{answer:?} {uid} {cg} -> {got:?}"
                );
                assert!(got.rank() <= c.cap(uid, cg).rank());
            }
        }
    }

    #[test]
    fn which_ceiling_applies() {
        let c = ceilings();
        assert_eq!(
            c.cap(42, "/user.slice/user-42.slice"),
            Interactive,
            "default"
        );
        assert_eq!(c.cap(1000, "/user.slice"), Batch, "uid only");
        assert_eq!(
            c.cap(42, "/system.slice/cron.service"),
            Throughput,
            "cgroup only"
        );
        assert_eq!(
            c.cap(42, "/system.slice/audio.service"),
            Latency,
            "longest prefix"
        );
        assert_eq!(
            c.cap(1000, "/system.slice/audio.service"),
            Batch,
            "lower of uid and cgroup"
        );
        assert_eq!(c.cap(0, "/system.slice/cron.service"), Throughput);
        assert_eq!(
            c.cap(42, "/system.slicex/a"),
            Interactive,
            "component boundary"
        );
        assert_eq!(
            c.clamp(Latency, 65534, "/"),
            Option::None,
            "ceiling none drops"
        );
        assert_eq!(c.clamp(Latency, 1000, "/"), Some(Batch));
        assert_eq!(c.clamp(Background, 0, "/"), Some(Background));
    }

    #[test]
    fn default_ceiling_is_interactive() {
        let c = Ceilings::default();
        assert_eq!(c.clamp(Latency, 0, "/"), Some(Interactive));
    }

    #[test]
    fn bad_config_is_rejected() {
        let e = BTreeMap::new();
        assert_eq!(
            Ceilings::from_raw("rt", &e, &e),
            Err(CeilingError::Class("rt".into()))
        );
        assert!(matches!(
            Ceilings::from_raw("batch", &map(&[("root", "batch")]), &e),
            Err(CeilingError::Uid(_))
        ));
        assert!(matches!(
            Ceilings::from_raw("batch", &e, &map(&[("system.slice", "batch")])),
            Err(CeilingError::Cgroup(_))
        ));
        assert!(Ceilings::from_raw("none", &e, &e).is_ok());
    }

    #[test]
    fn describe_lists_everything() {
        assert_eq!(
            ceilings().describe(),
            "default=interactive uid:0=latency uid:1000=batch uid:65534=none \
             cgroup:/system.slice/audio.service=latency cgroup:/system.slice=throughput"
        );
    }
}
