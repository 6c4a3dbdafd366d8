//! The trust model's last step (Documentation/tuner-trust-model.md): what a decision from a
//! rule, a heuristic or the model may give, whoever asked for it.
//!
//! Every fact the tuner reads about a process is the process owner's to choose: its name,
//! command line, behaviour, even its binary. So a class that raises a task above what its
//! owner may set itself (latency, interactive) needs something no unprivileged user
//! controls: root's own process, a binary only root can have put in place (and named as the
//! rule names it), or an admin rule that names the uid or cgroup. Then the `[trust]` ceiling
//! of the uid and cgroup applies on every path. The admin's `[[manual]]` entries pass as
//! they are: they are the admin's word.

use crate::config::rules::Rule;
use crate::config::Config;
use crate::hint::{Hint, HintClass, HintSource, Step};
use crate::observe::ProcObs;

use super::{Decision, Verdict};

/// What a request for a raising class gets when nothing vouches for it: the most favoured
/// class that does not raise.
pub const UNVOUCHED_MAX: HintClass = HintClass::Throughput;

/// `comm` is the executable's file name cut to `TASK_COMM_LEN - 1` bytes at exec.
const COMM_LEN: usize = 15;

/// What vouches for `p` holding a raising class from `rule` (`None`: a heuristic or the
/// model), or why nothing does.
pub fn raise_basis(p: &ProcObs, rule: Option<&Rule>) -> Result<&'static str, String> {
    if let Some(r) = rule {
        if !r.matcher.uids.is_empty() || !r.matcher.cgroup.is_empty() {
            return Ok("the rule names the uid or cgroup");
        }
    }
    // Root may set any priority itself; the tuner gives it nothing it could not take.
    if p.uid == 0 {
        return Ok("root's process");
    }
    if !p.exe_trusted {
        return Err("its executable is not root's in directories only root may write".into());
    }
    let Some(r) = rule else {
        return Ok("root's executable");
    };
    if !r.matcher.exe.is_empty() {
        // The exe pattern matched the trusted binary itself; comm is only a further filter.
        return Ok("root's executable at the path the rule names");
    }
    if !r.matcher.comm.is_empty() {
        // A root-owned binary run through a symlink, or one that renamed itself
        // (PR_SET_NAME), carries any comm: the name must be the binary's own.
        let name = p
            .exe
            .as_deref()
            .and_then(|e| e.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let cut: String = name
            .char_indices()
            .take_while(|(i, c)| i + c.len_utf8() <= COMM_LEN)
            .map(|(_, c)| c)
            .collect();
        if !r
            .matcher
            .comm
            .iter()
            .any(|g| g.matches(&name) || g.matches(&cut))
        {
            return Err(format!(
                "its executable is {name:?}, not the name the rule gives"
            ));
        }
        return Ok("root's executable, named as the rule names it");
    }
    Err("a command line names nothing its owner cannot choose".into())
}

/// Applies the trust model to `d`, made for `p` (by `rule` when a rule matched). `note`
/// gets a trace line when the class changes.
pub fn gate(
    mut d: Decision,
    p: &ProcObs,
    rule: Option<&Rule>,
    cfg: &Config,
    note: &mut dyn FnMut(String),
) -> Decision {
    let Verdict::Class(asked) = d.verdict else {
        return d;
    };
    if d.step == Step::Manual || asked == HintClass::None {
        return d;
    }
    let mut class = asked;
    if class.is_raising() {
        if let Err(why) = raise_basis(p, rule) {
            note(format!(
                "5 trust: {class} withheld ({why}) -> {UNVOUCHED_MAX}"
            ));
            class = UNVOUCHED_MAX;
        }
    }
    let capped = cfg
        .trust
        .ceilings
        .clamp(class, p.uid, &p.cgroup)
        .unwrap_or(HintClass::None);
    if capped != class {
        note(format!(
            "5 trust: ceiling for uid {} in {} -> {capped}",
            p.uid, p.cgroup
        ));
        class = capped;
    }
    if class != asked {
        tracing::debug!(pid = p.pid, comm = %p.comm, %asked, %class, "trust model lowered the class");
    }
    d.verdict = Verdict::Class(class);
    // A raised class stays with the process it was given to; its children are judged on
    // their own (a rule may say otherwise: `inherit = true`).
    if class.is_raising() && rule.is_none() {
        d.inherit = false;
    }
    d
}

/// The trust model again over what the engine keeps from earlier scans: a settled heuristic
/// class that `d` stands for, or, while `d` is open, `kept`, the hint the tuner wrote before.
/// The owner or the cgroup may have changed since (a daemon started by root drops to
/// `nobody`), so what was allowed then is not allowed now.
pub fn regate(d: Decision, p: &ProcObs, kept: Option<&Hint>, cfg: &Config) -> Decision {
    let mut quiet = |_: String| {};
    match d.verdict {
        Verdict::Class(_) if d.step == Step::Heuristic => gate(d, p, None, cfg, &mut quiet),
        Verdict::Open => {
            let Some(h) = kept.filter(|h| h.source != HintSource::Admin) else {
                return d;
            };
            let was = Decision {
                verdict: Verdict::Class(h.class),
                inherit: h.inherit,
                ..d.clone()
            };
            let now = gate(was, p, None, cfg, &mut quiet);
            if now.verdict == Verdict::Class(h.class) {
                d
            } else {
                now
            }
        }
        _ => d,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::rules::parse_rules;
    use crate::observe::test_proc;

    fn rule(extra: &str) -> Rule {
        let src = format!("[[rule]]\nname = \"r\"\nclass = \"latency\"\n{extra}\n");
        parse_rules(&src, "t").unwrap().remove(0)
    }

    fn untrusted(comm: &str, uid: u32) -> ProcObs {
        let mut p = test_proc(5, comm);
        p.uid = uid;
        p.exe = Some(format!("/home/u/{comm}").into());
        p.exe_trusted = false;
        p
    }

    #[test]
    fn names_alone_vouch_only_for_roots_binaries() {
        let by_name = rule("comm = [\"pipewire\"]");
        assert!(raise_basis(&untrusted("pipewire", 1000), Some(&by_name)).is_err());
        assert!(raise_basis(&test_proc(5, "pipewire"), Some(&by_name)).is_ok());
        assert!(raise_basis(&untrusted("pipewire", 0), Some(&by_name)).is_ok());
        // root's /usr/bin/sleep run through a symlink named pipewire
        let mut link = test_proc(5, "pipewire");
        link.exe = Some("/usr/bin/sleep".into());
        assert!(raise_basis(&link, Some(&by_name)).is_err());
        let named = rule("comm = [\"pipewire\"]\nuids = [1000]");
        assert!(raise_basis(&untrusted("pipewire", 1000), Some(&named)).is_ok());
        let by_cmdline = rule("cmdline = [\"*pipewire*\"]");
        assert!(raise_basis(&test_proc(5, "python3"), Some(&by_cmdline)).is_err());
        // long names: comm holds the first 15 bytes of the file name
        let mut long = test_proc(5, "gnome-terminal-");
        long.exe = Some("/usr/libexec/gnome-terminal-server".into());
        let r = rule("comm = [\"gnome-terminal-\"]");
        assert!(raise_basis(&long, Some(&r)).is_ok());
        // a browser's content process names itself; the exe pattern vouches
        let mut content = test_proc(5, "Web Content");
        content.exe = Some("/usr/lib/firefox-esr/firefox-esr".into());
        let r = rule("comm = [\"Web Content\"]\nexe = [\"firefox-esr\"]");
        assert!(raise_basis(&content, Some(&r)).is_ok());
    }

    #[test]
    fn heuristics_and_model_need_a_trusted_binary() {
        assert!(raise_basis(&untrusted("x", 1000), None).is_err());
        assert!(raise_basis(&test_proc(5, "x"), None).is_ok());
    }

    fn heuristic(class: HintClass) -> Decision {
        Decision::new(Verdict::Class(class), Step::Heuristic, "h", 0.9)
    }

    #[test]
    fn gate_lowers_and_raised_classes_are_not_inherited() {
        let cfg = Config::default();
        let mut lines = Vec::new();
        let mut note = |l: String| lines.push(l);
        let d = gate(
            heuristic(HintClass::Interactive),
            &test_proc(5, "x"),
            None,
            &cfg,
            &mut note,
        );
        assert_eq!(d.verdict, Verdict::Class(HintClass::Interactive));
        assert!(!d.inherit, "a child must not keep a raised class");
        let d = gate(
            heuristic(HintClass::Interactive),
            &untrusted("x", 1000),
            None,
            &cfg,
            &mut note,
        );
        assert_eq!(d.verdict, Verdict::Class(UNVOUCHED_MAX));
        // Shipped ceiling: nobody never gets more than throughput, even from root's binary.
        let mut p = test_proc(5, "pipewire");
        p.uid = crate::config::NOBODY_UID;
        let r = rule("comm = [\"pipewire\"]");
        let d = gate(heuristic(HintClass::Latency), &p, Some(&r), &cfg, &mut note);
        assert_eq!(d.verdict, Verdict::Class(HintClass::Throughput));
        let d = gate(heuristic(HintClass::Batch), &p, None, &cfg, &mut note);
        assert_eq!(d.verdict, Verdict::Class(HintClass::Batch));
        assert!(
            lines.iter().any(|l| l.contains("ceiling for uid 65534")),
            "{lines:?}"
        );
    }
}
