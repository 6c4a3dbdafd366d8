//! `tuner rules export --llm-cache`: the cached model answers as a rule file for review.
//!
//! Each answer becomes one rule matching the executable's path, the command-line pattern's
//! argument, the cgroup (folded digit runs become `*`) and the uid whose process was asked
//! about, with the classifier's confidence. Globs have no escapes, so a literal `*` or `?` in a
//! path turns into `?`, which still matches it. Nothing here is applied by itself: an admin
//! copies the rules they agree with into a rules directory.
//!
//! A rule that names a uid vouches for a raising class (Documentation/tuner-trust-model.md),
//! so the class written is what the model could have granted that process, not its raw
//! answer: lowered to `[llm.ceilings]` and `[trust.ceilings]` for the uid and cgroup, and to
//! throughput where the class raises and the executable is not root's in root-only
//! directories. The comment above each rule says what was lowered and why.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::Path;

use crate::classify::trust::UNVOUCHED_MAX;
use crate::config::ceiling::Ceilings;
use crate::config::rules::{export_toml, Matcher, Rule};
use crate::glob::Glob;
use crate::hint::HintSource;
use crate::observe::exe_trust;

use super::cache::{AnswerCache, CacheEntry};
use super::schema::class_from_name;
use super::MODEL_CONFIDENCE;
use crate::hint::HintClass;

/// A literal as a glob that matches at least that literal.
fn literal(s: &str) -> String {
    s.replace(['*', '?'], "?")
}

/// A stored (digit-folded) value as a glob: `#` stood for a run of digits.
fn folded(s: &str) -> String {
    literal(s).replace('#', "*")
}

/// `llm-` plus the comm reduced to `[a-z0-9._-]`, unique among `taken`.
fn rule_name(comm: &str, taken: &mut HashSet<String>) -> String {
    let slug: String = comm
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let slug = slug.trim_matches('-');
    let base = format!("llm-{}", if slug.is_empty() { "process" } else { slug });
    let mut name = base.clone();
    let mut n = 2;
    while !taken.insert(name.clone()) {
        name = format!("{base}-{n}");
        n += 1;
    }
    name
}

/// What an exported rule may grant: the model's ceilings and every source's.
#[derive(Debug, Clone, Copy)]
pub struct ExportLimits<'a> {
    pub llm: &'a Ceilings,
    pub trust: &'a Ceilings,
    /// Where the executables are judged (`/`; a scratch tree in tests).
    pub root: &'a Path,
}

/// The class an answer may be exported with, and why it is lower than the answer; `None`
/// when a ceiling allows nothing.
fn exported_class(e: &CacheEntry, lim: &ExportLimits<'_>) -> Option<(HintClass, Vec<String>)> {
    let k = &e.key;
    let mut class = class_from_name(&e.class)?;
    let cgroup = if e.cgroup_seen.is_empty() {
        &k.cgroup
    } else {
        &e.cgroup_seen
    };
    let mut why = Vec::new();
    for (name, ceilings) in [("llm.ceilings", lim.llm), ("trust.ceilings", lim.trust)] {
        let c = ceilings.clamp(class, k.uid, cgroup)?;
        if c != class {
            why.push(format!("{name} for uid {} in {cgroup}: {c}", k.uid));
            class = c;
        }
    }
    if class.is_raising() && !exe_trust::path_trusted(lim.root, Path::new(&k.exe)) {
        why.push(format!(
            "{class} needs an executable only root can replace: {UNVOUCHED_MAX}"
        ));
        class = UNVOUCHED_MAX;
    }
    Some((class, why))
}

/// The rule for one cached answer, or `None` for an entry without a usable class.
fn entry_rule(
    e: &CacheEntry,
    cache_path: &Path,
    lim: &ExportLimits<'_>,
    taken: &mut HashSet<String>,
) -> Option<Rule> {
    let (class, lowered) = exported_class(e, lim)?;
    let k = &e.key;
    let mut matcher = Matcher {
        exe: vec![Glob::new(&literal(&k.exe))],
        // The answer was drawn from facts this uid chose: it is for this uid's processes.
        uids: vec![k.uid],
        ..Default::default()
    };
    if let Some((_, arg)) = k.pattern.split_once(' ') {
        matcher
            .cmdline
            .push(Glob::new(&format!("*{}*", folded(arg))));
    }
    if !k.cgroup.is_empty() {
        matcher.cgroup.push(Glob::new(&folded(&k.cgroup)));
    }
    let mut origin = format!(
        "{}: model {:?} answered {} for comm {:?} of uid {} (inode {}, size {}, answered at unix {})",
        cache_path.display(),
        e.model,
        e.class,
        e.comm,
        k.uid,
        k.ino,
        k.size,
        e.answered_at_unix
    );
    if !lowered.is_empty() {
        origin.push_str("; lowered by ");
        origin.push_str(&lowered.join(", "));
    }
    Some(Rule {
        name: rule_name(&e.comm, taken),
        matcher,
        class,
        confidence: MODEL_CONFIDENCE,
        strict: false,
        inherit: !class.is_raising(),
        spread: false,
        node: None,
        source: HintSource::Rule,
        origin,
        roles: Vec::new(),
    })
}

/// The cache's answers as rules in a stable order; for one executable, rules that also match
/// an argument come before the one that does not, so first-match picks the narrower.
pub fn cache_rules(cache: &AnswerCache, cache_path: &Path, lim: &ExportLimits<'_>) -> Vec<Rule> {
    let mut entries = cache.entries();
    entries.sort_by_key(|e| {
        (
            &e.key.exe,
            !e.key.pattern.contains(' '),
            &e.key.pattern,
            &e.key.cgroup,
        )
    });
    let mut taken = HashSet::new();
    entries
        .into_iter()
        .filter_map(|e| entry_rule(e, cache_path, lim, &mut taken))
        .collect()
}

/// The rule file text: a header saying what this is, then the rules.
pub fn export_cache(cache: &AnswerCache, cache_path: &Path, lim: &ExportLimits<'_>) -> String {
    let rules = cache_rules(cache, cache_path, lim);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Rules drafted from the LLM classifier's cached answers in {}.",
        cache_path.display()
    );
    let _ = writeln!(
        out,
        "# {} answers. The model chose each class from a process's name, command line and",
        rules.len()
    );
    out.push_str("# numbers; review every rule before copying it into /etc/sched_hint/rules.d/.\n");
    let body = export_toml(&rules);
    // export_toml's own first line describes the effective rule set, which this is not.
    out.push_str(body.split_once('\n').map_or("", |(_, rest)| rest));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::external::ProcFacts;
    use crate::config::rules::parse_rules;
    use crate::llm::cache::identify;
    use crate::observe::test_proc;

    #[test]
    fn exported_rules_parse_and_match_the_process() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("my*tool");
        std::fs::write(&exe, b"x").unwrap();
        let facts = ProcFacts {
            pid: i32::MAX,
            uid: 1000,
            comm: "my tool\n".into(),
            exe: Some(exe.clone()),
            cmdline: vec![exe.display().to_string(), "-v".into(), "serve-42".into()],
            cgroup: "/user.slice/session-3.scope".into(),
            nr_threads: 1,
            cpu_pct: 0.0,
            voluntary_ctxsw_per_s: 0.0,
            involuntary_ctxsw_per_s: 0.0,
            rss_kib: 0,
        };
        let mut cache = AnswerCache::in_memory();
        cache.insert(
            identify(&facts).unwrap(),
            HintClass::Batch,
            "m",
            &facts.comm,
            &facts.cgroup,
        );
        cache.insert(
            identify(&ProcFacts {
                cmdline: vec![],
                ..facts.clone()
            })
            .unwrap(),
            HintClass::Background,
            "m",
            "my tool",
            &facts.cgroup,
        );
        let open = Ceilings::new(HintClass::Latency);
        let lim = ExportLimits {
            llm: &open,
            trust: &open,
            root: Path::new("/"),
        };
        let text = export_cache(
            &cache,
            Path::new("/var/lib/sched_hint/llm-cache.json"),
            &lim,
        );
        assert!(text.starts_with("# Rules drafted from the LLM"), "{text}");
        let rules = parse_rules(&text, "export").unwrap();
        assert_eq!(rules.len(), 2, "{text}");
        let names: HashSet<_> = rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, HashSet::from(["llm-my-tool", "llm-my-tool-2"]));

        let mut p = test_proc(4242, "my tool");
        p.exe = Some(exe);
        p.cmdline = facts.cmdline.clone();
        p.cgroup = "/user.slice/session-17.scope".into();
        let hit = rules
            .iter()
            .find(|r| r.matcher.matches(&p).is_some())
            .expect("a rule matches");
        assert_eq!(hit.class, HintClass::Batch);
        assert!((hit.confidence - MODEL_CONFIDENCE).abs() < 1e-6);
        p.cmdline.truncate(2);
        let hit = rules
            .iter()
            .find(|r| r.matcher.matches(&p).is_some())
            .expect("the other one");
        assert_eq!(hit.class, HintClass::Background);
    }

    /// Issue 20, reproduction 4: the raw answer, for anyone, became a rule.
    #[test]
    fn exported_classes_are_what_the_uid_could_have_been_granted() {
        let dir = tempfile::tempdir().unwrap();
        let own = dir.path().join("miner");
        std::fs::write(&own, b"x").unwrap();
        let root_bin = ["/usr/bin/sleep", "/bin/sleep"]
            .into_iter()
            .map(Path::new)
            .find(|p| exe_trust::path_trusted(Path::new("/"), p));
        let facts = |exe: &Path, uid: u32| ProcFacts {
            pid: i32::MAX,
            uid,
            comm: "p".into(),
            exe: Some(exe.to_path_buf()),
            cmdline: vec![],
            cgroup: "/user.slice".into(),
            nr_threads: 1,
            cpu_pct: 0.0,
            voluntary_ctxsw_per_s: 0.0,
            involuntary_ctxsw_per_s: 0.0,
            rss_kib: 0,
        };
        let cfg = crate::config::Config::default();
        let lim = ExportLimits {
            llm: &cfg.llm.ceilings,
            trust: &cfg.trust.ceilings,
            root: Path::new("/"),
        };
        let mut cache = AnswerCache::in_memory();
        let add = |cache: &mut AnswerCache, f: &ProcFacts| {
            let k = identify(f).unwrap();
            cache.insert(k, HintClass::Latency, "m", "p", &f.cgroup);
        };
        add(&mut cache, &facts(&own, 1000));
        add(&mut cache, &facts(&own, crate::config::NOBODY_UID));
        if let Some(b) = root_bin {
            add(&mut cache, &facts(b, 1000));
        }
        let rules = cache_rules(&cache, Path::new("/c.json"), &lim);
        let of = |exe: &Path, uid: u32| {
            rules
                .iter()
                .find(|r| {
                    r.matcher.uids == [uid] && r.matcher.exe[0].matches(&exe.display().to_string())
                })
                .unwrap_or_else(|| panic!("no rule for {} of {uid}", exe.display()))
        };
        // a user's own binary: no raising class whatever the model said
        let r = of(&own, 1000);
        assert_eq!(r.class, HintClass::Throughput, "{}", r.origin);
        assert!(r
            .origin
            .contains("needs an executable only root can replace"));
        // nobody: the shipped trust ceiling
        let r = of(&own, crate::config::NOBODY_UID);
        assert_eq!(r.class, HintClass::Throughput, "{}", r.origin);
        // root's binary: the model's own ceiling (interactive), and not inherited
        if let Some(b) = root_bin {
            let r = of(b, 1000);
            assert_eq!(r.class, HintClass::Interactive, "{}", r.origin);
            assert!(!r.inherit);
            assert!(
                r.origin.contains("llm.ceilings for uid 1000"),
                "{}",
                r.origin
            );
        }
        let back = parse_rules(&export_cache(&cache, Path::new("/c.json"), &lim), "t").unwrap();
        assert!(back.iter().all(|r| r.matcher.uids.len() == 1));
    }
}
