//! The result of a run: a one-line summary for people and one JSON object for scripts.

use serde::Serialize;

use crate::cli::Config;
use crate::histogram::Histogram;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Wakeup latency percentiles in microseconds; `null` without samples.
    pub p50_us: Option<f64>,
    pub p90_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub p999_us: Option<f64>,
    pub max_us: Option<f64>,
    pub mean_us: Option<f64>,
    /// Wakeups measured (after warmup).
    pub samples: u64,
    /// Completed worker cycles per second of measured time.
    pub rps: f64,
    /// Background iterations per second, all threads together and per thread.
    pub background_iters_per_s: f64,
    pub background_iters_per_s_per_thread: Vec<f64>,
    /// Measured wall time in seconds (without warmup).
    pub measured_s: f64,
    /// Spin units per microsecond from calibration, and units per worker cycle.
    pub calibrated_units_per_us: f64,
    pub work_units: u64,
    pub config: Config,
}

/// What the benchmark threads produced, before it is summarized.
#[derive(Debug)]
pub struct Measured {
    pub hist: Histogram,
    pub cycles: u64,
    pub measured_s: f64,
    pub background_per_thread: Vec<f64>,
    pub units_per_us: f64,
    pub work_units: u64,
}

fn us(ns: Option<u64>) -> Option<f64> {
    ns.map(|v| v as f64 / 1000.0)
}

fn round_to(x: f64, step: f64) -> f64 {
    (x / step).round() * step
}

impl Report {
    pub fn new(m: Measured, config: Config) -> Self {
        let h = &m.hist;
        Self {
            p50_us: us(h.quantile_ns(0.50)),
            p90_us: us(h.quantile_ns(0.90)),
            p99_us: us(h.quantile_ns(0.99)),
            p999_us: us(h.quantile_ns(0.999)),
            max_us: us(h.max_ns()),
            mean_us: h.mean_ns().map(|ns| round_to(ns / 1000.0, 0.001)),
            samples: h.count(),
            rps: round_to(m.cycles as f64 / m.measured_s, 0.1),
            background_iters_per_s: m.background_per_thread.iter().sum::<f64>().round(),
            background_iters_per_s_per_thread: m
                .background_per_thread
                .iter()
                .map(|r| r.round())
                .collect(),
            measured_s: round_to(m.measured_s, 0.001),
            calibrated_units_per_us: round_to(m.units_per_us, 0.001),
            work_units: m.work_units,
            config,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a report has only plain fields")
    }

    pub fn summary_line(&self) -> String {
        let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
        let mut line = format!(
            "wakeup latency us: p50 {} p90 {} p99 {} p99.9 {} max {} ({} samples); {:.1} rps",
            f(self.p50_us),
            f(self.p90_us),
            f(self.p99_us),
            f(self.p999_us),
            f(self.max_us),
            self.samples,
            self.rps
        );
        if !self.background_iters_per_s_per_thread.is_empty() {
            let per: Vec<String> = self
                .background_iters_per_s_per_thread
                .iter()
                .map(|r| format!("{r:.0}"))
                .collect();
            line.push_str(&format!(
                "; background {:.0} iters/s ({})",
                self.background_iters_per_s,
                per.join(" ")
            ));
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Args;
    use clap::Parser;

    fn config() -> Config {
        Config::try_from(Args::parse_from(["wakebench", "--background=2"])).unwrap()
    }

    #[test]
    fn json_has_the_documented_fields() {
        let mut hist = Histogram::new();
        for v in [1_000u64, 2_000, 3_000, 4_000] {
            hist.record(v);
        }
        let m = Measured {
            hist,
            cycles: 4,
            measured_s: 2.0,
            background_per_thread: vec![100.4, 200.2],
            units_per_us: 3.0,
            work_units: 150,
        };
        let r = Report::new(m, config());
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["p50_us"], 2.0);
        assert_eq!(v["max_us"], 4.0);
        assert_eq!(v["samples"], 4);
        assert_eq!(v["rps"], 2.0);
        assert_eq!(v["background_iters_per_s"], 301.0);
        assert_eq!(v["config"]["workers"], 4);
        assert_eq!(v["config"]["hint_background"], "none");
        for key in ["p90_us", "p99_us", "p999_us"] {
            assert!(v[key].is_number(), "{key}");
        }
        assert_eq!(
            r.summary_line(),
            "wakeup latency us: p50 2.0 p90 4.0 p99 4.0 p99.9 4.0 max 4.0 (4 samples); \
             2.0 rps; background 301 iters/s (100 200)"
        );
    }

    #[test]
    fn no_samples_gives_nulls() {
        let m = Measured {
            hist: Histogram::new(),
            cycles: 0,
            measured_s: 1.0,
            background_per_thread: vec![],
            units_per_us: 1.0,
            work_units: 1,
        };
        let r = Report::new(m, config());
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert!(v["p99_us"].is_null());
        assert!(r.summary_line().contains("p99 - "));
        assert!(!r.summary_line().contains("background"));
    }
}
