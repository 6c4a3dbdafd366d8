//! wakebench: a schbench-style wakeup latency benchmark for sched_hint.
//!
//! Message threads wake their workers through per-worker futex words; each worker records
//! the time from the waker's CLOCK_MONOTONIC stamp to the moment it runs, spins a calibrated
//! `--work-us` and replies. Optional CPU-bound background threads compete for the same CPUs
//! (`--cpus`). Workers and background threads can be given sched_hint classes, set through
//! the tuner crate's ioctl backend, to see what a class does to wakeup latency and to the
//! background's throughput.
//!
//! ```text
//! $ wakebench --duration-s 2 --message-threads 1 --workers 1 --cpus 0
//! wakeup latency us: p50 1.7 p90 1.8 p99 2.1 p99.9 11.1 max 3021.2 (33463 samples); 16730.7 rps
//! $ wakebench --background 2 --cpus 0 --hint-workers latency --hint-background background --json
//! ```
//!
//! Layout: [`cli`] (flags → [`Config`]), [`mod@bench`] (one run), [`workers`] (the measured
//! wakeup path), [`background`], [`spin`] (calibrated CPU work), [`histogram`], [`hint`]
//! (classes through `/dev/sched_hint`), [`report`], [`cpus`], [`sys`] (the raw syscalls).

pub mod background;
pub mod bench;
pub mod cli;
pub mod cpus;
pub mod error;
pub mod hint;
pub mod histogram;
pub mod report;
pub mod spin;
pub mod sys;
pub mod workers;

pub use cli::{Args, Config};
pub use error::Error;
pub use report::Report;

/// Runs `cfg`, opening `cfg.device` only when a class other than none is asked for.
pub fn run(cfg: &Config) -> Result<Report, Error> {
    bench::check_cpus(cfg.cpus.as_ref())?;
    let mut setter = hint::setter_for(&cfg.device, &[cfg.hint_workers, cfg.hint_background])?;
    bench::run_with(cfg, setter.as_mut())
}
