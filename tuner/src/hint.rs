//! What the tuner tells the kernel about one task: a class, a preferred node, and who said so.
//!
//! The numbers behind [`HintClass`] and [`HintSource`] come from the generated uapi bindings,
//! so this file never restates the ABI.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::uapi;

/// A scheduling class, from most to least eager to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HintClass {
    None,
    Latency,
    Interactive,
    Throughput,
    Batch,
    Background,
}

impl HintClass {
    pub const ALL: [HintClass; 6] = [
        HintClass::None,
        HintClass::Latency,
        HintClass::Interactive,
        HintClass::Throughput,
        HintClass::Batch,
        HintClass::Background,
    ];

    /// The classes a hint can carry (all but `None`), most favoured first.
    pub const HINTED: [HintClass; 5] = [
        HintClass::Latency,
        HintClass::Interactive,
        HintClass::Throughput,
        HintClass::Batch,
        HintClass::Background,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HintClass::None => "none",
            HintClass::Latency => "latency",
            HintClass::Interactive => "interactive",
            HintClass::Throughput => "throughput",
            HintClass::Batch => "batch",
            HintClass::Background => "background",
        }
    }

    /// The `SCHED_HINT_CLASS_*` number.
    pub fn to_uapi(self) -> u32 {
        match self {
            HintClass::None => uapi::SCHED_HINT_CLASS_NONE,
            HintClass::Latency => uapi::SCHED_HINT_CLASS_LATENCY,
            HintClass::Interactive => uapi::SCHED_HINT_CLASS_INTERACTIVE,
            HintClass::Throughput => uapi::SCHED_HINT_CLASS_THROUGHPUT,
            HintClass::Batch => uapi::SCHED_HINT_CLASS_BATCH,
            HintClass::Background => uapi::SCHED_HINT_CLASS_BACKGROUND,
        }
    }

    pub fn from_uapi(value: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.to_uapi() == value)
    }

    /// Classes that run more eagerly than the default; the kernel wants CAP_SYS_NICE for them.
    pub fn is_raising(self) -> bool {
        matches!(self, HintClass::Latency | HintClass::Interactive)
    }

    /// Index into per-class tables, `0..6`.
    pub fn index(self) -> usize {
        self as usize
    }

    /// How favoured the class is: latency highest, background lowest, `None` below
    /// everything (the order of [`HintClass::ALL`], reversed).
    pub fn rank(self) -> u8 {
        match self {
            HintClass::None => 0,
            c => (HintClass::ALL.len() - c.index()) as u8,
        }
    }
}

impl fmt::Display for HintClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for HintClass {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown class {s:?} (expected one of none, latency, interactive, throughput, batch, background)"))
    }
}

/// Who decided a hint; stored by the kernel and reported back, never interpreted by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HintSource {
    Admin,
    Rule,
    Heuristic,
    Model,
}

impl HintSource {
    pub const ALL: [HintSource; 4] = [
        HintSource::Admin,
        HintSource::Rule,
        HintSource::Heuristic,
        HintSource::Model,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HintSource::Admin => "admin",
            HintSource::Rule => "rule",
            HintSource::Heuristic => "heuristic",
            HintSource::Model => "model",
        }
    }

    /// The `SCHED_HINT_SRC_*` number.
    pub fn to_uapi(self) -> u32 {
        match self {
            HintSource::Admin => uapi::SCHED_HINT_SRC_ADMIN,
            HintSource::Rule => uapi::SCHED_HINT_SRC_RULE,
            HintSource::Heuristic => uapi::SCHED_HINT_SRC_HEURISTIC,
            HintSource::Model => uapi::SCHED_HINT_SRC_MODEL,
        }
    }

    /// `None` for `SCHED_HINT_SRC_UNKNOWN` and numbers this build does not know.
    pub fn from_uapi(value: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.to_uapi() == value)
    }
}

impl fmt::Display for HintSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One hint as the tuner means it; backends translate it to their own mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hint {
    pub class: HintClass,
    /// Preferred NUMA node; `None` leaves placement to the kernel.
    pub node: Option<u32>,
    /// Keep the task on its node (`SCHED_HINT_F_NODE_STRICT`); meaningless without `node`.
    pub strict: bool,
    /// Children inherit the hint (`SCHED_HINT_F_INHERIT`).
    pub inherit: bool,
    /// Lifetime in the kernel, 0 for no expiry.
    pub ttl_ms: u64,
    pub source: HintSource,
}

impl Hint {
    /// The `SCHED_HINT_F_*` bits of this hint.
    pub fn uapi_flags(&self) -> u32 {
        let mut flags = 0;
        if self.strict && self.node.is_some() {
            flags |= uapi::SCHED_HINT_F_NODE_STRICT;
        }
        if self.inherit {
            flags |= uapi::SCHED_HINT_F_INHERIT;
        }
        flags
    }

    /// Same effect in the kernel; the TTL is a lifetime, not part of what the hint says.
    pub fn same_effect(&self, other: &Hint) -> bool {
        self.class == other.class
            && self.node == other.node
            && self.strict == other.strict
            && self.inherit == other.inherit
            && self.source == other.source
    }
}

/// A hint as a backend reads it back from a task (`tuner hint get`), not one to write.
///
/// Only [`Hint`] goes from the engine to the sinks. This is the other direction, and it says
/// different things, so it is a type of its own: the source may be unknown (the stock backend
/// records none, a newer kernel may report a number this build does not know), `ttl_ms` is
/// the time left rather than the lifetime asked for, and `generation` is the kernel's count of
/// writes. Its JSON is `tuner hint get --json`'s `hint` object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KernelHint {
    pub class: HintClass,
    pub node: Option<u32>,
    pub strict: bool,
    pub inherit: bool,
    /// `None`: unknown to this build, or not reported.
    pub source: Option<HintSource>,
    /// Milliseconds left, 0 for no expiry.
    pub ttl_ms: u64,
    pub generation: u64,
}

/// Which step decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    Exclusion,
    Manual,
    Rule,
    Heuristic,
    External,
}

impl Step {
    pub const ALL: [Step; 5] = [
        Step::Exclusion,
        Step::Manual,
        Step::Rule,
        Step::Heuristic,
        Step::External,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Step::Exclusion => "exclusion",
            Step::Manual => "manual",
            Step::Rule => "rule",
            Step::Heuristic => "heuristic",
            Step::External => "external",
        }
    }

    /// The source recorded with a hint this step decided.
    pub fn hint_source(self) -> Option<HintSource> {
        match self {
            Step::Exclusion => None,
            Step::Manual => Some(HintSource::Admin),
            Step::Rule => Some(HintSource::Rule),
            Step::Heuristic => Some(HintSource::Heuristic),
            Step::External => Some(HintSource::Model),
        }
    }
}

/// A hint of `class` from `source`: no node, inherited, no expiry. For unit tests.
#[cfg(test)]
pub fn test_hint(class: HintClass, source: HintSource) -> Hint {
    Hint {
        class,
        node: None,
        strict: false,
        inherit: true,
        ttl_ms: 0,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_numbers_round_trip_and_are_distinct() {
        let mut seen = std::collections::HashSet::new();
        for c in HintClass::ALL {
            assert!(seen.insert(c.to_uapi()), "duplicate number for {c}");
            assert_eq!(HintClass::from_uapi(c.to_uapi()), Some(c));
            assert_eq!(c.as_str().parse::<HintClass>(), Ok(c));
        }
        assert_eq!(seen.len() as u32, uapi::SCHED_HINT_NR_CLASSES);
        assert_eq!(HintClass::from_uapi(uapi::SCHED_HINT_NR_CLASSES), None);
    }

    #[test]
    fn class_index_matches_uapi_order() {
        for c in HintClass::ALL {
            assert_eq!(c.index() as u32, c.to_uapi());
        }
    }

    #[test]
    fn source_numbers_round_trip() {
        for s in HintSource::ALL {
            assert_eq!(HintSource::from_uapi(s.to_uapi()), Some(s));
        }
        assert_eq!(HintSource::from_uapi(uapi::SCHED_HINT_SRC_UNKNOWN), None);
    }

    #[test]
    fn serde_names_are_lowercase() {
        let json = serde_json::to_string(&HintClass::Interactive).unwrap();
        assert_eq!(json, "\"interactive\"");
        let back: HintSource = serde_json::from_str("\"heuristic\"").unwrap();
        assert_eq!(back, HintSource::Heuristic);
        assert!("Latency".parse::<HintClass>().is_err());
    }

    #[test]
    fn strict_flag_needs_a_node() {
        let mut h = Hint {
            class: HintClass::Throughput,
            node: None,
            strict: true,
            inherit: true,
            ttl_ms: 0,
            source: HintSource::Rule,
        };
        assert_eq!(h.uapi_flags(), uapi::SCHED_HINT_F_INHERIT);
        h.node = Some(1);
        assert_eq!(
            h.uapi_flags(),
            uapi::SCHED_HINT_F_INHERIT | uapi::SCHED_HINT_F_NODE_STRICT
        );
    }
}
