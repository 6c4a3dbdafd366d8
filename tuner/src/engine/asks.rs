//! Whom the external classifier is asked about next (Documentation/tuner-trust-model.md,
//! "Bounded cost").
//!
//! A batch holds `[external] max_batch` processes. Filled in pid order from whatever is open,
//! a user with many processes that stay open (or keep coming back open) took every slot on
//! every pass, and other users' processes waited for minutes. Two rules instead:
//!
//! - **a fair share per uid**: the batch is dealt round-robin over the uids with something
//!   due, each uid's longest-waiting process first;
//! - **a backoff per process**: each time a process is asked about, its next ask waits
//!   twice as long as the last (from `base_ms`, at most `max_ms`), so a process that keeps
//!   coming back open is re-sent rarely, not on every pass.
//!
//! State is per process (pid and start time) and goes with the process.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use crate::observe::{shrink_map, ProcKey};

#[derive(Debug, Clone, Copy, Default)]
struct AskState {
    /// Times asked about so far.
    asks: u32,
    /// Not asked again before this.
    next_ms: u64,
}

/// The ask schedule of every process that has been asked about.
#[derive(Debug, Default)]
pub struct AskQueue {
    state: HashMap<ProcKey, AskState>,
    /// Whether the last answer was a failure, so a server that stays down is reported once.
    failing: bool,
}

/// One process that could be asked about.
#[derive(Debug, Clone, Copy)]
pub struct Candidate {
    pub key: ProcKey,
    pub uid: u32,
}

impl AskQueue {
    /// Up to `max` of `cands` (in the caller's order), due at `now_ms`, dealt round-robin
    /// over uids; within a uid, those asked about fewer times first. Records the ask.
    pub fn pick(
        &mut self,
        cands: &[Candidate],
        now_ms: u64,
        max: usize,
        base_ms: u64,
        max_ms: u64,
    ) -> Vec<ProcKey> {
        let mut by_uid: BTreeMap<u32, Vec<(u32, usize, ProcKey)>> = BTreeMap::new();
        for (i, c) in cands.iter().enumerate() {
            let st = self.state.get(&c.key).copied().unwrap_or_default();
            if st.next_ms <= now_ms {
                by_uid.entry(c.uid).or_default().push((st.asks, i, c.key));
            }
        }
        let mut queues: VecDeque<VecDeque<ProcKey>> = by_uid
            .into_values()
            .map(|mut v| {
                v.sort_unstable();
                v.into_iter().map(|(_, _, k)| k).collect()
            })
            .collect();
        let mut out = Vec::with_capacity(max.min(cands.len()));
        while out.len() < max {
            let Some(mut q) = queues.pop_front() else {
                break;
            };
            if let Some(k) = q.pop_front() {
                out.push(k);
            }
            if !q.is_empty() {
                queues.push_back(q);
            }
        }
        for k in &out {
            let st = self.state.entry(*k).or_default();
            let wait = base_ms
                .saturating_mul(1u64 << st.asks.min(20))
                .min(max_ms.max(base_ms));
            st.asks += 1;
            st.next_ms = now_ms.saturating_add(wait);
        }
        out
    }

    /// Forgets processes that left.
    pub fn retain(&mut self, live: &HashSet<ProcKey>) {
        self.state.retain(|k, _| live.contains(k));
        shrink_map(&mut self.state);
    }

    /// Records how the last request ended; `true` when that is news worth a warning (the
    /// first failure after answers, not each one while the server stays down).
    pub fn outcome(&mut self, failed: bool) -> bool {
        let news = failed && !self.failing;
        self.failing = failed;
        news
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.state.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cands(uids: &[u32]) -> Vec<Candidate> {
        uids.iter()
            .enumerate()
            .map(|(i, &uid)| Candidate {
                key: (i as i32 + 100, 1),
                uid,
            })
            .collect()
    }

    #[test]
    fn one_uid_cannot_take_every_slot() {
        let mut uids = vec![65534; 40];
        uids.push(1000);
        uids.push(0);
        let c = cands(&uids);
        let mut q = AskQueue::default();
        let got = q.pick(&c, 0, 16, 10_000, 600_000);
        assert_eq!(got.len(), 16);
        let uid_of = |k: &ProcKey| c.iter().find(|c| c.key == *k).unwrap().uid;
        assert!(got.iter().any(|k| uid_of(k) == 1000));
        assert!(got.iter().any(|k| uid_of(k) == 0));
    }

    #[test]
    fn a_process_asked_again_and_again_backs_off() {
        let c = cands(&[1000]);
        let mut q = AskQueue::default();
        let mut asked_at = Vec::new();
        for now in (0..700_000).step_by(5_000) {
            if !q.pick(&c, now, 16, 10_000, 160_000).is_empty() {
                asked_at.push(now / 1000);
            }
        }
        assert_eq!(asked_at[..6], [0, 10, 30, 70, 150, 310]);
        assert!(asked_at.len() < 10, "{asked_at:?}");
        q.retain(&HashSet::new());
        assert!(q.is_empty());
    }

    #[test]
    fn within_a_uid_the_least_asked_go_first_and_failures_are_news_once() {
        let c = cands(&[7, 7, 7]);
        let mut q = AskQueue::default();
        assert_eq!(q.pick(&c, 0, 1, 1, 1), [c[0].key]);
        assert_eq!(q.pick(&c, 10, 1, 1, 1), [c[1].key]);
        assert_eq!(q.pick(&c, 20, 1, 1, 1), [c[2].key]);
        assert!(q.outcome(true));
        assert!(!q.outcome(true));
        assert!(!q.outcome(false));
        assert!(q.outcome(true));
    }
}
