//! Step 2b of classification: the roles of a matched rule ([`crate::config::roles`]) tried
//! on each thread of the process, and how long a thread keeps a role it stops showing.
//!
//! Matching is a pure function of one scan. A compute thread is idle between requests and
//! an HTTP worker sleeps between connections, so one scan says little: [`RoleMemory`] keeps
//! a role until the thread has gone `hold_scans` scans without showing any role (another
//! role's match replaces it at once), which the engine applies across passes.

use std::collections::HashMap;
use std::fmt::Write as _;

use super::{trust, Decision, Inputs, Verdict};
use crate::config::roles::Role;
use crate::hint::{HintClass, Step};
use crate::observe::{ProcObs, TaskObs};

/// What one thread showed this scan.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadRole {
    pub tid: i32,
    /// The role it matched this scan (index into [`RoleSet::roles`]) and which matchers held.
    pub matched: Option<(usize, String)>,
    /// The role it has after [`RoleMemory`]: the match, or one held from earlier scans.
    pub role: Option<usize>,
    /// Scans in a row the held role has not matched (0 when it matched now).
    pub missed_scans: u32,
    /// What was measured, for `tuner explain`.
    pub measured: String,
}

/// The roles of the rule that matched a process, the class each may have after the trust
/// model, and each thread's role.
#[derive(Debug, Clone, PartialEq)]
pub struct RoleSet {
    pub roles: Vec<Role>,
    /// Per role: its class as the trust model lets this process have it.
    pub classes: Vec<HintClass>,
    pub threads: Vec<ThreadRole>,
}

impl RoleSet {
    /// The role of thread `tid` and its class, when that class is not `process_class`.
    pub fn class_of(&self, tid: i32, process_class: HintClass) -> Option<(&str, HintClass)> {
        let t = self.threads.iter().find(|t| t.tid == tid)?;
        let i = t.role?;
        let c = self.classes[i];
        (c != process_class).then_some((self.roles[i].name.as_str(), c))
    }

    /// [`RoleSet::class_of`] for every thread that has a role class other than
    /// `process_class`, by tid (one lookup per thread instead of a scan of all of them).
    pub fn classes_by_tid(&self, process_class: HintClass) -> HashMap<i32, (&str, HintClass)> {
        self.threads
            .iter()
            .filter_map(|t| {
                let i = t.role?;
                let c = self.classes[i];
                (c != process_class).then_some((t.tid, (self.roles[i].name.as_str(), c)))
            })
            .collect()
    }

    /// The role names and how many threads have each, `listener 1, compute 2`.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for (i, r) in self.roles.iter().enumerate() {
            let n = self.threads.iter().filter(|t| t.role == Some(i)).count();
            if n > 0 {
                if !out.is_empty() {
                    out.push_str(", ");
                }
                let _ = write!(out, "{} {n}", r.name);
            }
        }
        out
    }
}

/// Each thread's role in `p`, whose decision `d` came from a rule with roles (all threads but
/// those `d` leaves alone), with the class the trust model lets each role have in this
/// process. `None` when `d` did not come from such a rule, or when the trust model gave the
/// process another class than the rule's (the roles were written for that class). `trace`
/// gets a line for `tuner explain`.
pub fn assign(
    p: &ProcObs,
    inp: &Inputs<'_>,
    d: &Decision,
    mut trace: Option<&mut Vec<String>>,
) -> Option<RoleSet> {
    if !matches!(d.step, Step::Rule | Step::Manual)
        || !inp
            .rules
            .rules
            .iter()
            .any(|r| r.name == d.rule && !r.roles.is_empty())
    {
        return None;
    }
    // The name alone could be another rule's: the rule that decided is the first match.
    let (rule, _) = inp.rules.first_match(p)?;
    if rule.roles.is_empty() || rule.name != d.rule {
        return None;
    }
    let mut note = |line: String| {
        if let Some(t) = trace.as_deref_mut() {
            t.push(line);
        }
    };
    let Some(process_class) = d.class().filter(|c| *c == rule.class) else {
        note("2b roles: not tried, the process does not have the rule's class".into());
        return None;
    };
    // A role's class passes the same trust model as the rule's: a raised class needs the
    // same basis (root's process, or the binary the rule names).
    let classes: Vec<HintClass> = rule
        .roles
        .iter()
        .map(|r| {
            let asked = Decision {
                verdict: Verdict::Class(r.class),
                ..d.clone()
            };
            let mut role_note = |l: String| note(format!("2b role {}: {l}", r.name));
            trust::gate(asked, p, Some(rule), inp.cfg, &mut role_note)
                .class()
                .filter(|c| *c != HintClass::None)
                .unwrap_or(process_class)
        })
        .collect();
    let threads: Vec<ThreadRole> = p
        .tasks
        .iter()
        .filter(|t| !d.skipped_tids.contains(&t.tid))
        .map(|t| {
            let matched = first_role(&rule.roles, t);
            ThreadRole {
                tid: t.tid,
                role: matched.as_ref().map(|(i, _)| *i),
                matched,
                missed_scans: 0,
                measured: measured(t),
            }
        })
        .collect();
    let set = RoleSet {
        roles: rule.roles.clone(),
        classes,
        threads,
    };
    let none = set.threads.iter().filter(|t| t.role.is_none()).count();
    let shown = set.summary();
    note(format!(
        "2b roles: {}; {none} threads match no role (the process's class)",
        if shown.is_empty() {
            "no thread shows a role this scan".to_owned()
        } else {
            format!("this scan {shown}")
        }
    ));
    Some(set)
}

/// Which matchers of `role` hold for `t`, or `None` when one does not.
pub fn role_matches(role: &Role, t: &TaskObs) -> Option<String> {
    let mut why = Vec::new();
    if !role.wchan.is_empty() {
        let w = t.wchan.as_deref()?;
        let g = role.wchan.iter().find(|g| g.matches(w))?;
        why.push(format!("wchan={g}"));
    }
    // A thread seen for the first time has no rates yet: a wait channel alone places it
    // when the role's other matchers are only ceilings, checked from the next scan on.
    let unmeasured_ok = !role.wchan.is_empty() && !role.has_minimums();
    match t.rates {
        None if role.needs_rates() && !unmeasured_ok => return None,
        None if role.needs_rates() => why.push("rates pending".into()),
        _ => {}
    }
    if let Some(r) = t.rates.filter(|_| role.needs_rates()) {
        let min = |v: Option<f64>, have: f64, what: &str, why: &mut Vec<String>| match v {
            Some(lo) if have < lo => false,
            Some(lo) => {
                why.push(format!("{what}>={lo}"));
                true
            }
            None => true,
        };
        let max = |v: Option<f64>, have: f64, what: &str, why: &mut Vec<String>| match v {
            Some(hi) if have > hi => false,
            Some(hi) => {
                why.push(format!("{what}<={hi}"));
                true
            }
            None => true,
        };
        let switches = r.voluntary_per_s + r.involuntary_per_s;
        // A thread that did not switch at all shows no share: it does not match a minimum.
        let invol_pct = if switches > 0.0 {
            r.involuntary_per_s / switches * 100.0
        } else {
            0.0
        };
        let ok = min(role.min_cpu_pct, r.cpu_pct, "cpu_pct", &mut why)
            && max(role.max_cpu_pct, r.cpu_pct, "cpu_pct", &mut why)
            && min(
                role.min_voluntary_per_s,
                r.voluntary_per_s,
                "voluntary_per_s",
                &mut why,
            )
            && max(
                role.max_voluntary_per_s,
                r.voluntary_per_s,
                "voluntary_per_s",
                &mut why,
            )
            && min(
                role.min_involuntary_pct,
                invol_pct,
                "involuntary_pct",
                &mut why,
            );
        if !ok {
            return None;
        }
    }
    Some(why.join(","))
}

/// The first role `t` matches, with which matchers held.
pub fn first_role(roles: &[Role], t: &TaskObs) -> Option<(usize, String)> {
    roles
        .iter()
        .enumerate()
        .find_map(|(i, r)| role_matches(r, t).map(|why| (i, why)))
}

/// What `t` showed, in a few words: `cpu 97.0%, 3 vol/s, 120 invol/s, wchan -`.
pub fn measured(t: &TaskObs) -> String {
    let rates = t.rates.map_or_else(
        || "no rates yet".to_owned(),
        |r| {
            format!(
                "cpu {:.1}%, {:.1} vol/s, {:.1} invol/s",
                r.cpu_pct, r.voluntary_per_s, r.involuntary_per_s
            )
        },
    );
    format!("{rates}, wchan {}", t.wchan.as_deref().unwrap_or("-"))
}

/// A thread's role across scans.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleMemory {
    /// The role held, by name (indices change when rules are reloaded).
    pub held: Option<String>,
    /// Scans in a row the held role has not matched.
    pub missed: u32,
}

impl RoleMemory {
    /// The role after a scan that matched `now`: a match of the held role keeps it; a scan
    /// where no role matched keeps it too until it has missed `hold_scans` scans in a row
    /// (an idle compute thread between requests). Another role's match is evidence against
    /// the held one and is taken at once: a listener that starts computing must not keep a
    /// raised class while it burns a CPU.
    pub fn update(&mut self, now: Option<&str>, hold_scans: u32) -> Option<String> {
        match (&self.held, now) {
            (Some(h), Some(n)) if h == n => self.missed = 0,
            (Some(_), None) if self.missed + 1 < hold_scans => self.missed += 1,
            _ => {
                self.held = now.map(str::to_owned);
                self.missed = 0;
            }
        }
        self.held.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::rules::parse_rules;
    use crate::observe::ThreadRates;

    /// The catalog's llama.cpp roles, in its order.
    fn roles() -> Vec<Role> {
        let rule = crate::config::rules::default_rules()
            .unwrap()
            .into_iter()
            .find(|r| r.name == "llama.cpp-server")
            .expect("the catalog has the llama.cpp server rule");
        rule.roles
    }

    fn thread(tid: i32, cpu_pct: f64, vol: f64, invol: f64, wchan: Option<&str>) -> TaskObs {
        TaskObs {
            tid,
            rates: Some(ThreadRates {
                cpu_pct,
                voluntary_per_s: vol,
                involuntary_per_s: invol,
            }),
            wchan: wchan.map(str::to_owned),
            ..Default::default()
        }
    }

    fn name(roles: &[Role], t: &TaskObs) -> Option<String> {
        first_role(roles, t).map(|(i, _)| roles[i].name.clone())
    }

    /// The threads observed on the xllamacpp server during two streaming requests
    /// (Documentation/llama-cpp-threads.md), as thread observations.
    #[test]
    fn the_observed_server_threads_get_their_roles() {
        let roles = roles();
        // Loop thread and OpenMP thread: most of the CPU, preempted far more than blocking.
        let compute = thread(6300, 72.0, 10.0, 236.0, None);
        let omp = thread(6316, 68.0, 3.6, 196.0, Some("futex_do_wait"));
        let listener = thread(6310, 0.0, 0.0, 0.0, Some("inet_csk_accept"));
        // HTTP workers streaming tokens: one voluntary switch per token, no CPU.
        let http = thread(6308, 0.0, 31.6, 2.2, Some("futex_do_wait"));
        let idle = thread(6303, 0.0, 0.0, 0.0, Some("futex_do_wait"));
        assert_eq!(name(&roles, &compute).as_deref(), Some("compute"));
        assert_eq!(name(&roles, &omp).as_deref(), Some("compute"));
        assert_eq!(name(&roles, &listener).as_deref(), Some("listener"));
        assert_eq!(name(&roles, &http).as_deref(), Some("http"));
        assert_eq!(name(&roles, &idle), None, "an idle helper has no role");
        let (_, why) = first_role(&roles, &listener).unwrap();
        assert_eq!(why, "wchan=inet_csk_accept,cpu_pct<=5");
        // Caught in accept at the instant of the scan, busy the rest of it: not a listener.
        let busy_acceptor = thread(6310, 95.0, 1.0, 200.0, Some("inet_csk_accept"));
        assert_eq!(name(&roles, &busy_acceptor).as_deref(), Some("compute"));
        let (_, why) = first_role(&roles, &compute).unwrap();
        assert!(why.contains("cpu_pct>=20"), "{why}");

        // A thread seen for the first time has no rates: only a wait channel can place it.
        let new = TaskObs {
            tid: 7000,
            wchan: Some("futex_do_wait".into()),
            ..Default::default()
        };
        assert_eq!(name(&roles, &new), None);
        let new_listener = TaskObs {
            wchan: Some("inet_csk_accept".into()),
            ..new.clone()
        };
        assert_eq!(name(&roles, &new_listener).as_deref(), Some("listener"));
        let (_, why) = first_role(&roles, &new_listener).unwrap();
        assert_eq!(why, "wchan=inet_csk_accept,rates pending");
        // Ceilings alone do not place an unmeasured thread: it would match every new thread.
        let src = "[[rule]]\nname = \"s\"\ncomm = [\"s\"]\nclass = \"throughput\"\n\
                   [[rule.role]]\nname = \"quiet\"\nmax_cpu_pct = 5.0\nclass = \"batch\"\n";
        let quiet = parse_rules(src, "t").unwrap().remove(0).roles;
        assert_eq!(name(&quiet, &new), None);
    }

    /// A role's raised class needs what the rule's would: a command line vouches for nothing.
    #[test]
    fn a_role_raises_no_more_than_its_rule_could() {
        use crate::classify::exclude::ThreadContext;
        use crate::config::rules::RuleSet;
        use crate::config::Config;
        use crate::observe::{test_proc, CpuSet};
        let cfg = Config::default();
        let rules = RuleSet {
            rules: crate::config::rules::default_rules().unwrap(),
        };
        let admin = std::collections::HashSet::new();
        let allowed = CpuSet::from_list("0-3").unwrap();
        let inp = Inputs {
            cfg: &cfg,
            rules: &rules,
            self_pid: 1,
            protected: &[],
            admin_hinted: &admin,
            threads: ThreadContext {
                base_slice_ns: Some(2_800_000),
                allowed_cpus: Some(&allowed),
                own: None,
            },
        };
        let mut p = test_proc(300, "python3");
        p.cmdline = vec!["python3".into(), "-m".into(), "llama_cpp.server".into()];
        p.tasks[0].wchan = Some("inet_csk_accept".into());
        let mut trace = Vec::new();
        let d = super::super::decide(&p, &inp, None, None, Some(&mut trace));
        assert_eq!(d.rule, "llama.cpp-server-python");
        let set = assign(&p, &inp, &d, Some(&mut trace)).expect("the rule has roles");
        assert_eq!(set.threads[0].role, Some(0), "the listener shows");
        assert_eq!(set.classes[0], HintClass::Throughput);
        assert_eq!(set.class_of(300, HintClass::Throughput), None);
        assert!(
            trace
                .iter()
                .any(|l| l.starts_with("2b role listener: 5 trust: interactive withheld")),
            "{trace:?}"
        );
        // Root's server: the role's class stands.
        p.uid = 0;
        let d = super::super::decide(&p, &inp, None, None, None);
        let set = assign(&p, &inp, &d, None).unwrap();
        assert_eq!(
            set.class_of(300, HintClass::Throughput),
            Some(("listener", HintClass::Interactive))
        );
        // Another rule decided (or none did): no roles.
        let d = super::super::decide(&test_proc(301, "rustc"), &inp, None, None, None);
        assert!(assign(&test_proc(301, "rustc"), &inp, &d, None).is_none());
    }

    #[test]
    fn every_matcher_of_a_role_must_hold() {
        let src = "[[rule]]\nname = \"s\"\ncomm = [\"s\"]\nclass = \"throughput\"\n\
                   [[rule.role]]\nname = \"spinner\"\nmin_cpu_pct = 50.0\nmin_involuntary_pct = 60.0\n\
                   max_voluntary_per_s = 100.0\nclass = \"batch\"\n";
        let roles = parse_rules(src, "t").unwrap().remove(0).roles;
        assert!(first_role(&roles, &thread(1, 90.0, 10.0, 90.0, None)).is_some());
        // Busy but blocking more than being preempted.
        assert!(first_role(&roles, &thread(1, 90.0, 60.0, 40.0, None)).is_none());
        // Preempted, but waking too often.
        assert!(first_role(&roles, &thread(1, 90.0, 150.0, 900.0, None)).is_none());
        // No switches at all: no share to speak of.
        assert!(first_role(&roles, &thread(1, 90.0, 0.0, 0.0, None)).is_none());
    }

    #[test]
    fn an_idle_compute_thread_keeps_its_role_for_hold_scans() {
        let roles = roles();
        let mut mem = RoleMemory::default();
        let busy = thread(6316, 80.0, 2.0, 150.0, None);
        let idle = thread(6316, 0.0, 0.0, 0.0, Some("futex_do_wait"));
        let now = |t: &TaskObs| name(&roles, t);
        assert_eq!(mem.update(now(&busy).as_deref(), 3), Some("compute".into()));
        // Between requests: no role shows; it stays compute for three scans in all.
        assert_eq!(mem.update(now(&idle).as_deref(), 3), Some("compute".into()));
        assert_eq!(mem.update(now(&idle).as_deref(), 3), Some("compute".into()));
        // The next request: compute again, and the count starts over.
        assert_eq!(mem.update(now(&busy).as_deref(), 3), Some("compute".into()));
        assert_eq!(mem.missed, 0);
        assert_eq!(mem.update(now(&idle).as_deref(), 3), Some("compute".into()));
        assert_eq!(mem.update(now(&idle).as_deref(), 3), Some("compute".into()));
        // Idle for as many scans as it may hold: the role goes.
        assert_eq!(mem.update(now(&idle).as_deref(), 3), None);
        assert_eq!(mem, RoleMemory::default());

        // Another role's match takes over at once: the hold bridges scans that show nothing,
        // not evidence of another job.
        let waking = thread(6316, 0.5, 4.0, 0.0, Some("futex_do_wait"));
        assert_eq!(now(&waking).as_deref(), Some("http"));
        let mut mem = RoleMemory::default();
        mem.update(Some("compute"), 3);
        assert_eq!(mem.update(now(&waking).as_deref(), 3), Some("http".into()));
        assert_eq!(mem.missed, 0);
        // hold_scans 1: no memory at all.
        let mut mem = RoleMemory::default();
        mem.update(Some("compute"), 1);
        assert_eq!(mem.update(None, 1), None);
    }
}
