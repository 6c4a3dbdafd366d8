//! Rates between two scans: CPU use, context switches, run delay, burst length.

use std::collections::HashMap;

use serde::Serialize;

use super::{ProcKey, ProcObs, TaskObs, ThreadRates};

#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Rates {
    /// 100.0 = one full core.
    pub cpu_pct: f64,
    pub voluntary_per_s: f64,
    pub involuntary_per_s: f64,
    /// Time spent waiting on a runqueue, as a share of the interval (100.0 = one task always waiting).
    pub run_delay_pct: f64,
    /// CPU time per voluntary context switch, in µs: how long the process runs each time it
    /// wakes before it sleeps again (preemptions do not cut a burst short).
    pub avg_burst_us: f64,
    pub interval_ms: u64,
}

#[derive(Debug, Clone)]
struct Sample {
    at_ms: u64,
    cpu_ns: u64,
    nvcsw: u64,
    nivcsw: u64,
    run_delay_ns: u64,
    /// Each thread's counters, for multi-threaded processes only: thread roles need them,
    /// and one-thread processes have the process's rates.
    tasks: Vec<TaskSample>,
}

#[derive(Debug, Clone, Copy)]
struct TaskSample {
    tid: i32,
    cpu_ns: u64,
    nvcsw: u64,
    nivcsw: u64,
}

impl TaskSample {
    fn of(t: &TaskObs) -> Self {
        TaskSample {
            tid: t.tid,
            cpu_ns: t.cpu_ns,
            nvcsw: t.nvcsw,
            nivcsw: t.nivcsw,
        }
    }
}

/// Remembers the last sample of each process and fills [`ProcObs::rates`].
#[derive(Debug, Default)]
pub struct RateTracker {
    prev: HashMap<ProcKey, Sample>,
}

impl RateTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Fills `rates` of every process seen in the previous update too; forgets the rest.
    pub fn update(&mut self, at_ms: u64, procs: &mut [ProcObs]) {
        let mut next = HashMap::with_capacity(procs.len());
        for p in procs.iter_mut() {
            if p.kthread {
                continue;
            }
            let now = Sample {
                at_ms,
                cpu_ns: p.cpu_ns,
                nvcsw: p.nvcsw,
                nivcsw: p.nivcsw,
                run_delay_ns: p.run_delay_ns,
                tasks: if p.tasks.len() > 1 {
                    let mut v: Vec<TaskSample> = p.tasks.iter().map(TaskSample::of).collect();
                    v.sort_unstable_by_key(|t| t.tid);
                    v
                } else {
                    Vec::new()
                },
            };
            let old = self.prev.remove(&p.key());
            p.rates = old.as_ref().and_then(|old| rates_between(old, &now));
            if let Some(old) = &old {
                thread_rates(old, at_ms, &mut p.tasks);
            }
            // Carried-over counters say nothing new: keep the last real sample, so the next
            // real reading spreads what happened meanwhile over the whole time since.
            let keep = match old {
                Some(old) if p.stale => old,
                _ => now,
            };
            next.insert(p.key(), keep);
        }
        self.prev = next;
    }

    pub fn len(&self) -> usize {
        self.prev.len()
    }

    pub fn is_empty(&self) -> bool {
        self.prev.is_empty()
    }
}

/// Fills each thread's rates against `old` (its threads sorted by tid); a thread not in
/// `old` (new since) gets none.
fn thread_rates(old: &Sample, at_ms: u64, tasks: &mut [TaskObs]) {
    let Some(dt_ms) = at_ms.checked_sub(old.at_ms).filter(|d| *d > 0) else {
        return;
    };
    let dt_s = dt_ms as f64 / 1000.0;
    for t in tasks.iter_mut() {
        let Ok(i) = old.tasks.binary_search_by_key(&t.tid, |o| o.tid) else {
            continue;
        };
        let o = &old.tasks[i];
        t.rates = Some(ThreadRates {
            cpu_pct: t.cpu_ns.saturating_sub(o.cpu_ns) as f64 / (dt_s * 1e9) * 100.0,
            voluntary_per_s: t.nvcsw.saturating_sub(o.nvcsw) as f64 / dt_s,
            involuntary_per_s: t.nivcsw.saturating_sub(o.nivcsw) as f64 / dt_s,
        });
    }
}

fn rates_between(old: &Sample, now: &Sample) -> Option<Rates> {
    let dt_ms = now.at_ms.checked_sub(old.at_ms).filter(|d| *d > 0)?;
    let dt_s = dt_ms as f64 / 1000.0;
    // Counters summed over threads drop when a thread exits; such a drop counts as zero.
    let cpu_ns = now.cpu_ns.saturating_sub(old.cpu_ns) as f64;
    let vol = now.nvcsw.saturating_sub(old.nvcsw) as f64;
    let invol = now.nivcsw.saturating_sub(old.nivcsw) as f64;
    let delay_ns = now.run_delay_ns.saturating_sub(old.run_delay_ns) as f64;
    Some(Rates {
        cpu_pct: cpu_ns / (dt_s * 1e9) * 100.0,
        voluntary_per_s: vol / dt_s,
        involuntary_per_s: invol / dt_s,
        run_delay_pct: delay_ns / (dt_s * 1e9) * 100.0,
        avg_burst_us: cpu_ns / vol.max(1.0) / 1000.0,
        interval_ms: dt_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::test_proc;

    #[test]
    fn rates_need_two_samples_of_the_same_process() {
        let mut t = RateTracker::new();
        let mut procs = vec![test_proc(10, "a")];
        t.update(1_000, &mut procs);
        assert!(procs[0].rates.is_none());

        procs[0].cpu_ns += 500_000_000; // half a core over one second
        procs[0].nvcsw += 100;
        procs[0].nivcsw += 25;
        procs[0].run_delay_ns += 10_000_000;
        t.update(2_000, &mut procs);
        let r = procs[0].rates.expect("second sample gives rates");
        assert!((r.cpu_pct - 50.0).abs() < 1e-9);
        assert!((r.voluntary_per_s - 100.0).abs() < 1e-9);
        assert!((r.involuntary_per_s - 25.0).abs() < 1e-9);
        assert!((r.run_delay_pct - 1.0).abs() < 1e-9);
        assert!((r.avg_burst_us - 5000.0).abs() < 1e-9);

        // Same pid, new start time: a different process, no rates.
        procs[0].start_ticks += 1;
        t.update(3_000, &mut procs);
        assert!(procs[0].rates.is_none());
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn stale_observations_keep_the_last_real_sample() {
        let mut t = RateTracker::new();
        let mut procs = vec![test_proc(10, "a")];
        t.update(0, &mut procs);
        // Two scans carried over (no CPU used): rates of zero, the sample stays at t=0.
        procs[0].stale = true;
        t.update(1_000, &mut procs);
        assert_eq!(procs[0].rates.unwrap().voluntary_per_s, 0.0);
        t.update(2_000, &mut procs);
        // The real reading finds 30 switches: over the three seconds since t=0.
        procs[0].stale = false;
        procs[0].nvcsw += 30;
        t.update(3_000, &mut procs);
        let r = procs[0].rates.unwrap();
        assert!((r.voluntary_per_s - 10.0).abs() < 1e-9, "{r:?}");
        assert_eq!(r.interval_ms, 3_000);
    }

    #[test]
    fn counters_that_go_back_count_as_zero() {
        let mut t = RateTracker::new();
        let mut procs = vec![test_proc(10, "a")];
        procs[0].nvcsw = 1000;
        t.update(0, &mut procs);
        procs[0].nvcsw = 10;
        t.update(1_000, &mut procs);
        assert_eq!(procs[0].rates.unwrap().voluntary_per_s, 0.0);
    }
}
