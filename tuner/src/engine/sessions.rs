//! The autogroup side of a daemon's pass (see [`crate::apply::autogroup`]): which sessions
//! give up CPU share as a whole.

use std::collections::HashMap;

use super::{Engine, Mode};
use crate::apply::autogroup::SessionWant;
use crate::apply::HintSink;
use crate::observe::snapshot::Snapshot;

impl Engine {
    /// Each session's autogroup nice: the lowest any member asks. A member the tuner hints
    /// asks what its class asks of the backend ([`HintSink::session_nice`]); one it does not
    /// hint asks 0 while it uses CPU (an idle shell or loop in the session asks nothing, and
    /// one not yet measured asks 0). Sessions that ask 0 are left out, which puts back what
    /// the tuner set there. `tuner once` leaves autogroups alone: nothing would put them back.
    pub(super) fn session_wants(&self, snap: &Snapshot, sink: &dyn HintSink) -> Vec<SessionWant> {
        if self.mode != Mode::Daemon {
            return Vec::new();
        }
        let idle_pct = self.cfg.heuristics.idle_cpu_pct;
        let members = snap
            .procs
            .iter()
            .filter(|p| !p.kthread && p.session > 0)
            .filter_map(|p| {
                let nice = match self.applied_of(p.key()) {
                    Some(a) => sink.session_nice(a.hint.class),
                    None if p.rates.is_some_and(|r| r.cpu_pct < idle_pct) => return None,
                    None => 0,
                };
                Some(SessionWant {
                    session: p.session,
                    pid: p.pid,
                    nice,
                })
            });
        fold_sessions(members)
    }
}

/// One want per session, at the lowest nice its members ask; sessions at 0 left out.
fn fold_sessions(members: impl Iterator<Item = SessionWant>) -> Vec<SessionWant> {
    let mut sessions: HashMap<i32, SessionWant> = HashMap::new();
    for m in members {
        let w = sessions.entry(m.session).or_insert(m);
        w.nice = w.nice.min(m.nice);
    }
    let mut wants: Vec<SessionWant> = sessions.into_values().filter(|w| w.nice > 0).collect();
    wants.sort_by_key(|w| w.session);
    wants
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(session: i32, pid: i32, nice: i32) -> SessionWant {
        SessionWant { session, pid, nice }
    }

    /// A session gives up share only when every member that counts does: one busy member
    /// that keeps its share (nice 0) keeps the whole session at 0.
    #[test]
    fn a_session_takes_the_lowest_nice_its_members_ask() {
        let wants = fold_sessions(
            [
                m(10, 10, 19),
                m(10, 11, 19),
                m(20, 20, 19),
                m(20, 21, 0),
                m(30, 31, 5),
                m(30, 32, 19),
            ]
            .into_iter(),
        );
        assert_eq!(wants, vec![m(10, 10, 19), m(30, 31, 5)]);
    }
}
