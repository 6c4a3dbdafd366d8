//! Message threads and their workers: the measured wakeup path.
//!
//! Each worker sleeps on its own futex word. A round of a message thread: for each worker,
//! stamp CLOCK_MONOTONIC, set the word to RUN and FUTEX_WAKE it; then sleep on the group's
//! `pending` word until every worker has replied. A worker that wakes stamps the clock again;
//! the difference is its wakeup latency. It then spins `work_units`, decrements `pending`
//! (the last one wakes the message thread) and sleeps again.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::histogram::Histogram;
use crate::spin;
use crate::sys::{futex_wait, futex_wake, monotonic_ns};

const IDLE: u32 = 0;
const RUN: u32 = 1;
const EXIT: u32 = 2;

/// How often a message thread waiting for replies re-checks `shutdown`, so a worker that died
/// cannot hang the run.
const REPLY_POLL: Duration = Duration::from_millis(100);

/// Flags the main thread flips for every benchmark thread.
#[derive(Debug, Default)]
pub struct Phase {
    /// Samples and cycles count only while set (after warmup, until the end).
    pub measuring: AtomicBool,
    /// Asks every thread to finish.
    pub shutdown: AtomicBool,
}

/// One worker's futex word and the waker's timestamp, on a cache line of its own.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct Slot {
    state: AtomicU32,
    wake_ns: AtomicU64,
}

/// A message thread's workers.
#[derive(Debug)]
pub struct Group {
    pending: Pending,
    slots: Box<[Slot]>,
}

#[derive(Debug, Default)]
#[repr(align(64))]
struct Pending(AtomicU32);

impl Group {
    pub fn new(workers: usize) -> Self {
        Self {
            pending: Pending::default(),
            slots: (0..workers).map(|_| Slot::default()).collect(),
        }
    }

    pub fn slot(&self, i: usize) -> &Slot {
        &self.slots[i]
    }
}

/// What a worker measured.
#[derive(Debug, Default)]
pub struct WorkerStats {
    pub hist: Histogram,
    /// Wakeups served while measuring.
    pub cycles: u64,
}

/// The message thread's loop; returns the number of rounds it ran. `interval` is the think
/// time between rounds.
pub fn message_loop(group: &Group, phase: &Phase, interval: Duration) -> io::Result<u64> {
    let result = rounds(group, phase, interval);
    // Release the workers whatever happened, so they can be joined.
    for slot in group.slots.iter() {
        slot.state.store(EXIT, Ordering::Release);
        futex_wake(&slot.state, 1)?;
    }
    result
}

fn rounds(group: &Group, phase: &Phase, interval: Duration) -> io::Result<u64> {
    let n = group.slots.len() as u32;
    let mut rounds = 0;
    while !phase.shutdown.load(Ordering::Relaxed) {
        group.pending.0.store(n, Ordering::Release);
        for slot in group.slots.iter() {
            slot.wake_ns.store(monotonic_ns(), Ordering::Relaxed);
            slot.state.store(RUN, Ordering::Release);
            futex_wake(&slot.state, 1)?;
        }
        loop {
            let left = group.pending.0.load(Ordering::Acquire);
            if left == 0 {
                break;
            }
            if phase.shutdown.load(Ordering::Relaxed) {
                return Ok(rounds);
            }
            futex_wait(&group.pending.0, left, Some(REPLY_POLL))?;
        }
        rounds += 1;
        if !interval.is_zero() {
            std::thread::sleep(interval);
        }
    }
    Ok(rounds)
}

/// A worker's loop, until its message thread sets EXIT.
pub fn worker_loop(
    group: &Group,
    index: usize,
    work_units: u64,
    phase: &Phase,
) -> io::Result<WorkerStats> {
    let slot = &group.slots[index];
    let mut stats = WorkerStats::default();
    let mut sink = 0u64;
    loop {
        match slot.state.load(Ordering::Acquire) {
            IDLE => {
                futex_wait(&slot.state, IDLE, None)?;
                continue;
            }
            EXIT => break,
            _ => {}
        }
        let now_ns = monotonic_ns();
        // RUN -> IDLE before replying; EXIT written meanwhile must not be lost.
        if slot
            .state
            .compare_exchange(RUN, IDLE, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            break;
        }
        let latency_ns = now_ns.saturating_sub(slot.wake_ns.load(Ordering::Relaxed));
        let measuring = phase.measuring.load(Ordering::Relaxed);
        if measuring {
            stats.hist.record(latency_ns);
        }
        sink ^= spin::work(work_units);
        if measuring {
            stats.cycles += 1;
        }
        if group.pending.0.fetch_sub(1, Ordering::AcqRel) == 1 {
            futex_wake(&group.pending.0, 1)?;
        }
    }
    std::hint::black_box(sink);
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::thread;

    #[test]
    fn one_group_runs_rounds_and_measures_only_while_measuring() {
        let group = Arc::new(Group::new(3));
        let phase = Arc::new(Phase::default());
        let workers: Vec<_> = (0..3)
            .map(|i| {
                let (g, p) = (Arc::clone(&group), Arc::clone(&phase));
                thread::spawn(move || worker_loop(&g, i, 10, &p).unwrap())
            })
            .collect();
        let (g, p) = (Arc::clone(&group), Arc::clone(&phase));
        let msg = thread::spawn(move || message_loop(&g, &p, Duration::ZERO).unwrap());
        thread::sleep(Duration::from_millis(50));
        phase.measuring.store(true, Ordering::Relaxed);
        thread::sleep(Duration::from_millis(200));
        phase.measuring.store(false, Ordering::Relaxed);
        phase.shutdown.store(true, Ordering::Relaxed);
        let rounds = msg.join().unwrap();
        let stats: Vec<WorkerStats> = workers.into_iter().map(|w| w.join().unwrap()).collect();
        assert!(rounds > 0);
        for s in &stats {
            assert!(s.cycles > 0);
            assert_eq!(s.cycles, s.hist.count());
            // Every measured cycle was one round; warmup rounds are not counted.
            assert!(s.cycles <= rounds, "{} cycles > {rounds} rounds", s.cycles);
        }
    }
}
