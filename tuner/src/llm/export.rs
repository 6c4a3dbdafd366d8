//! `tuner rules export --llm-cache`: the cached model answers as a rule file for review.
//!
//! Each answer becomes one rule matching the executable's path, the command-line pattern's
//! argument and the cgroup (folded digit runs become `*`), with the model's class and the
//! classifier's confidence. Globs have no escapes, so a literal `*` or `?` in a path turns into
//! `?`, which still matches it. Nothing here is applied by itself: an admin copies the rules
//! they agree with into a rules directory.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::Path;

use crate::config::rules::{export_toml, Matcher, Rule};
use crate::glob::Glob;
use crate::hint::HintSource;

use super::cache::{AnswerCache, CacheEntry};
use super::schema::class_from_name;
use super::MODEL_CONFIDENCE;

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

/// The rule for one cached answer, or `None` for an entry without a usable class.
fn entry_rule(e: &CacheEntry, cache_path: &Path, taken: &mut HashSet<String>) -> Option<Rule> {
    let class = class_from_name(&e.class)?;
    let k = &e.key;
    let mut matcher = Matcher {
        exe: vec![Glob::new(&literal(&k.exe))],
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
    let origin = format!(
        "{}: model {:?} answered {} for comm {:?} (inode {}, size {}, answered at unix {})",
        cache_path.display(),
        e.model,
        e.class,
        e.comm,
        k.ino,
        k.size,
        e.answered_at_unix
    );
    Some(Rule {
        name: rule_name(&e.comm, taken),
        matcher,
        class,
        confidence: MODEL_CONFIDENCE,
        strict: false,
        inherit: true,
        spread: false,
        node: None,
        source: HintSource::Rule,
        origin,
    })
}

/// The cache's answers as rules in a stable order; for one executable, rules that also match
/// an argument come before the one that does not, so first-match picks the narrower.
pub fn cache_rules(cache: &AnswerCache, cache_path: &Path) -> Vec<Rule> {
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
        .filter_map(|e| entry_rule(e, cache_path, &mut taken))
        .collect()
}

/// The rule file text: a header saying what this is, then the rules.
pub fn export_cache(cache: &AnswerCache, cache_path: &Path) -> String {
    let rules = cache_rules(cache, cache_path);
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
    use crate::hint::HintClass;
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
        );
        let text = export_cache(&cache, Path::new("/var/lib/sched_hint/llm-cache.json"));
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
}
