use super::*;

#[test]
fn parses_the_proc_file() {
    assert_eq!(parse("/autogroup-324 nice 0\n"), Some((324, 0)));
    assert_eq!(parse("/autogroup-7 nice 19\n"), Some((7, 19)));
    assert_eq!(parse("/autogroup-7 nice -5\n"), Some((7, -5)));
    assert_eq!(parse("/autogroup-7 prio 3\n"), None);
    assert_eq!(parse("/autogroup-x nice 3\n"), None);
    assert_eq!(parse(""), None);
}

/// A session of its own (a process group too): its leader is killed with the group.
struct Session(std::process::Child);

impl Drop for Session {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(-(self.0.id() as i32));
        let _ = nix::sys::signal::kill(group, nix::sys::signal::SIGKILL);
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn key(pid: i32) -> ProcKey {
    (pid, sys::start_ticks(pid).expect("a live process"))
}

fn nice(pid: i32) -> Option<i32> {
    read(key(pid)).map(|(_, n)| n)
}

/// A session with two members: the leader and a child of it (pids returned).
fn session() -> (Session, i32, i32) {
    let s = Session(
        std::process::Command::new("setsid")
            .args(["sh", "-c", "sleep 60 & exec sleep 61"])
            .spawn()
            .expect("spawn setsid sh"),
    );
    let leader = s.0.id() as i32;
    for _ in 0..200 {
        let kids = fs::read_to_string(format!("/proc/{leader}/task/{leader}/children"))
            .unwrap_or_default();
        let comm = fs::read_to_string(format!("/proc/{leader}/comm")).unwrap_or_default();
        if let (Some(kid), "sleep") = (kids.split_whitespace().next(), comm.trim()) {
            return (s, leader, kid.parse().unwrap());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("the session did not come up");
}

/// Kills `pid` (a session's leader) and waits until it is no longer a live process.
fn kill_member(s: &mut Session, pid: i32) {
    let gone = key(pid);
    let _ = s.0.kill();
    let _ = s.0.wait();
    assert!(!sys::is_process(gone) || read(gone).is_none());
}

fn want(session: i32, member: i32, nice: i32) -> SessionWant {
    SessionWant {
        session,
        member: key(member),
        nice,
    }
}

/// Root only: the kernel rate-limits autogroup writes without CAP_SYS_ADMIN, so an
/// unprivileged run would see EAGAIN between the steps (the unprivileged path is not
/// covered here).
fn can_run() -> bool {
    if !enabled() {
        eprintln!("skipped: autogroups are off on this kernel");
        return false;
    }
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root (the kernel's rate limit on autogroup writes)");
        return false;
    }
    true
}

/// Lowers, leaves someone else's value (and a reset to 0) alone, and puts back through
/// another member when the one it wrote through is gone (review findings of issue 21).
#[test]
fn lowers_a_session_and_puts_back_only_its_own_value() {
    if !can_run() {
        return;
    }
    let (mut sa, a, a2) = session();
    let (_b, b, _) = session();
    let (_c, c, _) = session();
    assert_eq!((nice(a), nice(b), nice(c)), (Some(0), Some(0), Some(0)));
    write_nice(key(c), 3).unwrap();
    let mut groups = Autogroups::default();
    let all = |n| [want(a, a, n), want(b, b, n), want(c, c, n)];
    groups.apply(&all(19));
    assert_eq!((nice(a), nice(a2), nice(b)), (Some(19), Some(19), Some(19)));
    assert_eq!(nice(c), Some(3), "someone else's nice is left alone");
    assert_eq!(groups.held_count(), 2);
    // Someone puts b back to 0: theirs from then on, not written again.
    write_nice(key(b), 0).unwrap();
    groups.apply(&all(19));
    groups.apply(&all(19));
    assert_eq!(nice(b), Some(0));
    // The member written through exits, and the scan has not seen the session since: the
    // put-back finds the other member in /proc.
    kill_member(&mut sa, a);
    groups.apply(&[want(b, b, 19), want(c, c, 19)]);
    assert_eq!(nice(a2), Some(0), "put back through a member still there");
    assert_eq!(groups.held_count(), 0);
    assert_eq!(nice(c), Some(3));
}

/// What a run wrote survives it in the file: the next run (after a crash) takes it up, also
/// when the member it wrote through is gone, and puts it back; at exit every autogroup goes
/// back, through whichever member is left.
#[test]
fn a_run_after_a_crash_puts_back_what_the_one_before_wrote() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("state.json.autogroups");
    let (mut sa, a, a2) = session();
    let (mut sb, b, b2) = session();
    let mut first = Autogroups::default();
    first.keep_in(&file);
    first.apply(&[want(a, a, 19), want(b, b, 15)]);
    assert_eq!((nice(a), nice(b)), (Some(19), Some(15)));
    drop(first); // a crash: nothing put back
    kill_member(&mut sa, a);
    let mut second = Autogroups::default();
    second.keep_in(&file);
    assert_eq!(second.held_count(), 2);
    second.apply(&[want(a2, a2, 0), want(b, b, 15)]);
    assert_eq!((nice(a2), nice(b)), (Some(0), Some(15)));
    kill_member(&mut sb, b);
    second.restore_all(Duration::from_secs(2));
    assert_eq!(nice(b2), Some(0));
    assert!(!file.exists(), "nothing left to put back");
}

/// A file that says the tuner wrote a raise, or from another value than 0, is not taken up.
#[test]
fn implausible_records_are_not_taken_up() {
    let h = |prior, written| Held {
        session: 1,
        autogroup: 1,
        pid: 1,
        start_ticks: 1,
        prior,
        written,
    };
    assert!(h(0, 19).plausible());
    assert!(!h(-20, 19).plausible());
    assert!(!h(0, -5).plausible());
    assert!(!h(0, 0).plausible());
}
