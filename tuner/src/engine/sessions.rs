//! The autogroup side of a daemon's pass (see [`crate::apply::autogroup`]): which sessions
//! give up CPU share as a whole.

use std::collections::{HashMap, HashSet};

use super::{Engine, Mode};
use crate::apply::autogroup::SessionWant;
use crate::apply::HintSink;
use crate::observe::procfs::waits_for_children;
use crate::observe::snapshot::Snapshot;
use crate::observe::ProcObs;

impl Engine {
    /// Every session with a member in `snap`, at the lowest autogroup nice any member asks.
    /// A member the tuner hints asks what its class asks of the backend
    /// ([`HintSink::session_nice`]), the lowest of its threads' role classes too; any other
    /// member asks 0 (an idle shell wants its share when someone types at it, an idle server
    /// when a request comes), unless it sleeps waiting for a child to end, as a script's
    /// loop or a shell's foreground job does: that asks nothing. The write goes through a
    /// member of the tuner's own user where there is one (without `CAP_DAC_OVERRIDE` only
    /// those are writable). `tuner once` asks nothing: nothing would put the autogroups
    /// back.
    pub(super) fn session_wants(&self, snap: &Snapshot, sink: &dyn HintSink) -> Vec<SessionWant> {
        if self.mode != Mode::Daemon {
            return Vec::new();
        }
        let proc_root = &self.cfg.observe.proc_root;
        let euid = nix::unistd::geteuid().as_raw();
        // Each member with what its hint asks, if the tuner hints it.
        let procs: Vec<(&ProcObs, Option<i32>)> = snap
            .procs
            .iter()
            .filter(|p| !p.kthread && p.session > 0)
            .map(|p| {
                let asks = self.applied_of(p.key()).map(|a| {
                    a.thread_classes
                        .iter()
                        .map(|t| sink.session_nice(t.class))
                        .fold(sink.session_nice(a.hint.class), i32::min)
                });
                (p, asks)
            })
            .collect();
        // Only sessions with a member that asks for less are looked at closely: the wait
        // channel is one more read per process, not for every process at every pass.
        let lowering: HashSet<i32> = procs
            .iter()
            .filter(|(_, asks)| asks.is_some_and(|n| n > 0))
            .map(|(p, _)| p.session)
            .collect();
        let members = procs.into_iter().map(|(p, asks)| {
            let nice = match asks {
                Some(n) => n,
                None if !lowering.contains(&p.session) => 0,
                // Still a member: a session held by the tuner is reached through it.
                None if waits_for_children(proc_root, p.pid) => ASKS_NOTHING,
                None => 0,
            };
            let want = SessionWant {
                session: p.session,
                member: p.key(),
                nice,
            };
            (want, p.uid == euid)
        });
        fold_sessions(members)
    }
}

/// A member that asks nothing for the session (an idle script loop): it neither keeps the
/// session at 0 nor lowers it.
const ASKS_NOTHING: i32 = i32::MAX;

/// One want per session, at the lowest nice its members ask, through its first member that
/// is `own` (else its first); a session where nobody asks anything wants 0 (what the tuner
/// wrote there goes back).
fn fold_sessions(members: impl Iterator<Item = (SessionWant, bool)>) -> Vec<SessionWant> {
    let mut sessions: HashMap<i32, (SessionWant, bool)> = HashMap::new();
    for (m, own) in members {
        let (w, w_own) = sessions.entry(m.session).or_insert((m, own));
        w.nice = w.nice.min(m.nice);
        if own && !*w_own {
            (w.member, *w_own) = (m.member, true);
        }
    }
    let mut wants: Vec<SessionWant> = sessions
        .into_values()
        .map(|(mut w, _)| {
            if w.nice == ASKS_NOTHING {
                w.nice = 0;
            }
            w
        })
        .collect();
    wants.sort_by_key(|w| w.session);
    wants
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(session: i32, pid: i32, nice: i32) -> SessionWant {
        SessionWant {
            session,
            member: (pid, 1),
            nice,
        }
    }

    /// The write goes through a member of the tuner's own user where there is one.
    #[test]
    fn a_session_is_reached_through_a_member_of_the_tuners_user() {
        let wants = fold_sessions([(m(10, 10, 19), false), (m(10, 11, 19), true)].into_iter());
        assert_eq!(wants, vec![m(10, 11, 19)]);
    }

    /// A session gives up share only when every member does: one that keeps its share
    /// (nice 0) keeps the whole session at 0; an idle script loop neither keeps nor lowers
    /// it, and a session of such loops alone goes back to 0.
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
                m(40, 40, ASKS_NOTHING),
                m(40, 41, 19),
                m(50, 50, ASKS_NOTHING),
            ]
            .into_iter()
            .map(|w| (w, false)),
        );
        assert_eq!(
            wants,
            vec![
                m(10, 10, 19),
                m(20, 20, 0),
                m(30, 31, 5),
                m(40, 40, 19),
                m(50, 50, 0)
            ]
        );
    }
}
