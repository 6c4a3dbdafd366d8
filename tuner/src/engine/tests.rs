//! Engine passes over the fixture tree (`tests/fixtures/host2`) and synthetic hosts, written
//! through a recording sink.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::*;
use crate::app::App;
use crate::apply::recording::{set_pids, RecordingSink};
use crate::clock::ManualClock;
use crate::metrics::write_kind;
use crate::observe::snapshot::{NumaRead, Observer};
use crate::observe::synthetic::{Profile, SynthProc, SyntheticHost};

fn fixture() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/host2"))
}

struct Rig {
    engine: Engine,
    observer: Observer,
    clock: Arc<ManualClock>,
    sink: RecordingSink,
    metrics: Arc<Metrics>,
}

impl Rig {
    fn new(mode: Mode, tweak: impl FnOnce(&mut Config)) -> Self {
        Self::at(fixture().join("proc"), fixture().join("sys"), mode, tweak)
    }

    fn at(
        proc_root: PathBuf,
        sys_root: PathBuf,
        mode: Mode,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        let mut cfg = Config::default();
        cfg.observe.proc_root = proc_root;
        cfg.observe.sys_root = sys_root;
        cfg.external.enabled = true;
        tweak(&mut cfg);
        let mut app = App::from_config(cfg).unwrap();
        let clock = Arc::new(ManualClock::new(1_000));
        app.clock = clock.clone();
        let mut engine = app.engine(mode);
        engine.set_self_pid(1000);
        Rig {
            engine,
            observer: app.observer(),
            clock,
            sink: RecordingSink::new(),
            metrics: app.metrics.clone(),
        }
    }

    /// A daemon over the synthetic `host`.
    fn on(host: &SyntheticHost, tweak: impl FnOnce(&mut Config)) -> Self {
        Self::at(host.proc_root(), host.sys_root(), Mode::Daemon, tweak)
    }

    fn pass(&mut self) -> PassReport {
        let mut snap = self.observer.observe(NumaRead::Auto).unwrap();
        self.engine.prepare(&mut snap);
        let report = self.engine.pass(&snap, &mut self.sink);
        self.clock.advance(5_000);
        report
    }

    /// A pass after `host` ran the 5 s that the rig's clock moves per pass.
    fn pass_after(&mut self, host: &mut SyntheticHost) -> PassReport {
        host.advance(5_000).unwrap();
        self.pass()
    }
}

fn rows(report: &PassReport) -> HashMap<i32, &Row> {
    report.rows.iter().map(|r| (r.pid, r)).collect()
}

/// `pid`'s row in a pass after `host` ran 5 s more.
fn row_after(rig: &mut Rig, host: &mut SyntheticHost, pid: i32) -> Row {
    rows(&rig.pass_after(host))[&pid].clone()
}

/// The index of the first anonymous process of `host` (user space, `app*`, nice 0) that
/// `also` accepts; `what` names it when there is none.
fn anonymous(host: &SyntheticHost, what: &str, also: impl Fn(&SynthProc) -> bool) -> usize {
    host.procs
        .iter()
        .position(|p| !p.kthread && p.comm.starts_with("app") && p.nice == 0 && also(p))
        .expect(what)
}

/// The pid of `host`'s first anonymous CPU-bound process.
fn cpu_bound(host: &SyntheticHost) -> i32 {
    let i = anonymous(host, "a cpu-bound anonymous process", |p| {
        p.profile == Profile::CpuBound
    });
    host.procs[i].pid
}

#[test]
fn fixture_pass_decides_every_case() {
    let mut rig = Rig::new(Mode::Once, |_| {});
    let report = rig.pass();
    let r = rows(&report);
    let excluded = |pid: i32, why: &str| {
        let row = r[&pid];
        assert!(row.excluded, "pid {pid} should be excluded, got {row:?}");
        assert!(
            row.rule.contains(why),
            "pid {pid}: {} does not say {why}",
            row.rule
        );
    };
    excluded(2, "kernel-thread");
    excluded(15, "kernel-thread");
    excluded(900, "nice 10");
    excluded(950, "affinity 2");
    excluded(960, "custom slice 100 us");
    excluded(1000, "tuner-itself");
    excluded(1100, "classifier-server");

    let pw = r[&400];
    assert_eq!(
        (pw.class, pw.step, pw.rule.as_str(), pw.skipped_threads),
        (Some(HintClass::Latency), Step::Rule, "audio-server", 1)
    );
    assert_eq!(r[&990].class, Some(HintClass::Interactive));
    assert_eq!(r[&600].class, Some(HintClass::Batch));
    assert_eq!(r[&600].node, Some(0));
    assert_eq!(r[&500].node, Some(1), "{}", r[&500].node_reason);
    let mut pg = vec![r[&700].node, r[&701].node];
    pg.sort();
    assert_eq!(pg, vec![Some(0), Some(1)], "postgres instances spread");
    assert_eq!(r[&800].class, None, "no rule, no rates: open");
    assert_eq!(r[&1].class, None);

    // Pipewire: its SCHED_FIFO thread is left alone, the other two are hinted one by one.
    let ops = rig.sink.take();
    assert_eq!(set_pids(&ops), vec![400, 401, 500, 600, 700, 701, 990]);
    for op in &ops {
        if let HintOp::Set { target, hint, .. } = op {
            let want = if matches!(target.pid, 400 | 401) {
                Scope::Thread
            } else {
                Scope::Process
            };
            assert_eq!(target.scope, want, "pid {}", target.pid);
            assert_eq!(hint.ttl_ms, 30_000, "ttl = ttl_scans x interval_ms");
            assert_eq!(hint.source, HintSource::Rule);
        }
    }
    assert_eq!(
        report.open.iter().map(|(k, _)| k.0).collect::<Vec<_>>(),
        Vec::<i32>::new(),
        "nothing with rates yet"
    );
    assert_eq!(
        rig.metrics.decisions_of(Some(Step::Rule)),
        6,
        "400, 500, 600, 700, 701, 990"
    );
}

#[test]
fn unchanged_hints_are_not_rewritten_until_refresh_is_due() {
    let mut rig = Rig::new(Mode::Daemon, |_| {});
    rig.pass();
    assert_eq!(rig.sink.take().len(), 7);
    // 5 s later: nothing changed, TTL 30 s not half gone.
    let report = rig.pass();
    assert!(rig.sink.take().is_empty());
    assert_eq!(rows(&report)[&600].action, Action::Unchanged);
    rig.pass();
    assert!(rig.sink.take().is_empty());
    // 15 s after the write: half the TTL, refresh.
    let report = rig.pass();
    assert_eq!(rows(&report)[&600].action, Action::Refresh);
    assert_eq!(
        set_pids(&rig.sink.take()),
        vec![400, 401, 500, 600, 700, 701, 990]
    );
}

#[test]
fn admin_hints_in_the_kernel_are_left_alone() {
    let mut rig = Rig::new(Mode::Once, |_| {});
    rig.sink.admin.insert(600);
    let report = rig.pass();
    let row = rows(&report)[&600];
    assert!(row.excluded);
    assert_eq!(
        (row.step, row.rule.as_str()),
        (Step::Manual, "admin-kernel-hint")
    );
    assert!(!set_pids(&rig.sink.take()).contains(&600));
}

#[test]
fn failed_writes_back_off_and_are_counted() {
    let mut rig = Rig::new(Mode::Daemon, |_| {});
    rig.sink
        .fail
        .insert(500, ApplyError::PermissionDenied("nope".into()));
    let report = rig.pass();
    assert_eq!(rows(&report)[&500].action, Action::Failed);
    assert_eq!(rig.metrics.write_errors_of(write_kind::PERMISSION), 1);
    let report = rig.pass();
    assert_eq!(rows(&report)[&500].action, Action::Backoff);
    assert_eq!(
        rig.metrics.write_errors_of(write_kind::PERMISSION),
        1,
        "no retry during backoff"
    );
}

#[test]
fn vanished_processes_are_forgotten_not_errors() {
    let mut rig = Rig::new(Mode::Daemon, |_| {});
    rig.sink.fail.insert(600, ApplyError::NoSuchTask(600));
    let report = rig.pass();
    assert_ne!(rows(&report)[&600].action, Action::Failed);
    assert_eq!(rig.metrics.write_errors_of(write_kind::GONE), 1);
    assert_eq!(
        rig.engine.applied_count(),
        5,
        "six processes hinted, one of them gone"
    );
}

#[test]
fn state_is_kept_only_for_live_processes_that_have_some() {
    let mut rig = Rig::new(Mode::Daemon, |_| {});
    rig.sink
        .fail
        .insert(500, ApplyError::PermissionDenied("test".into()));
    let report = rig.pass();
    let report2 = rig.pass();
    let pids: HashSet<i32> = report.rows.iter().map(|r| r.pid).collect();
    assert!(rig.engine.procs.keys().all(|k| pids.contains(&k.0)));
    assert!(rig.engine.procs.values().all(|t| !t.is_empty()));
    assert_eq!(rows(&report2)[&500].action, Action::Backoff);
    assert_eq!(
        rig.engine
            .procs
            .values()
            .filter(|t| t.applied.is_some())
            .count(),
        rig.engine.applied_count()
    );
}

#[test]
fn writes_are_rate_limited_and_deferred() {
    let mut rig = Rig::new(Mode::Daemon, |c| {
        c.daemon.max_writes_per_s = 1;
        c.daemon.write_burst = 3;
    });
    let report = rig.pass();
    let written = rig.sink.take();
    assert_eq!(written.len(), 3);
    let deferred = report
        .rows
        .iter()
        .filter(|r| r.action == Action::Deferred)
        .count();
    assert!(deferred >= 3, "{deferred} deferred");
    // Highest confidence first: the 0.95 rules got the first tokens.
    assert!(
        set_pids(&written)
            .iter()
            .all(|p| [400, 401, 500, 600].contains(p)),
        "{:?}",
        set_pids(&written)
    );
    // Five seconds give five more tokens.
    rig.pass();
    assert_eq!(rig.sink.take().len(), 3, "burst caps the refill");
}

#[test]
fn manual_entries_fix_class_and_node_with_admin_source() {
    let mut rig = Rig::new(Mode::Once, |c| {
        let src = "[[manual]]\nname = \"pin-mystery\"\ncomm = [\"mystery-app\"]\nclass = \"background\"\nnode = 1\nstrict = true\n";
        c.manual = Config::parse(src, "m").unwrap().manual;
    });
    let report = rig.pass();
    let row = rows(&report)[&800];
    assert_eq!(
        (row.class, row.step, row.node),
        (Some(HintClass::Background), Step::Manual, Some(1))
    );
    let hint = row.hint.unwrap();
    assert!(hint.strict);
    assert_eq!(hint.source, HintSource::Admin);
    // Next pass: the admin-source hint it wrote itself is not taken for someone else's.
    rig.sink.admin.insert(800);
    let report = rig.pass();
    assert_eq!(rows(&report)[&800].step, Step::Manual);
    assert!(!rows(&report)[&800].excluded);
}

#[test]
fn external_answers_fill_open_processes_only() {
    let mut rig = Rig::new(Mode::Daemon, |c| c.heuristics.enabled = false);
    rig.pass();
    let report = rig.pass();
    let asked: Vec<ProcKey> = report.open.iter().map(|(k, _)| *k).collect();
    let mut pids: Vec<i32> = asked.iter().map(|k| k.0).collect();
    pids.sort();
    assert_eq!(
        pids,
        vec![800],
        "open processes with rates (pid 1, init, is excluded)"
    );
    rig.engine.mark_pending(&asked, 6_000);
    let report = rig.pass();
    assert!(
        report.open.is_empty(),
        "pending processes are not asked twice"
    );
    let verdicts = vec![
        ExternalVerdict {
            pid: 800,
            class: HintClass::Throughput,
            confidence: 0.9,
        },
        ExternalVerdict {
            pid: 600,
            class: HintClass::Latency,
            confidence: 1.0,
        },
    ];
    rig.engine.on_external(&asked, Ok(verdicts), 7_000);
    rig.sink.take();
    let report = rig.pass();
    let r = rows(&report);
    assert_eq!(
        (r[&800].class, r[&800].step, r[&800].source),
        (
            Some(HintClass::Throughput),
            Step::External,
            Some(HintSource::Model)
        )
    );
    assert_eq!(
        r[&600].step,
        Step::Rule,
        "an answer about a pid not asked about is ignored"
    );
    assert_eq!(r[&800].action, Action::New);
    assert!(set_pids(&rig.sink.take()).contains(&800));
}

#[test]
fn shutdown_clears_exactly_what_was_written() {
    let mut rig = Rig::new(Mode::Once, |_| {});
    rig.pass();
    let mut cleared: Vec<(i32, Scope)> = rig
        .engine
        .clear_all_ops()
        .iter()
        .map(|o| (o.target().pid, o.target().scope))
        .collect();
    cleared.sort();
    assert_eq!(
        cleared,
        vec![
            // Written thread by thread (a thread of it is left alone), cleared as a whole:
            // threads created since the last scan hold the inherited hint too.
            (400, Scope::Process),
            (500, Scope::Process),
            (600, Scope::Process),
            (700, Scope::Process),
            (701, Scope::Process),
            (990, Scope::Process)
        ]
    );
}

#[test]
fn heuristic_classes_need_stable_scans() {
    let mut host = SyntheticHost::build(40, 1, 4).unwrap();
    let busy = cpu_bound(&host);
    let mut rig = Rig::on(&host, |c| c.external.enabled = false);
    assert_eq!(rows(&rig.pass())[&busy].rule, "no-rates");
    let first = row_after(&mut rig, &mut host, busy);
    assert_eq!(first.class, None, "one scan is not enough: {}", first.rule);
    assert!(first.rule.starts_with("settling"), "{}", first.rule);
    let second = row_after(&mut rig, &mut host, busy);
    assert!(
        matches!(second.class, Some(HintClass::Batch | HintClass::Throughput)),
        "{second:?}"
    );
    assert_eq!(second.step, Step::Heuristic);
    assert_eq!(second.action, Action::New);
}

/// Issue 19, reproduction 10, through the observe layer: a process the fake proc root shows
/// at a third of a CPU and runnable the rest of the time (schedstat's run delay) is
/// CPU-bound, not "inconclusive" forever.
#[test]
fn a_contended_cpu_hog_is_judged_by_runnable_time() {
    let mut host = SyntheticHost::build(40, 1, 4).unwrap();
    let i = anonymous(&host, "an anonymous process", |_| true);
    let hog = &mut host.procs[i];
    hog.profile = Profile::Contended;
    hog.threads = 1;
    let hog = hog.pid;
    let mut rig = Rig::on(&host, |c| c.external.enabled = false);
    rig.pass();
    let mut last = None;
    for _ in 0..4 {
        last = Some(row_after(&mut rig, &mut host, hog));
    }
    let last = last.unwrap();
    assert_eq!(last.class, Some(HintClass::Batch), "{last:?}");
    assert_eq!(
        (last.step, last.rule.as_str()),
        (Step::Heuristic, "cpu-bound")
    );
}

/// Issue 19, reproduction 7: the daemon asked the model about processes whose heuristic
/// class was still settling (one scan of two), which the next scan decides by itself.
#[test]
fn processes_still_settling_are_not_sent_to_the_model() {
    let mut host = SyntheticHost::build(40, 1, 4).unwrap();
    let busy = cpu_bound(&host);
    let mut rig = Rig::on(&host, |c| {
        c.external.enabled = true;
        c.heuristics.stable_scans = 3;
    });
    rig.pass();
    for scan in 1..=3 {
        let report = rig.pass_after(&mut host);
        let row = rows(&report)[&busy].clone();
        let asked = report.open.iter().any(|(k, _)| k.0 == busy);
        assert!(!asked, "scan {scan}: {} sent to the model", row.rule);
    }
}

/// A recording sink like the stock backend: hints do not expire by themselves.
fn no_kernel_ttl(rig: &mut Rig) {
    rig.sink.ttl = false;
    rig.sink.kernel_like = false;
}

/// Issue 19, deliver 1: the stock backend honours a hint's lifetime while the daemon runs.
/// A hint the daemon no longer refreshes (its process was excluded by a reload) is put back
/// once `ttl_scans x interval_ms` passed, as the kernel would drop it; not before, and not
/// left forever.
#[test]
fn a_stock_hint_no_longer_refreshed_lapses_and_is_restored() {
    let mut rig = Rig::new(Mode::Daemon, |c| c.external.enabled = false);
    no_kernel_ttl(&mut rig);
    rig.pass();
    assert!(set_pids(&rig.sink.take()).contains(&600), "rustc hinted");
    let mut cfg = (**rig.engine.config()).clone();
    cfg.exclude.comm.push(crate::glob::Glob::new("rustc"));
    let rules = cfg.load_rules().unwrap();
    rig.engine.set_config(Arc::new(cfg), rules);
    let cleared = |ops: &[HintOp]| {
        ops.iter()
            .any(|o| matches!(o, HintOp::Clear { .. }) && o.target().pid == 600)
    };
    // 5 s per pass; the lifetime is 6 x 5 s from the write at the first pass.
    for pass in 2..=6 {
        let report = rig.pass();
        assert!(
            !cleared(&rig.sink.take()),
            "pass {pass}: still within its lifetime"
        );
        assert_eq!(rows(&report)[&600].action, Action::Excluded);
    }
    let report = rig.pass();
    assert!(cleared(&rig.sink.take()), "lapsed after 30 s: restored");
    assert_eq!(rows(&report)[&600].action, Action::Lapsed);
    assert!(rig.engine.entries().iter().all(|e| e.pid != 600));
}

/// Issue 19, deliver 1: on stock a refresh writes nothing but moves the state file's
/// timestamp; between refreshes the timestamp stays the write's, so that a restart after a
/// crash knows how much of the lifetime is left.
#[test]
fn a_stock_refresh_moves_the_timestamp_and_only_then() {
    let mut rig = Rig::new(Mode::Daemon, |c| c.external.enabled = false);
    no_kernel_ttl(&mut rig);
    rig.pass();
    rig.sink.take();
    let entry = |rig: &Rig| {
        rig.engine
            .entries()
            .into_iter()
            .find(|e| e.pid == 600)
            .expect("rustc held")
    };
    let first = entry(&rig);
    assert_eq!(
        first.hint.ttl_ms, 30_000,
        "the lifetime is recorded on stock too"
    );
    for _ in 0..2 {
        std::thread::sleep(std::time::Duration::from_millis(3));
        let report = rig.pass();
        assert_eq!(rows(&report)[&600].action, Action::Unchanged);
        assert_eq!(entry(&rig).written_unix_ms, first.written_unix_ms);
    }
    std::thread::sleep(std::time::Duration::from_millis(3));
    let report = rig.pass();
    assert_eq!(
        rows(&report)[&600].action,
        Action::Refresh,
        "at half the lifetime"
    );
    assert!(rig.sink.take().is_empty(), "a stock refresh writes nothing");
    assert!(entry(&rig).written_unix_ms > first.written_unix_ms);
    assert_eq!(entry(&rig).since_unix_ms, first.since_unix_ms);
}

#[test]
fn stock_like_sinks_rewrite_when_threads_appear() {
    let mut rig = Rig::new(Mode::Daemon, |_| {});
    rig.sink.covers_new_threads = false;
    rig.pass();
    rig.sink.take();
    // Same threads: nothing to do.
    rig.pass();
    assert!(rig.sink.take().is_empty());
}

#[test]
fn own_kernel_writes_do_not_look_manual() {
    // Recording sink reports writes as kernel hints: the exclusion step must not treat the
    // pids it hinted as manually set on the next pass.
    let mut rig = Rig::new(Mode::Daemon, |_| {});
    rig.pass();
    let report = rig.pass();
    assert!(report
        .rows
        .iter()
        .filter(|r| r.excluded && r.step == Step::Manual)
        .all(|r| [900, 950, 960].contains(&r.pid)));
}

/// Issue 20: a raised class that the trust model allowed while the process was root's is not
/// kept once it runs as nobody, though heuristic stability would hold it for more scans.
#[test]
fn a_settled_raised_class_goes_when_the_owner_changes() {
    let mut host = SyntheticHost::build(40, 1, 4).unwrap();
    let i = anonymous(&host, "an interactive anonymous process", |p| {
        p.profile == Profile::Interactive
    });
    host.procs[i].uid = 0;
    let pid = host.procs[i].pid;
    let mut rig = Rig::on(&host, |c| c.external.enabled = false);
    rig.pass();
    row_after(&mut rig, &mut host, pid);
    let settled = row_after(&mut rig, &mut host, pid);
    assert_eq!(settled.class, Some(HintClass::Interactive), "{settled:?}");
    host.procs[i].uid = crate::config::NOBODY_UID;
    let after = row_after(&mut rig, &mut host, pid);
    assert_eq!(after.class, Some(HintClass::Throughput), "{after:?}");
}

/// Issue 20, reproduction 5: one uid's processes that stay open (the model answers nothing
/// for them) filled every batch on every pass, so another user's process was never asked
/// about, and each of them was re-sent on every pass.
#[test]
fn one_uids_open_processes_leave_room_for_others_and_back_off() {
    let mut host = SyntheticHost::build(300, 1, 4).unwrap();
    for p in host.procs.iter_mut().filter(|p| !p.kthread) {
        p.uid = crate::config::NOBODY_UID;
    }
    // The scan lists the synthetic tree (tmpfs) newest first: the oldest process comes last.
    let i = anonymous(&host, "an anonymous busy process", |p| {
        p.profile != Profile::Idle
    });
    let other = &mut host.procs[i];
    other.uid = 1000;
    let other = other.pid;
    // Rewrites the status files with the uids.
    host.advance(0).unwrap();
    let mut rig = Rig::on(&host, |c| {
        c.heuristics.enabled = false;
        c.external.max_batch = 16;
    });
    let mut asks: HashMap<i32, u32> = HashMap::new();
    let mut other_asked = Vec::new();
    rig.pass();
    for pass in 0..12 {
        let report = rig.pass_after(&mut host);
        let keys: Vec<ProcKey> = report.open.iter().map(|(k, _)| *k).collect();
        assert!(keys.len() <= 16);
        for k in &keys {
            *asks.entry(k.0).or_default() += 1;
            if k.0 == other {
                other_asked.push(pass);
            }
        }
        let now = crate::clock::Clock::now_ms(rig.clock.as_ref());
        rig.engine.mark_pending(&keys, now);
        // The model answers nothing about them: they stay open.
        rig.engine.on_external(&keys, Ok(Vec::new()), now);
    }
    // Its uid has nothing else open: it is due on the first pass with rates, and gets a slot.
    assert_eq!(
        other_asked.first(),
        Some(&0),
        "uid 1000's process asked about in passes {other_asked:?}"
    );
    let most = asks.values().max().copied().unwrap_or(0);
    assert!(
        most <= 4,
        "a process asked about {most} times in 12 passes: {asks:?}"
    );
}

/// Issue 20, reproduction 7: while the classifier's server was down, every pass logged a
/// warning. Now the first failure warns, repeats are debug, and a recovery is news again.
#[test]
fn a_server_that_stays_down_is_reported_once() {
    use std::io::Write;
    #[derive(Clone, Default)]
    struct Log(Arc<std::sync::Mutex<Vec<u8>>>);
    impl Write for Log {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let log = Log::default();
    let writer = log.clone();
    let sub = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_writer(move || writer.clone())
        .finish();
    let mut rig = Rig::new(Mode::Daemon, |_| {});
    let down = || Err(ExternalError::Unavailable("cannot reach llm server".into()));
    tracing::subscriber::with_default(sub, || {
        for now in 0..10 {
            rig.engine.on_external(&[], down(), now * 5_000);
        }
        rig.engine.on_external(&[], Ok(Vec::new()), 60_000);
        rig.engine.on_external(&[], down(), 65_000);
    });
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert_eq!(
        text.matches("external classifier failed").count(),
        2,
        "{text}"
    );
}

/// Autogroups: a daemon asks the sink to lower the session of a process it hints
/// background (each fixture process is alone in its session), and nothing else; `tuner
/// once` asks for nothing, as nothing would put it back.
#[test]
fn a_background_process_alone_in_its_session_gives_up_its_autogroup_share() {
    let src = "[[manual]]\nname = \"bg\"\ncomm = [\"mystery-app\"]\nclass = \"background\"\n";
    for mode in [Mode::Daemon, Mode::Once] {
        let mut rig = Rig::new(mode, |c| {
            c.manual = Config::parse(src, "m").unwrap().manual;
        });
        rig.pass();
        let calls = rig.sink.sessions.lock().unwrap().clone();
        let last = calls.last().expect("set_sessions is called at each pass");
        let lowered: Vec<(i32, i32)> = last
            .iter()
            .filter(|w| w.nice != 0)
            .map(|w| (w.session, w.nice))
            .collect();
        match mode {
            Mode::Daemon => {
                assert_eq!(lowered, vec![(800, 19)], "{calls:?}");
                assert!(
                    last.iter().any(|w| w.session == 1000),
                    "the tuner's own session asks 0"
                );
            }
            Mode::Once => assert!(last.is_empty(), "{calls:?}"),
        }
    }
}
