//! Thread roles through the engine: a server whose threads show different jobs, written
//! thread by thread through a recording sink, scan after scan.

use std::collections::HashMap;
use std::sync::Arc;

use super::*;
use crate::apply::recording::RecordingSink;
use crate::config::rules::parse_rules;
use crate::observe::{CpuSet, TaskObs, Topology};

const RULE: &str = "[[rule]]\nname = \"srv\"\ncomm = [\"srv\"]\nclass = \"throughput\"\n";
const ROLES: &str = "[[rule.role]]\nname = \"listener\"\nwchan = [\"inet_csk_accept\"]\nclass = \"interactive\"\n\
                     [[rule.role]]\nname = \"compute\"\nmin_cpu_pct = 20.0\nclass = \"throughput\"\n\
                     [[rule.role]]\nname = \"http\"\nmax_cpu_pct = 5.0\nmin_voluntary_per_s = 2.0\nclass = \"interactive\"\n";

/// The server at scan `n` (5 s apart): 500 the main thread (idle), 501 computing (80% of a
/// CPU), 502 blocked in `listener_wchan`, 503 waking 10 times a second.
fn server(n: u64, listener_wchan: &str) -> ProcObs {
    let task = |tid: i32, cpu_ns: u64, nvcsw: u64, wchan: Option<&str>| TaskObs {
        tid,
        cpus_allowed: Some(CpuSet::from_list("0-3").unwrap()),
        slice_ns: Some(2_800_000),
        cpu_ns,
        nvcsw,
        wchan: wchan.map(str::to_owned),
        ..Default::default()
    };
    let tasks = vec![
        task(500, 0, 3, Some("futex_do_wait")),
        task(501, n * 4_000_000_000, n, None),
        task(502, 0, 0, Some(listener_wchan)),
        task(503, 0, n * 50, Some("futex_do_wait")),
    ];
    ProcObs {
        pid: 500,
        start_ticks: 77,
        ppid: 1,
        comm: "srv".into(),
        exe: Some("/usr/bin/srv".into()),
        exe_trusted: true,
        cmdline: vec!["srv".into()],
        cgroup: "/system.slice/srv.service".into(),
        uid: 1000,
        nr_threads: 4,
        cpu_ns: tasks.iter().map(|t| t.cpu_ns).sum(),
        nvcsw: tasks.iter().map(|t| t.nvcsw).sum(),
        tasks,
        ..Default::default()
    }
}

fn snapshot(n: u64, p: ProcObs) -> Snapshot {
    Snapshot {
        at_ms: 1_000 + n * 5_000,
        scan_no: n,
        procs: vec![p],
        cpu_times: Vec::new(),
        topology: Topology::flat(CpuSet::from_list("0-3").unwrap()),
        allowed_cpus: HashMap::new(),
        protected: Vec::new(),
    }
}

fn engine(rules: &str) -> Engine {
    let mut cfg = Config::default();
    cfg.rules.role_hold_scans = 2;
    let rules = RuleSet {
        rules: parse_rules(rules, "t.toml").unwrap(),
    };
    let mut e = Engine::new(Arc::new(cfg), rules, Metrics::new(), Mode::Daemon);
    e.set_self_pid(1);
    // No refreshes: every op below is a change.
    e.set_ttl_ms(Some(0));
    e
}

fn pass(e: &mut Engine, sink: &mut RecordingSink, n: u64, listener_wchan: &str) -> PassReport {
    let mut snap = snapshot(n, server(n, listener_wchan));
    e.prepare(&mut snap);
    e.pass(&snap, sink)
}

/// Per target tid: scope and class of each set, in tid order.
fn sets(ops: &[HintOp]) -> Vec<(i32, Scope, HintClass)> {
    let mut v: Vec<_> = ops
        .iter()
        .filter_map(|o| match o {
            HintOp::Set { target, hint, .. } => Some((target.pid, target.scope, hint.class)),
            HintOp::Clear { .. } => None,
        })
        .collect();
    v.sort_by_key(|s| s.0);
    v
}

#[test]
fn roles_are_written_per_thread_changed_held_and_cleared() {
    use HintClass::{Interactive as I, Throughput as T};
    let mut sink = RecordingSink::new();
    let mut e = engine(&format!("{RULE}{ROLES}"));

    // First sight: no rates yet, but the listener shows by its wait channel. Its thread gets
    // its role's class, the others the process's, one by one.
    let r = pass(&mut e, &mut sink, 0, "inet_csk_accept");
    assert_eq!(r.rows[0].action, Action::New);
    assert_eq!(r.rows[0].role_summary(), "listener 1");
    let ops = sink.take();
    assert_eq!(
        sets(&ops),
        [
            (500, Scope::Thread, T),
            (501, Scope::Thread, T),
            (502, Scope::Thread, I),
            (503, Scope::Thread, T)
        ]
    );
    // A raised class is not passed on to what the listener creates.
    let listener_set = ops.iter().find(|o| o.target().pid == 502).unwrap();
    assert!(matches!(listener_set, HintOp::Set { hint, .. } if !hint.inherit));

    // With rates: the busy thread is compute (the process's class: nothing to change for
    // it), the waking one an HTTP worker: only that thread is written.
    let r = pass(&mut e, &mut sink, 1, "inet_csk_accept");
    assert_eq!(r.rows[0].action, Action::Changed);
    assert_eq!(r.rows[0].role_summary(), "compute 1, listener 1, http 1");
    assert_eq!(sets(&sink.take()), [(503, Scope::Thread, I)]);
    let entry = &e.entries()[0];
    assert!(entry.per_thread);
    assert_eq!(
        entry
            .thread_classes
            .iter()
            .map(|c| (c.tid, c.class))
            .collect::<Vec<_>>(),
        [(502, I), (503, I)]
    );

    // The listener stops showing its role: held for role_hold_scans (2) scans, then gone,
    // and its thread takes the process's class again.
    let r = pass(&mut e, &mut sink, 2, "futex_do_wait");
    assert_eq!(r.rows[0].action, Action::Unchanged);
    let held = r.rows[0].roles.iter().find(|t| t.tid == 502).unwrap();
    assert_eq!(
        (
            held.role.as_deref(),
            held.matched.as_deref(),
            held.missed_scans
        ),
        (Some("listener"), None, 1)
    );
    assert!(sink.take().is_empty());
    let r = pass(&mut e, &mut sink, 3, "futex_do_wait");
    assert_eq!(r.rows[0].action, Action::Changed);
    assert_eq!(
        sets(&sink.take())
            .into_iter()
            .filter(|s| s.0 == 502)
            .collect::<Vec<_>>(),
        [(502, Scope::Thread, T)]
    );

    // The state file keeps the role classes, so a run killed now can be taken up or undone.
    let text = serde_json::to_string(&e.entries()).unwrap();
    let entries: Vec<Entry> = serde_json::from_str(&text).unwrap();
    assert_eq!(entries[0].thread_classes.len(), 1, "{text}");

    // Restarted with on_restart = "restore": every thread written is put back.
    let mut after = engine(&format!("{RULE}{ROLES}"));
    after.resume(entries.clone(), OnRestart::Restore);
    pass(&mut after, &mut sink, 4, "futex_do_wait");
    let ops = sink.take();
    let mut restored: Vec<(i32, Scope)> = ops
        .iter()
        .filter(|o| matches!(o, HintOp::Clear { .. }))
        .map(|o| (o.target().pid, o.target().scope))
        .collect();
    restored.sort();
    assert_eq!(restored, [(500, Scope::Process)]);

    // Restarted with "adopt": the role threads are taken up as they are; nothing is written
    // while they keep their roles.
    let mut adopted = engine(&format!("{RULE}{ROLES}"));
    adopted.resume(entries, OnRestart::Adopt);
    pass(&mut adopted, &mut sink, 4, "futex_do_wait");
    let r = pass(&mut adopted, &mut sink, 5, "futex_do_wait");
    assert_eq!(r.rows[0].action, Action::Unchanged);
    sink.take();

    // The tuner exits: one clear of the whole process, every thread it wrote among those
    // the clear names.
    let clears = e.clear_all_ops();
    assert_eq!(clears.len(), 1);
    assert!(
        matches!(&clears[0], HintOp::Clear { target, tids, .. }
            if *target == Target { pid: 500, scope: Scope::Process } && tids == &[500, 501, 502, 503]),
        "{clears:?}"
    );

    // The rule loses its roles (a reload): the process is hinted as a whole again.
    let cfg = e.config().clone();
    e.set_config(
        cfg,
        RuleSet {
            rules: parse_rules(RULE, "t.toml").unwrap(),
        },
    );
    let r = pass(&mut e, &mut sink, 4, "inet_csk_accept");
    assert_eq!(r.rows[0].action, Action::Changed);
    assert!(r.rows[0].roles.is_empty());
    assert_eq!(sets(&sink.take()), [(500, Scope::Process, T)]);
    assert!(e.entries()[0].thread_classes.is_empty());

    // The rule says no hint at all: every thread's hint is cleared.
    let cfg = e.config().clone();
    e.set_config(
        cfg,
        RuleSet {
            rules: parse_rules(
                &format!("{}{ROLES}", RULE.replace("throughput", "none")),
                "t.toml",
            )
            .unwrap(),
        },
    );
    pass(&mut e, &mut sink, 5, "inet_csk_accept");
    let ops = sink.take();
    assert!(sets(&ops).is_empty(), "{ops:?}");
    assert_eq!(crate::apply::recording::cleared_pids(&ops), [500]);
    assert!(e.entries().is_empty());
}

#[test]
fn a_connection_thread_that_comes_and_goes_writes_only_itself() {
    let mut sink = RecordingSink::new();
    let mut e = engine(&format!("{RULE}{ROLES}"));
    pass(&mut e, &mut sink, 0, "inet_csk_accept");
    pass(&mut e, &mut sink, 1, "inet_csk_accept");
    sink.take();
    // cpp-httplib adds a worker for a connection past its pool: it holds the process's hint
    // (no rates yet), and it alone is written.
    let with_extra = |n: u64| {
        let mut p = server(n, "inet_csk_accept");
        let mut t = p.tasks[3].clone();
        t.tid = 504;
        p.tasks.push(t);
        p.nr_threads = 5;
        p
    };
    let mut snap = snapshot(2, with_extra(2));
    e.prepare(&mut snap);
    let r = e.pass(&snap, &mut sink);
    assert_eq!(r.rows[0].action, Action::Changed);
    assert_eq!(
        sets(&sink.take()),
        [(504, Scope::Thread, HintClass::Throughput)]
    );
    // Gone again a scan later: nothing to write, and the tuner holds four threads.
    let r = pass(&mut e, &mut sink, 3, "inet_csk_accept");
    assert_eq!(r.rows[0].action, Action::Unchanged);
    assert!(sink.take().is_empty());
    let clears = e.clear_all_ops();
    assert!(
        matches!(&clears[..], [HintOp::Clear { tids, .. }] if tids == &[500, 501, 502, 503]),
        "{clears:?}"
    );
}

#[test]
fn a_thread_set_by_the_server_itself_gets_no_role() {
    let mut sink = RecordingSink::new();
    let mut e = engine(&format!("{RULE}{ROLES}"));
    let mut p = server(0, "inet_csk_accept");
    // The server pinned its listener (as llama.cpp's --cpu-mask pins its compute threads).
    p.tasks[2].cpus_allowed = Some(CpuSet::from_list("1").unwrap());
    let mut snap = snapshot(0, p);
    e.prepare(&mut snap);
    let r = e.pass(&snap, &mut sink);
    assert!(r.rows[0].roles.iter().all(|t| t.tid != 502));
    let ops = sink.take();
    assert!(ops.iter().all(|o| o.target().pid != 502), "{ops:?}");
    assert!(sets(&ops).iter().all(|s| s.2 == HintClass::Throughput));
}

/// A thread seen once in `accept` and then computing at 100% of a CPU matches `compute`:
/// another role's match is evidence against the held role, which goes at once, not after
/// `role_hold_scans` (12 by default, a minute) with a raised class on a spinning thread.
#[test]
fn a_listener_that_turns_into_a_spinner_loses_its_raised_class_at_once() {
    let cfg = Config::default();
    assert_eq!(cfg.rules.role_hold_scans, 12);
    let rules = RuleSet {
        rules: parse_rules(&format!("{RULE}{ROLES}"), "t.toml").unwrap(),
    };
    let mut e = Engine::new(Arc::new(cfg), rules, Metrics::new(), Mode::Daemon);
    e.set_self_pid(1);
    e.set_ttl_ms(Some(0));
    let mut sink = RecordingSink::new();
    let mut snap = snapshot(0, server(0, "inet_csk_accept"));
    e.prepare(&mut snap);
    e.pass(&snap, &mut sink);
    assert!(sets(&sink.take()).contains(&(502, Scope::Thread, HintClass::Interactive)));

    let mut p = server(1, "futex_do_wait");
    // 502 now burns a whole CPU and never blocks.
    p.tasks[2].cpu_ns = 5_000_000_000;
    p.tasks[2].wchan = None;
    p.tasks[2].nivcsw = 500;
    p.cpu_ns = p.tasks.iter().map(|t| t.cpu_ns).sum();
    let mut snap = snapshot(1, p);
    e.prepare(&mut snap);
    let r = e.pass(&snap, &mut sink);
    let t = r.rows[0].roles.iter().find(|t| t.tid == 502).unwrap();
    assert_eq!(t.role.as_deref(), Some("compute"), "{t:?}");
    assert!(sets(&sink.take()).contains(&(502, Scope::Thread, HintClass::Throughput)));
    let entry = &e.entries()[0];
    assert!(
        entry.thread_classes.iter().all(|c| c.tid != 502),
        "{:?}",
        entry.thread_classes
    );
}

/// The server with `extra` more idle helper threads (tids from 600).
fn big_server(n: u64, extra: i32) -> ProcObs {
    let mut p = server(n, "inet_csk_accept");
    let t = p.tasks[0].clone();
    for tid in 600..600 + extra {
        p.tasks.push(TaskObs { tid, ..t.clone() });
    }
    p.nr_threads = p.tasks.len() as u32;
    p
}

/// Roles turn one process-scope write into one write per thread: a server with more
/// threads than `write_burst` (400; llama-server on a 256-CPU host has its OpenMP team and
/// the httplib pool) must still be written, charged at most the burst, not deferred on
/// every pass while draining the bucket of everyone else.
#[test]
fn a_server_with_more_threads_than_the_write_burst_is_written() {
    for rules in [format!("{RULE}{ROLES}"), RULE.to_owned()] {
        let mut sink = RecordingSink::new();
        let mut e = engine(&rules);
        let mut snap = snapshot(0, big_server(0, 500));
        e.prepare(&mut snap);
        let r = e.pass(&snap, &mut sink);
        assert_eq!(r.rows[0].action, Action::New, "{rules}");
        assert!(!sink.take().is_empty());
    }
}

/// One refused process does not drain the bucket for those behind it: a work item is
/// charged all at once or not at all, and the first refusal stops the pass's writes, so the
/// refused one is first at the next pass.
#[test]
fn a_refused_write_takes_no_tokens_and_goes_first_next_time() {
    let mut cfg = Config::default();
    cfg.rules.role_hold_scans = 2;
    cfg.daemon.write_burst = 10;
    cfg.daemon.max_writes_per_s = 1;
    let rules = RuleSet {
        rules: parse_rules(&format!("{RULE}{ROLES}"), "t.toml").unwrap(),
    };
    let mut e = Engine::new(Arc::new(cfg), rules, Metrics::new(), Mode::Daemon);
    e.set_self_pid(1);
    e.set_ttl_ms(Some(0));
    let mut sink = RecordingSink::new();
    // 20 threads, written one by one: 20 ops, charged the burst of 10.
    let mut snap = snapshot(0, big_server(0, 16));
    e.prepare(&mut snap);
    let r = e.pass(&snap, &mut sink);
    assert_eq!(r.rows[0].action, Action::New);
    assert_eq!(sink.take().len(), 20);
    // The bucket is empty; five seconds refill five tokens, too few for eight new threads
    // and a new HTTP worker: nothing is taken, and ten seconds in all refill enough.
    let mut snap = snapshot(1, big_server(1, 24));
    e.prepare(&mut snap);
    let r = e.pass(&snap, &mut sink);
    assert_eq!(r.rows[0].action, Action::Deferred);
    assert!(sink.take().is_empty());
    let mut snap = snapshot(2, big_server(2, 24));
    e.prepare(&mut snap);
    let r = e.pass(&snap, &mut sink);
    assert_eq!(r.rows[0].action, Action::Changed);
    assert!(!sink.take().is_empty());
}

/// On a kernel backend a refresh of threads written one by one for their roles goes as one
/// process-scope write and the role threads again, not as a write per thread.
#[test]
fn a_refresh_goes_at_process_scope_with_the_role_threads_after() {
    let mut sink = RecordingSink::new();
    let mut e = engine(&format!("{RULE}{ROLES}"));
    e.set_ttl_ms(Some(8_000));
    let mut snap = snapshot(0, big_server(0, 100));
    e.prepare(&mut snap);
    e.pass(&snap, &mut sink);
    assert_eq!(sink.take().len(), 104);
    // Five seconds later: past half the lifetime, nothing changed.
    let mut snap = snapshot(1, big_server(1, 100));
    e.prepare(&mut snap);
    let r = e.pass(&snap, &mut sink);
    let ops = sink.take();
    assert_eq!(r.rows[0].action, Action::Changed, "503 became http");
    let mut snap = snapshot(2, big_server(2, 100));
    e.prepare(&mut snap);
    let r = e.pass(&snap, &mut sink);
    assert_eq!(r.rows[0].action, Action::Refresh, "{ops:?}");
    let ops = sink.take();
    let written: Vec<(i32, Scope, HintClass)> = ops
        .iter()
        .filter_map(|o| match o {
            HintOp::Set { target, hint, .. } => Some((target.pid, target.scope, hint.class)),
            HintOp::Clear { .. } => None,
        })
        .collect();
    // The process first, then its role threads over it.
    assert_eq!(
        written,
        [
            (500, Scope::Process, HintClass::Throughput),
            (502, Scope::Thread, HintClass::Interactive),
            (503, Scope::Thread, HintClass::Interactive)
        ]
    );
    // The state still names every thread, thread by thread.
    assert!(e.entries()[0].per_thread);
}

/// On the ioctl backend a thread created after the last scan inherited the process's hint
/// and was never written or recorded: clearing thread by thread would leave it hinted after
/// the tuner exits, or after the process leaves its rule. The clear goes at process scope,
/// which clears the whole thread group on the patched kernel.
#[test]
fn exit_and_a_process_leaving_its_rule_clear_the_whole_thread_group() {
    let mut sink = RecordingSink::new();
    let mut e = engine(&format!("{RULE}{ROLES}"));
    pass(&mut e, &mut sink, 0, "inet_csk_accept");
    sink.take();
    let whole = Target {
        pid: 500,
        scope: Scope::Process,
    };
    let clears = e.clear_all_ops();
    assert_eq!(
        clears.iter().map(HintOp::target).collect::<Vec<_>>(),
        [whole],
        "{clears:?}"
    );

    // The rule says no hint any more: the same clear.
    let cfg = e.config().clone();
    e.set_config(
        cfg,
        RuleSet {
            rules: parse_rules(
                &format!("{}{ROLES}", RULE.replace("throughput", "none")),
                "t.toml",
            )
            .unwrap(),
        },
    );
    pass(&mut e, &mut sink, 1, "inet_csk_accept");
    let ops = sink.take();
    assert_eq!(
        ops.iter().map(HintOp::target).collect::<Vec<_>>(),
        [whole],
        "{ops:?}"
    );
    assert!(e.entries().is_empty());
}
