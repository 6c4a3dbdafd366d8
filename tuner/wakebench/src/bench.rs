//! One benchmark run: start the threads, hint them, warm up, measure, stop, collect.
//!
//! Startup is two-phase so hints land before any measured work: every thread pins itself,
//! reports its tid and waits at a gate; the main thread applies the classes through the
//! [`ClassSetter`] and then opens the gate, or aborts the run when anything failed.

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use nix::sched::CpuSet;
use tuner::hint::HintClass;

use crate::background::{self, Counter};
use crate::cli::Config;
use crate::cpus::CpuList;
use crate::error::Error;
use crate::hint::ClassSetter;
use crate::report::{Measured, Report};
use crate::spin;
use crate::sys;
use crate::workers::{self, Group, Phase, WorkerStats};

const STACK_BYTES: usize = 256 * 1024;
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
const CALIBRATION_TRIALS: u32 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Message,
    Worker,
    Background,
}

/// A started thread, ready to be hinted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registered {
    pub role: Role,
    pub tid: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GateState {
    Closed,
    Go,
    Abort,
}

/// Holds started threads until the main thread says go or abort.
struct Gate {
    state: Mutex<GateState>,
    cv: Condvar,
}

impl Gate {
    fn new() -> Self {
        Self {
            state: Mutex::new(GateState::Closed),
            cv: Condvar::new(),
        }
    }

    /// Whether to run (`false`: abort).
    fn wait(&self) -> bool {
        let guard = self.state.lock().expect("gate lock is never poisoned");
        let guard = self
            .cv
            .wait_while(guard, |s| *s == GateState::Closed)
            .expect("gate lock is never poisoned");
        *guard == GateState::Go
    }

    fn open(&self, go: bool) {
        *self.state.lock().expect("gate lock is never poisoned") =
            if go { GateState::Go } else { GateState::Abort };
        self.cv.notify_all();
    }
}

/// What every thread needs to start.
#[derive(Clone)]
struct Startup {
    tx: mpsc::Sender<Result<Registered, Error>>,
    gate: Arc<Gate>,
    pin: Option<(CpuSet, String)>,
}

impl Startup {
    /// Pins the calling thread, registers it and waits at the gate; `true` to run.
    fn enter(&self, role: Role) -> bool {
        let pinned = match &self.pin {
            Some((set, list)) => sys::pin_current_thread(set).map_err(|errno| Error::Pin {
                thread: thread::current().name().unwrap_or("?").to_string(),
                cpus: list.clone(),
                errno,
            }),
            None => Ok(()),
        };
        let ok = pinned.is_ok();
        let reg = pinned.map(|()| Registered {
            role,
            tid: sys::gettid(),
        });
        if self.tx.send(reg).is_err() {
            return false;
        }
        self.gate.wait() && ok
    }
}

/// Checks that every CPU of `--cpus` is one this process may use.
pub fn check_cpus(cpus: Option<&CpuList>) -> Result<(), Error> {
    let Some(list) = cpus else {
        return Ok(());
    };
    let allowed = sys::current_affinity().map_err(Error::Affinity)?;
    match list.first_missing_from(&allowed) {
        None => Ok(()),
        Some(cpu) => Err(Error::CpuUnavailable {
            cpu,
            list: list.to_string(),
            allowed: CpuList::from_cpuset(&allowed).to_string(),
        }),
    }
}

fn spawn<T: Send + 'static>(
    name: String,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<T>, Error> {
    thread::Builder::new()
        .name(name.clone())
        .stack_size(STACK_BYTES)
        .spawn(f)
        .map_err(|source| Error::Spawn { name, source })
}

fn join<T>(h: JoinHandle<T>) -> Result<T, Error> {
    let name = h.thread().name().unwrap_or("?").to_string();
    h.join().map_err(|_| Error::Panicked(name))
}

type FutexResult<T> = Result<T, Error>;

#[derive(Default)]
struct Threads {
    messages: Vec<JoinHandle<FutexResult<u64>>>,
    workers: Vec<JoinHandle<FutexResult<WorkerStats>>>,
    background: Vec<JoinHandle<()>>,
}

impl Threads {
    fn len(&self) -> usize {
        self.messages.len() + self.workers.len() + self.background.len()
    }

    /// Joins everything; the first error wins. Returns the merged worker statistics.
    fn join_all(self) -> Result<WorkerStats, Error> {
        let mut first_err = None;
        let mut total = WorkerStats::default();
        for h in self.messages {
            if let Err(e) = join(h).and_then(|r| r) {
                first_err.get_or_insert(e);
            }
        }
        for h in self.workers {
            match join(h).and_then(|r| r) {
                Ok(s) => {
                    total.hist.merge(&s.hist);
                    total.cycles += s.cycles;
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        for h in self.background {
            if let Err(e) = join(h) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(total), Err)
    }
}

fn futex_err(source: std::io::Error) -> Error {
    Error::Futex {
        thread: thread::current().name().unwrap_or("?").to_string(),
        source,
    }
}

fn spawn_all(
    cfg: &Config,
    start: &Startup,
    phase: &Arc<Phase>,
    counters: &Arc<[Counter]>,
    work_units: u64,
    threads: &mut Threads,
) -> Result<(), Error> {
    for g in 0..cfg.message_threads {
        let group = Arc::new(Group::new(cfg.workers));
        for w in 0..cfg.workers {
            let (group, phase, start) = (Arc::clone(&group), Arc::clone(phase), start.clone());
            threads.workers.push(spawn(format!("wb-w{g}.{w}"), move || {
                if !start.enter(Role::Worker) {
                    return Ok(WorkerStats::default());
                }
                workers::worker_loop(&group, w, work_units, &phase).map_err(futex_err)
            })?);
        }
        let (phase, start) = (Arc::clone(phase), start.clone());
        let interval = Duration::from_micros(cfg.interval_us);
        threads.messages.push(spawn(format!("wb-msg{g}"), move || {
            if !start.enter(Role::Message) {
                return Ok(0);
            }
            workers::message_loop(&group, &phase, interval).map_err(futex_err)
        })?);
    }
    for b in 0..cfg.background {
        let (counters, phase, start) = (Arc::clone(counters), Arc::clone(phase), start.clone());
        threads.background.push(spawn(format!("wb-bg{b}"), move || {
            if start.enter(Role::Background) {
                background::background_loop(&counters[b], &phase);
            }
        })?);
    }
    Ok(())
}

/// Collects one registration per started thread and applies the classes.
fn register_and_hint(
    cfg: &Config,
    rx: &mpsc::Receiver<Result<Registered, Error>>,
    started: usize,
    setter: &mut dyn ClassSetter,
) -> Result<Vec<Registered>, Error> {
    let mut regs = Vec::with_capacity(started);
    let mut first_err = None;
    for _ in 0..started {
        match rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(Ok(r)) => regs.push(r),
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(_) => return Err(Error::StartupTimeout(STARTUP_TIMEOUT.as_secs())),
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    for r in &regs {
        let class = match r.role {
            Role::Message | Role::Worker => cfg.hint_workers,
            Role::Background => cfg.hint_background,
        };
        if class != HintClass::None {
            setter.set_thread_class(r.tid, class)?;
        }
        if r.role != Role::Background && cfg.slice_us != 0 {
            sys::set_fair_slice(r.tid, cfg.slice_us * 1_000).map_err(|errno| Error::Slice {
                tid: r.tid,
                slice_us: cfg.slice_us,
                errno,
            })?;
        }
    }
    Ok(regs)
}

fn snapshot(counters: &[Counter]) -> Vec<u64> {
    counters.iter().map(Counter::get).collect()
}

/// Runs the benchmark of `cfg`, setting classes through `setter`.
pub fn run_with(cfg: &Config, setter: &mut dyn ClassSetter) -> Result<Report, Error> {
    check_cpus(cfg.cpus.as_ref())?;
    // Before any thread starts, so that none of them inherits a mask that lets the signal in.
    if cfg.start_on_sigusr1 {
        sys::block_sigusr1().map_err(Error::Signal)?;
    }
    let units_per_us = spin::calibrate_units_per_us(CALIBRATION_TRIALS);
    let work_units = spin::units_for_us(cfg.work_us, units_per_us);

    let phase = Arc::new(Phase::default());
    let counters: Arc<[Counter]> = (0..cfg.background).map(|_| Counter::default()).collect();
    let gate = Arc::new(Gate::new());
    let (tx, rx) = mpsc::channel();
    let start = Startup {
        tx,
        gate: Arc::clone(&gate),
        pin: cfg.cpus.as_ref().map(|l| (l.to_cpuset(), l.to_string())),
    };
    let mut threads = Threads::default();
    let spawned = spawn_all(cfg, &start, &phase, &counters, work_units, &mut threads);
    drop(start);
    let ready = spawned.and_then(|()| register_and_hint(cfg, &rx, threads.len(), setter));
    gate.open(ready.is_ok());
    if let Err(e) = ready {
        phase.shutdown.store(true, Ordering::Relaxed);
        // The threads saw the abort; their own results add nothing to `e`.
        let _ = threads.join_all();
        return Err(e);
    }

    thread::sleep(cfg.warmup());
    if cfg.start_on_sigusr1 {
        if let Err(errno) = sys::wait_sigusr1() {
            phase.shutdown.store(true, Ordering::Relaxed);
            let _ = threads.join_all();
            return Err(Error::Signal(errno));
        }
    }
    let bg_before = snapshot(&counters);
    let t0_ns = sys::monotonic_ns();
    phase.measuring.store(true, Ordering::Relaxed);
    thread::sleep(cfg.duration());
    phase.measuring.store(false, Ordering::Relaxed);
    let t1_ns = sys::monotonic_ns();
    let bg_after = snapshot(&counters);
    phase.shutdown.store(true, Ordering::Relaxed);

    let stats = threads.join_all()?;
    let measured_s = (t1_ns - t0_ns) as f64 / 1e9;
    let measured = Measured {
        hist: stats.hist,
        cycles: stats.cycles,
        measured_s,
        background_per_thread: background::rates(&bg_before, &bg_after, measured_s),
        units_per_us,
        work_units,
    };
    Ok(Report::new(measured, cfg.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Args;
    use crate::hint::{HintError, NoDevice, RecordingSetter};
    use clap::Parser;
    use std::collections::HashSet;

    fn config(args: &[&str]) -> Config {
        let argv = std::iter::once("wakebench").chain(args.iter().copied());
        Config::try_from(Args::parse_from(argv)).unwrap()
    }

    #[test]
    fn short_run_without_hints_measures_wakeups() {
        let cfg = config(&[
            "--message-threads=1",
            "--workers=2",
            "--work-us=20",
            "--background=1",
            "--cpus=0",
            "--duration-s=0.5",
            "--warmup-s=0.1",
        ]);
        let r = run_with(&cfg, &mut NoDevice).unwrap();
        assert!(r.samples > 0, "no samples");
        assert!(r.rps > 0.0);
        let ps = [r.p50_us, r.p90_us, r.p99_us, r.p999_us, r.max_us].map(Option::unwrap);
        assert!(ps.windows(2).all(|w| w[0] <= w[1]), "unordered {ps:?}");
        assert!(ps[0] > 0.0);
        assert!(r.background_iters_per_s > 0.0);
        assert_eq!(r.background_iters_per_s_per_thread.len(), 1);
        // Sleeps never return early; a loaded host may only make the window longer.
        assert!(r.measured_s >= 0.5, "measured {}", r.measured_s);
    }

    #[test]
    fn classes_go_to_every_thread_of_each_role() {
        let cfg = config(&[
            "--message-threads=2",
            "--workers=2",
            "--work-us=1",
            "--background=2",
            "--hint-workers=latency",
            "--hint-background=background",
            "--duration-s=0.05",
            "--warmup-s=0",
        ]);
        let mut setter = RecordingSetter::default();
        run_with(&cfg, &mut setter).unwrap();
        let count = |c| setter.calls.iter().filter(|(_, k)| *k == c).count();
        assert_eq!(count(HintClass::Latency), 2 * (1 + 2));
        assert_eq!(count(HintClass::Background), 2);
        let tids: HashSet<i32> = setter.calls.iter().map(|(t, _)| *t).collect();
        assert_eq!(tids.len(), setter.calls.len(), "a tid was hinted twice");
        assert!(!tids.contains(&sys::gettid()), "the main thread was hinted");
    }

    #[test]
    fn only_the_hinted_role_is_touched() {
        let cfg = config(&[
            "--message-threads=1",
            "--workers=1",
            "--background=1",
            "--hint-background=batch",
            "--duration-s=0.05",
            "--warmup-s=0",
        ]);
        let mut setter = RecordingSetter::default();
        run_with(&cfg, &mut setter).unwrap();
        assert_eq!(setter.calls.len(), 1);
        assert_eq!(setter.calls[0].1, HintClass::Batch);
    }

    #[test]
    fn a_failed_hint_aborts_the_run() {
        let cfg = config(&[
            "--message-threads=1",
            "--workers=3",
            "--hint-workers=interactive",
            "--duration-s=5",
        ]);
        let mut setter = RecordingSetter {
            fail_at: Some(2),
            ..Default::default()
        };
        let t0 = std::time::Instant::now();
        let e = run_with(&cfg, &mut setter).unwrap_err();
        assert!(matches!(e, Error::Hint(HintError::Set { .. })), "{e}");
        assert!(e.to_string().contains("refused by the test"));
        assert!(t0.elapsed() < Duration::from_secs(4), "the run went on");
    }

    #[test]
    fn measuring_starts_on_sigusr1() {
        use std::os::unix::thread::JoinHandleExt;
        let cfg = config(&[
            "--message-threads=1",
            "--workers=1",
            "--work-us=1",
            // Long enough that a loaded host still runs a round in it (0.2 s had none once,
            // beside two emulated guests and a kernel build).
            "--duration-s=1",
            "--warmup-s=0",
            "--start-on-sigusr1",
        ]);
        let (done_tx, done_rx) = mpsc::channel();
        let runner = thread::spawn(move || {
            let r = run_with(&cfg, &mut NoDevice);
            done_tx.send(()).unwrap();
            r
        });
        // run_with blocks the signal first thing; until it comes, the warmup goes on.
        let waited = done_rx.recv_timeout(Duration::from_millis(1500));
        assert!(waited.is_err(), "measured without the signal");
        nix::sys::pthread::pthread_kill(runner.as_pthread_t(), nix::sys::signal::SIGUSR1).unwrap();
        done_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the signal did not start the measured window");
        let r = runner.join().unwrap().unwrap();
        assert!(r.samples > 0, "no samples after the signal");
    }

    #[test]
    fn unavailable_cpu_is_refused_before_starting() {
        let last = CpuSet::count() - 1;
        let list: CpuList = last.to_string().parse().unwrap();
        let e = check_cpus(Some(&list)).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("cpu {last} of --cpus {last} is not available")),
            "{e}"
        );
    }
}
