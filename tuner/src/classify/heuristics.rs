//! Step 3: classes from measured behaviour. Conservative by design: heuristics never grant
//! `latency` (only rules and the admin do), and they abstain when the rates sit between
//! profiles, leaving the process to the external classifier.
//!
//! CPU demand is the time a process was runnable: running (its CPU time) plus waiting on a
//! runqueue (the run delay, `/proc/PID/schedstat`). A CPU hog held to a third of a CPU by
//! contention runs 33 % and waits 67 %: its demand is a whole CPU, and it is CPU-bound
//! however little CPU it gets. Waiting says nothing about short bursts, though: a shell
//! that waits for a CPU on a busy host is still interactive, so that test uses the CPU it
//! got.

use crate::config::HeuristicsConfig;
use crate::hint::HintClass;
use crate::observe::Rates;

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A class, with the name of the heuristic and its confidence.
    Class {
        class: HintClass,
        name: &'static str,
        confidence: f32,
    },
    /// Nothing conclusive; the reason says where the rates fell.
    Inconclusive(String),
    /// No rates yet (first scan of this process).
    NoRates,
}

/// Confidence from how far `value` is past `threshold`: 0.55 at the threshold, up to `max`
/// at `span` times the threshold.
fn confidence(value: f64, threshold: f64, span: f64, max: f32) -> f32 {
    if threshold <= 0.0 {
        return max;
    }
    let over = ((value / threshold - 1.0) / (span - 1.0)).clamp(0.0, 1.0);
    (0.55 + over as f32 * (max - 0.55)).min(max)
}

pub fn classify(rates: Option<&Rates>, cfg: &HeuristicsConfig) -> Outcome {
    let Some(r) = rates else {
        return Outcome::NoRates;
    };
    if r.cpu_pct < cfg.idle_cpu_pct && r.voluntary_per_s < cfg.idle_wakeups_per_s {
        return Outcome::Class {
            class: HintClass::None,
            name: "idle",
            confidence: 0.8,
        };
    }
    let demand_pct = r.cpu_pct + r.run_delay_pct;
    if demand_pct >= cfg.cpu_bound_pct && r.avg_burst_us >= cfg.cpu_bound_min_burst_us {
        if demand_pct >= cfg.throughput_cpu_pct {
            let c = confidence(demand_pct, cfg.throughput_cpu_pct, 2.0, 0.8);
            return Outcome::Class {
                class: HintClass::Throughput,
                name: "cpu-bound-parallel",
                confidence: c,
            };
        }
        let c = confidence(r.avg_burst_us, cfg.cpu_bound_min_burst_us, 10.0, 0.8);
        return Outcome::Class {
            class: HintClass::Batch,
            name: "cpu-bound",
            confidence: c,
        };
    }
    if r.voluntary_per_s >= cfg.interactive_wakeups_per_s
        && r.avg_burst_us <= cfg.interactive_max_burst_us
        && r.cpu_pct < cfg.cpu_bound_pct
    {
        let c = confidence(r.voluntary_per_s, cfg.interactive_wakeups_per_s, 10.0, 0.75);
        return Outcome::Class {
            class: HintClass::Interactive,
            name: "short-bursts",
            confidence: c,
        };
    }
    Outcome::Inconclusive(format!(
        "cpu {:.1}% + waiting {:.1}%, {:.0} wakeups/s, {:.0} us per wakeup",
        r.cpu_pct, r.run_delay_pct, r.voluntary_per_s, r.avg_burst_us
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn rates(cpu_pct: f64, voluntary_per_s: f64) -> Rates {
        let cpu_us_per_s = cpu_pct * 10_000.0;
        Rates {
            cpu_pct,
            voluntary_per_s,
            avg_burst_us: cpu_us_per_s / voluntary_per_s.max(1.0),
            interval_ms: 1000,
            ..Default::default()
        }
    }

    fn class_of(r: &Rates) -> Option<HintClass> {
        match classify(Some(r), &Config::default().heuristics) {
            Outcome::Class { class, .. } => Some(class),
            _ => None,
        }
    }

    #[test]
    fn profiles() {
        assert_eq!(class_of(&rates(0.1, 0.5)), Some(HintClass::None));
        assert_eq!(class_of(&rates(99.0, 2.0)), Some(HintClass::Batch));
        assert_eq!(class_of(&rates(390.0, 10.0)), Some(HintClass::Throughput));
        assert_eq!(class_of(&rates(3.0, 200.0)), Some(HintClass::Interactive));
        // 30 % of a core in 6 ms bursts: neither short nor CPU-bound.
        assert_eq!(class_of(&rates(30.0, 50.0)), None);
        assert_eq!(
            classify(None, &Config::default().heuristics),
            Outcome::NoRates
        );
    }

    /// Issue 19, reproduction 10: `yes` held at 33 % CPU by contention waited the rest of the
    /// time on the runqueue. By CPU share alone it was "inconclusive" forever.
    #[test]
    fn a_cpu_hog_held_back_by_contention_is_cpu_bound() {
        let mut r = rates(33.0, 0.5);
        r.run_delay_pct = 67.0;
        assert_eq!(class_of(&r), Some(HintClass::Batch));
        // The same share of CPU with no waiting is a process that sleeps: still open.
        r.run_delay_pct = 0.0;
        assert_eq!(class_of(&r), None);
    }

    /// The other side of the same change: short bursts that wait for a CPU on a busy host
    /// are still interactive (the wait is what an interactive hint shortens).
    #[test]
    fn short_bursts_that_wait_for_a_cpu_stay_interactive() {
        let mut r = rates(3.0, 200.0);
        r.run_delay_pct = 70.0;
        assert_eq!(class_of(&r), Some(HintClass::Interactive));
    }

    #[test]
    fn heuristics_never_grant_latency() {
        for cpu in [0.0, 0.5, 2.0, 20.0, 70.0, 300.0] {
            for wakeups in [0.0, 10.0, 100.0, 1000.0, 10_000.0] {
                assert_ne!(class_of(&rates(cpu, wakeups)), Some(HintClass::Latency));
            }
        }
    }

    #[test]
    fn confidence_grows_with_distance() {
        let near = confidence(21.0, 20.0, 10.0, 0.75);
        let far = confidence(400.0, 20.0, 10.0, 0.75);
        assert!(near < far, "{near} < {far}");
        assert!((far - 0.75).abs() < 1e-6);
        assert!(near >= 0.55);
    }
}
