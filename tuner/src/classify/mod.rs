//! Classification in a fixed order, each decision carrying its provenance:
//!
//! 1. exclusions and manual settings ([`exclude`]): never touched, or set by the admin;
//! 2. the rule catalog ([`rules`]): `[[manual]]` entries, user rules, embedded rules; a rule
//!    with roles then gives each thread the role its behaviour shows ([`roles`]);
//! 3. behaviour heuristics ([`heuristics`]) from the measured rates;
//! 4. the external classifier ([`external`]), whose cached answers fill what is still open;
//! 5. the trust model ([`trust`]): what any of these may give the process, whoever asked.
//!
//! [`decide`] is a pure function of one observation and its inputs; the engine keeps the
//! state (stability of heuristic classes, the external classifier's cache).

pub mod exclude;
pub mod external;
pub mod heuristics;
pub mod roles;
pub mod rules;
pub mod trust;

use std::collections::HashSet;

use crate::config::rules::RuleSet;
use crate::config::Config;
use crate::hint::{HintClass, HintSource, Step};
use crate::observe::{CpuSet, ProcObs};
use exclude::ThreadContext;
use external::ExternalVerdict;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Leave the process alone.
    Exclude,
    /// Hint this class (`HintClass::None`: no hint is needed).
    Class(HintClass),
    /// Nothing decided yet.
    Open,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub verdict: Verdict,
    /// The step that decided; for `Open`, the last step consulted.
    pub step: Step,
    /// Which rule, exclusion or heuristic (`audio-server`, `kernel-thread`, `cpu-bound`).
    pub rule: String,
    pub confidence: f32,
    pub strict: bool,
    pub inherit: bool,
    pub spread: bool,
    /// A node fixed by the admin.
    pub node: Option<u32>,
    /// Threads left alone inside a process that is otherwise hinted.
    pub skipped_tids: Vec<i32>,
}

impl Decision {
    fn new(verdict: Verdict, step: Step, rule: impl Into<String>, confidence: f32) -> Self {
        Decision {
            verdict,
            step,
            rule: rule.into(),
            confidence,
            strict: false,
            inherit: true,
            spread: false,
            node: None,
            skipped_tids: Vec::new(),
        }
    }

    pub fn class(&self) -> Option<HintClass> {
        match self.verdict {
            Verdict::Class(c) => Some(c),
            _ => None,
        }
    }

    pub fn source(&self) -> Option<HintSource> {
        self.step.hint_source()
    }
}

/// Everything [`decide`] needs besides the process.
pub struct Inputs<'a> {
    pub cfg: &'a Config,
    pub rules: &'a RuleSet,
    pub self_pid: i32,
    /// Pids never to touch (the external classifier's server).
    pub protected: &'a [i32],
    /// Pids whose kernel hint an admin set (reported by the device).
    pub admin_hinted: &'a HashSet<i32>,
    pub threads: ThreadContext<'a>,
}

/// Classifies one process; `trace` collects a line per step for `tuner explain`.
pub fn decide(
    p: &ProcObs,
    inp: &Inputs<'_>,
    allowed_cpus: Option<&CpuSet>,
    external: Option<&ExternalVerdict>,
    mut trace: Option<&mut Vec<String>>,
) -> Decision {
    let mut note = |line: String| {
        if let Some(t) = trace.as_deref_mut() {
            t.push(line);
        }
    };

    // 1. Exclusions and manual settings.
    if let Some(why) = exclude::process_exclusion(p, &inp.cfg.exclude, inp.self_pid, inp.protected)
    {
        note(format!("1 exclusions: excluded ({why})"));
        return Decision::new(Verdict::Exclude, Step::Exclusion, why, 1.0);
    }
    if inp.admin_hinted.contains(&p.pid) {
        note("1 exclusions: the kernel holds a hint an admin set; left alone".into());
        return Decision::new(Verdict::Exclude, Step::Manual, "admin-kernel-hint", 1.0);
    }
    let mut skipped = Vec::new();
    if inp.cfg.exclude.manual_settings {
        let ctx = ThreadContext {
            allowed_cpus: allowed_cpus.or(inp.threads.allowed_cpus),
            ..inp.threads.clone()
        };
        let mut first_reason = None;
        for t in &p.tasks {
            if let Some(why) = exclude::manual_setting(t, &ctx) {
                skipped.push(t.tid);
                first_reason.get_or_insert(why);
            }
        }
        if let Some(why) = first_reason {
            if skipped.len() == p.tasks.len() {
                note(format!("1 exclusions: manual settings ({why})"));
                return Decision::new(
                    Verdict::Exclude,
                    Step::Manual,
                    format!("manual-settings: {why}"),
                    1.0,
                );
            }
            note(format!(
                "1 exclusions: {} of {} threads left alone ({why})",
                skipped.len(),
                p.tasks.len()
            ));
        }
    }
    if skipped.is_empty() {
        note("1 exclusions: none apply".into());
    }

    // 2. Rules (the admin's [[manual]] entries first).
    if let Some((rule, why)) = inp.rules.first_match(p) {
        let step = if rule.source == HintSource::Admin {
            Step::Manual
        } else {
            Step::Rule
        };
        note(format!(
            "2 rules: {:?} matched ({why}) at {} -> {}",
            rule.name, rule.origin, rule.class
        ));
        let mut d = Decision::new(
            Verdict::Class(rule.class),
            step,
            rule.name.clone(),
            rule.confidence,
        );
        d.strict = rule.strict;
        d.inherit = rule.inherit;
        d.spread = rule.spread;
        d.node = rule.node;
        d.skipped_tids = skipped;
        return trust::gate(d, p, Some(rule), inp.cfg, &mut note);
    }
    note(format!("2 rules: none of {} rules match", inp.rules.len()));

    // 3. Heuristics.
    let mut d = if inp.cfg.heuristics.enabled {
        match heuristics::classify(p.rates.as_ref(), &inp.cfg.heuristics) {
            heuristics::Outcome::Class {
                class,
                name,
                confidence,
            } => {
                note(format!(
                    "3 heuristics: {name} -> {class} (confidence {confidence:.2})"
                ));
                Decision::new(Verdict::Class(class), Step::Heuristic, name, confidence)
            }
            heuristics::Outcome::Inconclusive(why) => {
                note(format!("3 heuristics: inconclusive ({why})"));
                Decision::new(Verdict::Open, Step::Heuristic, "inconclusive", 0.0)
            }
            heuristics::Outcome::NoRates => {
                note("3 heuristics: no rates yet (first sight of this process)".into());
                Decision::new(Verdict::Open, Step::Heuristic, "no-rates", 0.0)
            }
        }
    } else {
        note("3 heuristics: disabled".into());
        Decision::new(Verdict::Open, Step::Heuristic, "disabled", 0.0)
    };

    // 4. The external classifier, for what is still open.
    if d.verdict == Verdict::Open {
        match external {
            Some(v) if v.confidence >= inp.cfg.external.min_confidence => {
                note(format!(
                    "4 external: {} (confidence {:.2})",
                    v.class, v.confidence
                ));
                d = Decision::new(
                    Verdict::Class(v.class),
                    Step::External,
                    inp.cfg.external.kind.clone(),
                    v.confidence,
                );
            }
            Some(v) => note(format!(
                "4 external: {} below min_confidence ({:.2} < {:.2}); left open",
                v.class, v.confidence, inp.cfg.external.min_confidence
            )),
            None if inp.cfg.external.enabled => note("4 external: no answer yet".into()),
            None => note("4 external: disabled".into()),
        }
    }
    d.skipped_tids = skipped;
    trust::gate(d, p, None, inp.cfg, &mut note)
}

/// What the external classifier is told about a process.
pub fn facts(p: &ProcObs) -> external::ProcFacts {
    let r = p.rates.unwrap_or_default();
    external::ProcFacts {
        pid: p.pid,
        uid: p.uid,
        comm: p.comm.clone(),
        exe: p.exe.clone(),
        cmdline: p.cmdline.clone(),
        cgroup: p.cgroup.clone(),
        nr_threads: p.nr_threads,
        cpu_pct: r.cpu_pct,
        voluntary_ctxsw_per_s: r.voluntary_per_s,
        involuntary_ctxsw_per_s: r.involuntary_per_s,
        rss_kib: p.rss_kib,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::{test_proc, Rates};

    struct Fixture {
        cfg: Config,
        rules: RuleSet,
        admin: HashSet<i32>,
        allowed: CpuSet,
    }

    impl Fixture {
        fn new() -> Self {
            let cfg = Config::default();
            let rules = RuleSet {
                rules: crate::config::rules::default_rules().unwrap(),
            };
            Fixture {
                cfg,
                rules,
                admin: HashSet::new(),
                allowed: CpuSet::from_list("0-3").unwrap(),
            }
        }

        fn decide(&self, p: &ProcObs, ext: Option<&ExternalVerdict>) -> (Decision, Vec<String>) {
            let inp = Inputs {
                cfg: &self.cfg,
                rules: &self.rules,
                self_pid: 1,
                protected: &[77],
                admin_hinted: &self.admin,
                threads: ThreadContext {
                    base_slice_ns: Some(2_800_000),
                    allowed_cpus: Some(&self.allowed),
                    own: None,
                },
            };
            let mut trace = Vec::new();
            let d = decide(p, &inp, None, ext, Some(&mut trace));
            (d, trace)
        }
    }

    fn busy(mut p: ProcObs) -> ProcObs {
        p.rates = Some(Rates {
            cpu_pct: 30.0,
            voluntary_per_s: 50.0,
            avg_burst_us: 6000.0,
            ..Default::default()
        });
        p
    }

    #[test]
    fn exclusions_win_over_rules() {
        let f = Fixture::new();
        let mut p = test_proc(77, "pipewire");
        let (d, _) = f.decide(&p, None);
        assert_eq!(
            (d.verdict, d.step, d.rule.as_str()),
            (Verdict::Exclude, Step::Exclusion, "classifier-server")
        );
        p.pid = 78;
        p.tasks[0].nice = -11;
        let (d, _) = f.decide(&p, None);
        assert_eq!((d.verdict, d.step), (Verdict::Exclude, Step::Manual));
        assert!(d.rule.contains("nice -11"), "{}", d.rule);
    }

    #[test]
    fn one_manual_thread_is_skipped_the_rest_hinted() {
        let f = Fixture::new();
        let mut p = test_proc(80, "pipewire");
        let mut rt = p.tasks[0].clone();
        rt.tid = 81;
        rt.policy = 1;
        p.tasks.push(rt);
        p.nr_threads = 2;
        let (d, trace) = f.decide(&p, None);
        assert_eq!(d.verdict, Verdict::Class(HintClass::Latency));
        assert_eq!(d.skipped_tids, vec![81]);
        assert!(
            trace[0].contains("1 of 2 threads left alone (SCHED_FIFO set on tid 81)"),
            "{trace:?}"
        );
    }

    #[test]
    fn rules_then_heuristics_then_external() {
        let f = Fixture::new();
        let (d, _) = f.decide(&test_proc(90, "rustc"), None);
        assert_eq!(
            (d.verdict, d.step, d.rule.as_str()),
            (Verdict::Class(HintClass::Batch), Step::Rule, "compiler")
        );
        assert_eq!(d.source(), Some(HintSource::Rule));

        let unknown = busy(test_proc(91, "mystery"));
        let (d, trace) = f.decide(&unknown, None);
        assert_eq!((d.verdict, d.step), (Verdict::Open, Step::Heuristic));
        assert_eq!(trace.len(), 4, "{trace:?}");

        let v = ExternalVerdict {
            pid: 91,
            class: HintClass::Throughput,
            confidence: 0.9,
        };
        let (d, _) = f.decide(&unknown, Some(&v));
        assert_eq!(
            (d.verdict, d.step),
            (Verdict::Class(HintClass::Throughput), Step::External)
        );
        assert_eq!(d.source(), Some(HintSource::Model));

        let weak = ExternalVerdict {
            confidence: 0.2,
            ..v
        };
        assert_eq!(f.decide(&unknown, Some(&weak)).0.verdict, Verdict::Open);
    }

    #[test]
    fn external_answers_never_override_rules() {
        let f = Fixture::new();
        let v = ExternalVerdict {
            pid: 92,
            class: HintClass::Latency,
            confidence: 1.0,
        };
        let (d, _) = f.decide(&busy(test_proc(92, "rustc")), Some(&v));
        assert_eq!(d.step, Step::Rule);
    }

    #[test]
    fn admin_kernel_hints_are_left_alone() {
        let mut f = Fixture::new();
        f.admin.insert(93);
        let (d, _) = f.decide(&test_proc(93, "rustc"), None);
        assert_eq!((d.verdict, d.step), (Verdict::Exclude, Step::Manual));
    }
}
