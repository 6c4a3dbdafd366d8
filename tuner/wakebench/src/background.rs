//! CPU-bound background threads: spin in [`spin::unit`]s and publish how many they did.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::spin;
use crate::workers::Phase;

/// One thread's iteration count, on a cache line of its own so the counters do not bounce.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Spins until `phase.shutdown`; one iteration is one work unit.
pub fn background_loop(counter: &Counter, phase: &Phase) {
    let mut iters = 0u64;
    let mut x = 0u64;
    while !phase.shutdown.load(Ordering::Relaxed) {
        x = spin::unit(x);
        iters += 1;
        counter.0.store(iters, Ordering::Relaxed);
    }
    std::hint::black_box(x);
}

/// Iterations per second of each counter between two snapshots `elapsed_s` apart.
pub fn rates(before: &[u64], after: &[u64], elapsed_s: f64) -> Vec<f64> {
    before
        .iter()
        .zip(after)
        .map(|(b, a)| a.saturating_sub(*b) as f64 / elapsed_s)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn counts_until_shutdown() {
        let counter = Arc::new(Counter::default());
        let phase = Arc::new(Phase::default());
        let (c, p) = (Arc::clone(&counter), Arc::clone(&phase));
        let h = std::thread::spawn(move || background_loop(&c, &p));
        std::thread::sleep(Duration::from_millis(50));
        phase.shutdown.store(true, Ordering::Relaxed);
        h.join().unwrap();
        let n = counter.get();
        assert!(n > 0);
        std::thread::sleep(Duration::from_millis(10));
        assert_eq!(counter.get(), n, "counting went on after shutdown");
    }

    #[test]
    fn rates_are_deltas_per_second() {
        assert_eq!(rates(&[10, 0], &[30, 5], 2.0), vec![10.0, 2.5]);
    }
}
