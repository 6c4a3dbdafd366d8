//! CPU work in fixed units: a worker's `--work-us` and a background thread's iteration.
//!
//! The work is a count of units, not a wall-clock deadline, so a preempted worker still owes
//! the same CPU work (as in schbench). The count comes from a calibration on an idle-ish CPU:
//! the fastest of several trials, so a busy host makes the work longer, never shorter.

use std::hint::black_box;
use std::time::Instant;

/// Mixing steps in one unit; small enough for fine granularity, large enough that the loop
/// overhead does not dominate.
const STEPS_PER_UNIT: u32 = 64;

/// One unit of CPU work; returns a value so the optimizer cannot drop it.
#[inline(never)]
pub fn unit(seed: u64) -> u64 {
    let mut x = black_box(seed) | 1;
    for _ in 0..STEPS_PER_UNIT {
        x = x
            .wrapping_mul(0x5851_f42d_4c95_7f2d)
            .wrapping_add(0x1405_7b7e_f767_814f);
        x ^= x >> 29;
    }
    black_box(x)
}

/// `units` units of work.
pub fn work(units: u64) -> u64 {
    let mut x = 0;
    for i in 0..units {
        x = unit(x ^ i);
    }
    x
}

/// Units per microsecond on this CPU: the best of `trials` timed runs of about 2 ms each.
pub fn calibrate_units_per_us(trials: u32) -> f64 {
    // Size a trial from a first short run.
    let probe = 1_000u64;
    let t0 = Instant::now();
    black_box(work(probe));
    let probe_us = t0.elapsed().as_secs_f64() * 1e6;
    let units = ((probe as f64 * 2_000.0 / probe_us.max(1.0)) as u64).max(probe);
    let mut best = 0.0f64;
    for _ in 0..trials.max(1) {
        let t = Instant::now();
        black_box(work(units));
        let us = t.elapsed().as_secs_f64() * 1e6;
        best = best.max(units as f64 / us.max(1e-3));
    }
    best
}

/// Units that take `us` microseconds at `units_per_us`; at least one for a non-zero `us`.
pub fn units_for_us(us: u64, units_per_us: f64) -> u64 {
    if us == 0 {
        0
    } else {
        ((us as f64 * units_per_us).round() as u64).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibrated_work_takes_about_the_asked_time() {
        let per_us = calibrate_units_per_us(5);
        assert!(per_us > 0.0);
        let units = units_for_us(20_000, per_us);
        let t = Instant::now();
        black_box(work(units));
        let us = t.elapsed().as_secs_f64() * 1e6;
        // A busy host can only stretch it; an optimized-away loop would take ~0.
        assert!(us >= 10_000.0, "20 ms of work took {us:.0} us");
    }

    #[test]
    fn units_round_and_never_vanish() {
        assert_eq!(units_for_us(0, 5.0), 0);
        assert_eq!(units_for_us(1, 0.01), 1);
        assert_eq!(units_for_us(50, 2.5), 125);
    }
}
