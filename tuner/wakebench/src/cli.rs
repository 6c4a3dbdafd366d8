//! The command line, parsed by clap into [`Args`] and validated into the [`Config`] the
//! benchmark runs with.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use serde::Serialize;
use tuner::hint::HintClass;

use crate::cpus::CpuList;

/// schbench-style wakeup latency benchmark: message threads wake workers through futexes,
/// workers record how long the wakeup took, spin for --work-us and reply; optional CPU-bound
/// background threads compete for the same CPUs. Threads can be given a sched_hint class.
#[derive(Debug, Clone, Parser)]
#[command(name = "wakebench", version)]
pub struct Args {
    /// Message threads; each wakes its own workers in rounds.
    #[arg(long, default_value_t = 2)]
    pub message_threads: usize,
    /// Worker threads per message thread.
    #[arg(long, default_value_t = 4)]
    pub workers: usize,
    /// CPU work per worker wakeup, in microseconds (a calibrated spin loop).
    #[arg(long, default_value_t = 50)]
    pub work_us: u64,
    /// Think time of a message thread between rounds, in microseconds: requests that arrive
    /// at a rate instead of back to back (0: the next round starts at once).
    #[arg(long, default_value_t = 0)]
    pub interval_us: u64,
    /// CPU-bound background threads.
    #[arg(long, default_value_t = 0)]
    pub background: usize,
    /// Pin every benchmark thread to these CPUs (kernel list syntax: 0-3,6).
    #[arg(long, value_parser = parse_cpus)]
    pub cpus: Option<CpuList>,
    /// sched_hint class for workers and message threads.
    #[arg(long, default_value = "none", value_parser = parse_class)]
    pub hint_workers: HintClass,
    /// A custom EEVDF slice for workers and message threads, in microseconds, set with
    /// sched_setattr() (the stock kernel's own latency knob, 100..=100000; 0: none): the
    /// baseline a class hint is compared against.
    #[arg(long, default_value_t = 0)]
    pub slice_us: u64,
    /// sched_hint class for background threads.
    #[arg(long, default_value = "none", value_parser = parse_class)]
    pub hint_background: HintClass,
    /// The sched_hint device; opened only when a class other than none is asked for.
    #[arg(long, default_value = "/dev/sched_hint")]
    pub device: PathBuf,
    /// Measured time, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration_s: f64,
    /// Time before measuring, in seconds; its samples are discarded.
    #[arg(long, default_value_t = 1.0)]
    pub warmup_s: f64,
    /// After the warmup, keep warming up until the process gets SIGUSR1, then measure: lets
    /// a script start measuring once something outside (the tuner) has acted on the threads.
    #[arg(long)]
    pub start_on_sigusr1: bool,
    /// Print one JSON object on stdout (the summary line goes to stderr).
    #[arg(long)]
    pub json: bool,
}

fn parse_cpus(s: &str) -> Result<CpuList, String> {
    s.parse()
        .map_err(|e: crate::cpus::CpuListError| e.to_string())
}

fn parse_class(s: &str) -> Result<HintClass, String> {
    s.parse()
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("--{flag} must be between {min} and {max}, got {got}")]
    OutOfRange {
        flag: &'static str,
        min: u64,
        max: u64,
        got: u64,
    },
    #[error("--{flag} must be a finite number of seconds in [{min}, {max}], got {got}")]
    BadSeconds {
        flag: &'static str,
        min: f64,
        max: f64,
        got: f64,
    },
}

/// A validated configuration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Config {
    pub message_threads: usize,
    pub workers: usize,
    pub work_us: u64,
    pub interval_us: u64,
    pub background: usize,
    #[serde(serialize_with = "ser_cpus")]
    pub cpus: Option<CpuList>,
    pub hint_workers: HintClass,
    pub slice_us: u64,
    pub hint_background: HintClass,
    pub device: PathBuf,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub start_on_sigusr1: bool,
    #[serde(skip)]
    pub json: bool,
}

fn ser_cpus<S: serde::Serializer>(cpus: &Option<CpuList>, s: S) -> Result<S::Ok, S::Error> {
    match cpus {
        Some(l) => s.serialize_str(&l.to_string()),
        None => s.serialize_none(),
    }
}

const MAX_THREADS: u64 = 1024;
const MAX_WORK_US: u64 = 1_000_000;
const MAX_SECONDS: f64 = 86_400.0;
/// The kernel's bounds for a custom slice (sched_setattr's sched_runtime for SCHED_OTHER).
const MIN_SLICE_US: u64 = 100;
const MAX_SLICE_US: u64 = 100_000;

fn range(flag: &'static str, got: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if (min..=max).contains(&got) {
        Ok(())
    } else {
        Err(ConfigError::OutOfRange {
            flag,
            min,
            max,
            got,
        })
    }
}

fn seconds(flag: &'static str, got: f64, min: f64) -> Result<(), ConfigError> {
    if got.is_finite() && (min..=MAX_SECONDS).contains(&got) {
        Ok(())
    } else {
        Err(ConfigError::BadSeconds {
            flag,
            min,
            max: MAX_SECONDS,
            got,
        })
    }
}

impl TryFrom<Args> for Config {
    type Error = ConfigError;

    fn try_from(a: Args) -> Result<Self, ConfigError> {
        range("message-threads", a.message_threads as u64, 1, MAX_THREADS)?;
        range("workers", a.workers as u64, 1, MAX_THREADS)?;
        range("background", a.background as u64, 0, MAX_THREADS)?;
        range("work-us", a.work_us, 0, MAX_WORK_US)?;
        range("interval-us", a.interval_us, 0, MAX_WORK_US)?;
        if a.slice_us != 0 {
            range("slice-us", a.slice_us, MIN_SLICE_US, MAX_SLICE_US)?;
        }
        seconds("duration-s", a.duration_s, 0.001)?;
        seconds("warmup-s", a.warmup_s, 0.0)?;
        Ok(Config {
            message_threads: a.message_threads,
            workers: a.workers,
            work_us: a.work_us,
            interval_us: a.interval_us,
            background: a.background,
            cpus: a.cpus,
            hint_workers: a.hint_workers,
            slice_us: a.slice_us,
            hint_background: a.hint_background,
            device: a.device,
            duration_s: a.duration_s,
            warmup_s: a.warmup_s,
            start_on_sigusr1: a.start_on_sigusr1,
            json: a.json,
        })
    }
}

impl Config {
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.duration_s)
    }

    pub fn warmup(&self) -> Duration {
        Duration::from_secs_f64(self.warmup_s)
    }

    /// Threads the benchmark starts: message threads, their workers, background threads.
    pub fn nr_threads(&self) -> usize {
        self.message_threads * (1 + self.workers) + self.background
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, String> {
        let argv = std::iter::once("wakebench").chain(args.iter().copied());
        let a = Args::try_parse_from(argv).map_err(|e| e.to_string())?;
        Config::try_from(a).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults() {
        let c = parse(&[]).unwrap();
        assert_eq!((c.message_threads, c.workers, c.work_us), (2, 4, 50));
        assert_eq!((c.background, c.duration_s, c.warmup_s), (0, 10.0, 1.0));
        assert_eq!(
            (c.hint_workers, c.hint_background),
            (HintClass::None, HintClass::None)
        );
        assert_eq!(c.cpus, None);
        assert!(!c.start_on_sigusr1);
        assert_eq!(c.nr_threads(), 10);
    }

    #[test]
    fn full_command_line() {
        let c = parse(&[
            "--message-threads=1",
            "--workers=3",
            "--work-us=0",
            "--background=2",
            "--cpus=0,2-3",
            "--hint-workers=latency",
            "--hint-background=background",
            "--duration-s=0.5",
            "--warmup-s=0",
            "--json",
        ])
        .unwrap();
        assert_eq!(c.cpus.as_ref().unwrap().cpus(), &[0, 2, 3]);
        assert_eq!(c.hint_workers, HintClass::Latency);
        assert_eq!(c.hint_background, HintClass::Background);
        assert_eq!(c.nr_threads(), 6);
        assert!(c.json);
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["cpus"], "0,2-3");
        assert_eq!(json["hint_workers"], "latency");
        assert!(json.get("json").is_none());
    }

    #[test]
    fn bad_cpu_list_is_a_clear_error() {
        let e = parse(&["--cpus", "0-x"]).unwrap_err();
        assert!(
            e.contains("invalid cpu list \"0-x\": \"x\" is not a cpu number"),
            "{e}"
        );
        let e = parse(&["--cpus", "4-2"]).unwrap_err();
        assert!(e.contains("range 4-2 runs backwards"), "{e}");
    }

    #[test]
    fn unknown_class_is_a_clear_error() {
        let e = parse(&["--hint-workers", "fast"]).unwrap_err();
        assert!(e.contains("unknown class \"fast\""), "{e}");
        assert!(e.contains("latency, interactive"), "{e}");
        let e = parse(&["--hint-background", "Batch"]).unwrap_err();
        assert!(e.contains("unknown class \"Batch\""), "{e}");
    }

    #[test]
    fn ranges_are_checked() {
        assert_eq!(
            parse(&["--workers", "0"]).unwrap_err(),
            "--workers must be between 1 and 1024, got 0"
        );
        assert!(parse(&["--message-threads", "0"]).is_err());
        assert!(parse(&["--duration-s", "0"]).is_err());
        assert!(parse(&["--duration-s", "NaN"]).is_err());
        assert!(parse(&["--warmup-s=-1"]).is_err());
        assert!(parse(&["--work-us", "2000000"]).is_err());
        assert!(parse(&["--warmup-s", "0"]).is_ok());
        assert_eq!(
            parse(&["--slice-us", "99"]).unwrap_err(),
            "--slice-us must be between 100 and 100000, got 99"
        );
        assert!(parse(&["--slice-us", "100001"]).is_err());
        assert_eq!(parse(&["--slice-us", "0"]).unwrap().slice_us, 0);
        assert_eq!(parse(&["--slice-us", "500"]).unwrap().slice_us, 500);
    }
}
