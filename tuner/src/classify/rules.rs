//! Step 2 of classification: the rule catalog ([`crate::config::rules`]) matched against a
//! process, first match wins.

use crate::config::rules::{Matcher, Rule, RuleSet};
use crate::glob::find_exe;
use crate::observe::ProcObs;

// Matching lives here, beside the other classification steps; the types and their parsing
// live with the configuration that holds them.
impl Matcher {
    /// `Some(what matched)` when every given matcher matches `p`.
    pub fn matches(&self, p: &ProcObs) -> Option<String> {
        if self.is_empty() {
            return None;
        }
        let mut why = Vec::new();
        if !self.comm.is_empty() {
            let g = self.comm.iter().find(|g| g.matches(&p.comm))?;
            why.push(format!("comm={g}"));
        }
        if !self.exe.is_empty() {
            let g = find_exe(&self.exe, p.exe.as_deref()?)?;
            why.push(format!("exe={g}"));
        }
        if !self.cmdline.is_empty() {
            let line = p.cmdline.join(" ");
            let g = self.cmdline.iter().find(|g| g.matches(&line))?;
            why.push(format!("cmdline={g}"));
        }
        if !self.cgroup.is_empty() {
            let g = self.cgroup.iter().find(|g| g.matches(&p.cgroup))?;
            why.push(format!("cgroup={g}"));
        }
        if !self.uids.is_empty() {
            if !self.uids.contains(&p.uid) {
                return None;
            }
            why.push(format!("uid={}", p.uid));
        }
        Some(why.join(","))
    }
}

impl RuleSet {
    pub fn first_match(&self, p: &ProcObs) -> Option<(&Rule, String)> {
        self.rules
            .iter()
            .find_map(|r| r.matcher.matches(p).map(|why| (r, why)))
    }

    /// Whether the first rule to match `p` could be one whose roles match on wait channels,
    /// judged before its threads are read: the uid is not known yet, so a rule that names
    /// uids may match, and may be passed over.
    pub fn may_read_wait_channels(&self, p: &ProcObs) -> bool {
        for r in &self.rules {
            let without_uid = Matcher {
                uids: Vec::new(),
                ..r.matcher.clone()
            };
            let could = if without_uid.is_empty() {
                !r.matcher.uids.is_empty()
            } else {
                without_uid.matches(p).is_some()
            };
            if !could {
                continue;
            }
            if r.roles.iter().any(|x| !x.wchan.is_empty()) {
                return true;
            }
            if r.matcher.uids.is_empty() {
                // This rule matches whatever the uid: it is the first match.
                return false;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::rules::{default_rules, parse_rules};
    use crate::hint::HintClass;
    use crate::observe::test_proc;

    #[test]
    fn wait_channels_are_read_only_where_a_wchan_role_could_apply() {
        let rules = RuleSet {
            rules: default_rules().unwrap(),
        };
        assert!(rules.may_read_wait_channels(&test_proc(1, "llama-server")));
        let mut py = test_proc(2, "python3");
        assert!(!rules.may_read_wait_channels(&py));
        py.cmdline = vec!["python3".into(), "-m".into(), "llama_cpp.server".into()];
        assert!(rules.may_read_wait_channels(&py));
        assert!(!rules.may_read_wait_channels(&test_proc(3, "rustc")));
        assert!(!rules.may_read_wait_channels(&test_proc(4, "sshd")));

        // An earlier rule that names a uid may not match: the later role rule still could.
        let src = "[[rule]]\nname = \"mine\"\ncomm = [\"srv\"]\nuids = [0]\nclass = \"batch\"\n\
                   [[rule]]\nname = \"srv\"\ncomm = [\"srv\"]\nclass = \"throughput\"\n\
                   [[rule.role]]\nname = \"l\"\nwchan = [\"inet_csk_accept\"]\nclass = \"interactive\"\n";
        let rules = RuleSet {
            rules: parse_rules(src, "t").unwrap(),
        };
        assert!(rules.may_read_wait_channels(&test_proc(5, "srv")));
        // One that matches whatever the uid comes first and has no such roles.
        let src = src.replace("uids = [0]\n", "");
        let rules = RuleSet {
            rules: parse_rules(&src, "t").unwrap(),
        };
        assert!(!rules.may_read_wait_channels(&test_proc(5, "srv")));
    }

    #[test]
    fn embedded_catalog_parses_and_covers_the_named_programs() {
        let rules = RuleSet {
            rules: default_rules().expect("embedded rules parse"),
        };
        let want = [
            ("llama-server", HintClass::Throughput),
            ("ollama", HintClass::Throughput),
            ("pipewire", HintClass::Latency),
            ("jackd", HintClass::Latency),
            ("Xorg", HintClass::Interactive),
            ("sshd", HintClass::Interactive),
            ("nginx", HintClass::Throughput),
            ("postgres", HintClass::Throughput),
            ("redis-server", HintClass::Throughput),
            ("rsync", HintClass::Background),
            ("updatedb", HintClass::Background),
            ("cc1", HintClass::Batch),
            ("rustc", HintClass::Batch),
            ("clang-19", HintClass::Batch),
            ("clang++-9", HintClass::Batch),
            ("ld.lld-19", HintClass::Batch),
            ("ffmpeg", HintClass::Batch),
        ];
        for (comm, class) in want {
            let p = test_proc(100, comm);
            let (rule, _) = rules
                .first_match(&p)
                .unwrap_or_else(|| panic!("no rule for {comm}"));
            assert_eq!(rule.class, class, "{comm} matched rule {}", rule.name);
        }
        let mut vllm = test_proc(101, "python3");
        vllm.cmdline = vec![
            "python3".into(),
            "-m".into(),
            "vllm.entrypoints.openai.api_server".into(),
        ];
        assert_eq!(
            rules.first_match(&vllm).map(|(r, _)| r.class),
            Some(HintClass::Throughput)
        );
        assert!(rules.first_match(&test_proc(102, "my-own-tool")).is_none());
    }

    #[test]
    fn all_matchers_must_match() {
        let src = r#"
[[rule]]
name = "web"
comm = ["nginx"]
uids = [33]
class = "throughput"
"#;
        let rules = RuleSet {
            rules: parse_rules(src, "t.toml").unwrap(),
        };
        let mut p = test_proc(5, "nginx");
        p.uid = 0;
        assert!(rules.first_match(&p).is_none());
        p.uid = 33;
        let (r, why) = rules.first_match(&p).unwrap();
        assert_eq!(r.name, "web");
        assert_eq!(why, "comm=nginx,uid=33");
        assert_eq!(r.origin, "t.toml:3");
    }

    #[test]
    fn exe_patterns_without_slash_match_the_file_name() {
        let src = "[[rule]]\nname = \"x\"\nexe = [\"llama-*\"]\nclass = \"batch\"\n";
        let rules = RuleSet {
            rules: parse_rules(src, "t").unwrap(),
        };
        let mut p = test_proc(5, "whatever");
        p.exe = Some("/opt/llama/bin/llama-server".into());
        assert!(rules.first_match(&p).is_some());
        p.exe = None;
        assert!(rules.first_match(&p).is_none());
    }
}
