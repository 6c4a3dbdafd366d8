//! `tuner bench`: the cost of one scan-classify-plan pass over a synthetic host of N
//! processes (a procfs-like tree on disk, read through the same code as `/proc`), the same
//! over this host's `/proc`, and the steady-state CPU and memory of the daemon itself.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::app;
use crate::apply::dry_run::DryRunSink;
use crate::cli::BenchArgs;
use crate::clock::{Clock, ManualClock};
use crate::config::Config;
use crate::engine::{Engine, Mode};
use crate::error::Error;
use crate::metrics::Metrics;
use crate::observe::procfs::{AttrProbe, ProcfsSource};
use crate::observe::snapshot::{NumaRead, Observer};
use crate::observe::synthetic::{ScratchDir, SyntheticHost};
use crate::observe::sysfs::SysfsSource;
use crate::output::table;
use crate::output::{out, outln};

struct Timings {
    observe_ms: Vec<f64>,
    decide_ms: Vec<f64>,
    total_ms: Vec<f64>,
    /// CPU time of the pass (user + system, this thread): what a busy machine cannot inflate.
    cpu_ms: Vec<f64>,
    procs: usize,
    threads: usize,
    hinted: usize,
}

fn thread_cpu_ms() -> f64 {
    use nix::time::{clock_gettime, ClockId};
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map_or(0.0, |t| t.tv_sec() as f64 * 1e3 + t.tv_nsec() as f64 / 1e6)
}

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return f64::NAN;
    }
    s[((s.len() - 1) as f64 * p).round() as usize]
}

/// Times `passes` passes; `between` runs untimed before each (moving synthetic counters).
fn time_passes(
    proc_root: &Path,
    sys_root: &Path,
    passes: usize,
    interval_ms: u64,
    threads: bool,
    probe: Option<AttrProbe>,
    mut between: impl FnMut() -> Result<(), Error>,
) -> Result<Timings, Error> {
    let mut cfg = Config::default();
    cfg.observe.threads = threads;
    cfg.observe.proc_root = proc_root.to_path_buf();
    cfg.observe.sys_root = sys_root.to_path_buf();
    let cfg = Arc::new(cfg);
    let rules = cfg.load_rules()?;
    let clock = Arc::new(ManualClock::new(1));
    let clock_dyn: Arc<dyn Clock> = clock.clone();
    let mut observer = Observer::new(
        Box::new(probe.map_or_else(
            || ProcfsSource::new(proc_root),
            |pr| ProcfsSource::new(proc_root).with_probe(pr),
        )),
        Box::new(SysfsSource::new(sys_root)),
        clock_dyn,
        app::observe_options(&cfg, &rules),
    );
    let mut engine = Engine::new(cfg, rules, Metrics::new(), Mode::Daemon);
    let mut sink = DryRunSink::silent(true);
    let mut t = Timings {
        observe_ms: vec![],
        decide_ms: vec![],
        total_ms: vec![],
        cpu_ms: vec![],
        procs: 0,
        threads: 0,
        hinted: 0,
    };
    // The first pass fills the caches (cmdline, exe, cgroup) and gives no rates: not timed.
    let mut snap = observer.observe(NumaRead::Auto)?;
    engine.prepare(&mut snap);
    engine.pass(&snap, &mut sink);
    for _ in 0..passes {
        between()?;
        clock.advance(interval_ms);
        let c0 = thread_cpu_ms();
        let t0 = Instant::now();
        let mut snap = observer.observe(NumaRead::Auto)?;
        let t1 = Instant::now();
        engine.prepare(&mut snap);
        let report = engine.pass(&snap, &mut sink);
        let t2 = Instant::now();
        t.cpu_ms.push(thread_cpu_ms() - c0);
        t.observe_ms.push((t1 - t0).as_secs_f64() * 1e3);
        t.decide_ms.push((t2 - t1).as_secs_f64() * 1e3);
        t.total_ms.push((t2 - t0).as_secs_f64() * 1e3);
        t.procs = snap.procs.len();
        t.threads = snap.procs.iter().map(|p| p.tasks.len().max(1)).sum();
        t.hinted = report.rows.iter().filter(|r| r.hint.is_some()).count();
    }
    Ok(t)
}

struct Steady {
    seconds: f64,
    cpu_pct: f64,
    rss_kib: u64,
    hwm_kib: u64,
    scans: u64,
}

fn proc_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix(key).and_then(|v| {
                    v.trim_start_matches(':')
                        .split_ascii_whitespace()
                        .next()?
                        .parse()
                        .ok()
                })
            })
        })
        .unwrap_or(0)
}

/// `tuner bench-child`: `threads - 1` idle threads, then wait for stdin to close.
pub fn child(threads: u32) -> Result<(), Error> {
    // Never outlive the bench.
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    for _ in 1..threads.max(1) {
        std::thread::spawn(|| loop {
            std::thread::park();
        });
    }
    let mut sink = Vec::new();
    let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
    Ok(())
}

fn spawn_children(n: usize) -> Result<Vec<std::process::Child>, Error> {
    let exe = std::env::current_exe().map_err(|e| Error::io("cannot find this executable", e))?;
    let mut children = Vec::with_capacity(n);
    for i in 0..n {
        let child = Command::new(&exe)
            .args(["bench-child", "--threads", &(1 + i % 4).to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match child {
            Ok(c) => children.push(c),
            Err(e) => {
                stop_children(children);
                return Err(Error::io("cannot start bench processes", e));
            }
        }
    }
    // Let every child start its threads.
    std::thread::sleep(Duration::from_millis(300 + n as u64));
    Ok(children)
}

fn stop_children(children: Vec<std::process::Child>) {
    for mut c in children {
        drop(c.stdin.take());
        let _ = c.wait();
    }
}

/// Runs `tuner run --backend dry-run` on this host and measures it from outside.
fn steady_state(seconds: u64, interval_ms: u64) -> Result<Steady, Error> {
    let dir =
        ScratchDir::new("bench").map_err(|e| Error::io("cannot create a scratch directory", e))?;
    let cfg_path = dir.path().join("tuner.toml");
    std::fs::write(
        &cfg_path,
        format!("[daemon]\ninterval_ms = {interval_ms}\nbackend = \"dry-run\"\n"),
    )
    .map_err(|e| Error::io("cannot write the bench config", e))?;
    let exe = std::env::current_exe().map_err(|e| Error::io("cannot find this executable", e))?;
    let mut child = Command::new(exe)
        .args(["-q", "--config"])
        .arg(&cfg_path)
        .args(["run", "--backend", "dry-run"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| Error::io("cannot start the daemon", e))?;
    let pid = child.id();
    // Warm-up: startup and the first scans (which fill caches) are not steady state.
    std::thread::sleep(Duration::from_millis((2 * interval_ms).max(2000)));
    let (t0, c0) = (Instant::now(), proc_ticks(pid));
    std::thread::sleep(Duration::from_secs(seconds));
    let (t1, c1) = (Instant::now(), proc_ticks(pid));
    let rss_kib = status_kib(pid, "VmRSS");
    let hwm_kib = status_kib(pid, "VmHWM");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .map_err(|e| Error::Runtime(format!("cannot stop the daemon: {e}")))?;
    let status = child
        .wait()
        .map_err(|e| Error::io("waiting for the daemon", e))?;
    let (Some(c0), Some(c1)) = (c0, c1) else {
        return Err(Error::Runtime(format!(
            "the daemon exited early ({status})"
        )));
    };
    if !status.success() {
        return Err(Error::Runtime(format!("the daemon failed: {status}")));
    }
    let wall = (t1 - t0).as_secs_f64();
    let cpu_s = (c1 - c0) as f64 / procfs::ticks_per_second() as f64;
    Ok(Steady {
        seconds: wall,
        cpu_pct: cpu_s / wall * 100.0,
        rss_kib,
        hwm_kib,
        scans: (wall * 1000.0 / interval_ms as f64) as u64,
    })
}

fn timing_row(name: &str, t: &Timings, passes: usize) -> Vec<String> {
    vec![
        name.to_owned(),
        t.procs.to_string(),
        t.threads.to_string(),
        format!("{:.2}", percentile(&t.observe_ms, 0.5)),
        format!("{:.2}", percentile(&t.decide_ms, 0.5)),
        format!("{:.2}", percentile(&t.total_ms, 0.5)),
        format!("{:.2}", percentile(&t.total_ms, 0.9)),
        format!("{:.2}", percentile(&t.total_ms, 1.0)),
        format!("{:.2}", percentile(&t.cpu_ms, 0.5)),
        format!("{passes}"),
        t.hinted.to_string(),
    ]
}

pub fn bench(args: BenchArgs) -> Result<(), Error> {
    let passes = args.passes.max(1);
    let interval_ms = args.interval_ms.max(100);
    let mut host = SyntheticHost::build(args.procs, args.nodes, 4)
        .map_err(|e| Error::io("cannot build the synthetic host", e))?;
    let (proc_root, sys_root) = (host.proc_root(), host.sys_root());
    let mut runs = Vec::new();
    for threads in [true, false] {
        // Thread attributes from stat files: sched_getattr cannot reach synthetic tids.
        let probe = Some(AttrProbe::Files { slice: false });
        let t = time_passes(
            &proc_root,
            &sys_root,
            passes,
            interval_ms,
            threads,
            probe,
            || {
                host.advance(interval_ms)
                    .map_err(|e| Error::io("cannot update the synthetic host", e))
            },
        )?;
        let name = format!(
            "synthetic, {} nodes, threads {}",
            args.nodes,
            if threads { "on" } else { "off" }
        );
        runs.push((name, t));
    }
    let children = spawn_children(args.live_procs)?;
    let live = time_passes(
        Path::new("/proc"),
        Path::new("/sys"),
        passes,
        interval_ms,
        true,
        None,
        || Ok(()),
    );
    let live_procs = children.len();
    stop_children(children);
    let live = live?;
    let name = if live_procs > 0 {
        format!("this host's /proc, {live_procs} started")
    } else {
        "this host's /proc".to_owned()
    };
    runs.push((name, live));

    let header = [
        "pass over",
        "procs",
        "threads",
        "observe ms",
        "decide ms",
        "median ms",
        "p90 ms",
        "max ms",
        "cpu ms",
        "passes",
        "hinted",
    ];
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|(name, t)| timing_row(name, t, passes))
        .collect();
    out!("{}", table(&header, &rows))?;
    outln!("(ms: wall-clock medians; cpu ms: median CPU time of the pass, user + system)")?;
    for (name, t) in &runs {
        let (wall, cpu) = (percentile(&t.total_ms, 0.5), percentile(&t.cpu_ms, 0.5));
        let verdict = if t.procs < 1000 {
            "n/a (fewer than 1000 processes)"
        } else if wall < 20.0 {
            "met"
        } else {
            "missed"
        };
        outln!("goal < 20 ms per pass over 1000 processes, {name}: {verdict} ({wall:.2} ms wall, {cpu:.2} ms cpu)")?;
    }

    if args.steady_s > 0 {
        let s = steady_state(args.steady_s, interval_ms)?;
        let header = [
            "daemon steady state",
            "seconds",
            "interval ms",
            "scans",
            "cpu % of a core",
            "rss MiB",
            "peak rss MiB",
        ];
        let row = vec![
            "tuner run --backend dry-run".to_owned(),
            format!("{:.1}", s.seconds),
            interval_ms.to_string(),
            s.scans.to_string(),
            format!("{:.3}", s.cpu_pct),
            format!("{:.1}", s.rss_kib as f64 / 1024.0),
            format!("{:.1}", s.hwm_kib as f64 / 1024.0),
        ];
        out!("{}", table(&header, &[row]))?;
        outln!(
            "goal: < 0.5 % of a core: {}",
            if s.cpu_pct < 0.5 { "met" } else { "missed" }
        )?;
    }
    Ok(())
}
