//! The rule catalog as written: TOML rules that map programs to classes, parsed and checked
//! into [`Rule`]s (matching them against processes is `classify::rules`).
//!
//! A rule matches when every matcher it gives matches (comm, exe, cmdline, cgroup, uids);
//! within one matcher any pattern may match. Rules are tried in order, first match wins:
//! the admin's `[[manual]]` entries, then user rule files, then the embedded catalog
//! (`default_rules.toml`, printed by `tuner rules export`).
//!
//! ```toml
//! [[rule]]
//! name = "audio-server"
//! comm = ["pipewire", "jackd"]
//! class = "latency"
//! confidence = 0.95
//! ```
//!
//! A rule may also give some of the process's threads a class of their own, by what each
//! thread does (`[[rule.role]]`, [`super::roles`]).

use std::fmt::Write as _;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::roles::{export_roles, validate_roles, RawRole, Role};
use super::ConfigError;
use crate::glob::Glob;
use crate::hint::{HintClass, HintSource};

const DEFAULT_RULES: &str = include_str!("default_rules.toml");
pub const DEFAULT_ORIGIN: &str = "<embedded rules>";

/// The matchers of one rule or manual entry.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Matcher {
    pub comm: Vec<Glob>,
    pub exe: Vec<Glob>,
    pub cmdline: Vec<Glob>,
    pub cgroup: Vec<Glob>,
    pub uids: Vec<u32>,
}

impl Matcher {
    pub fn is_empty(&self) -> bool {
        self.comm.is_empty()
            && self.exe.is_empty()
            && self.cmdline.is_empty()
            && self.cgroup.is_empty()
            && self.uids.is_empty()
    }
}

/// One rule (or one `[[manual]]` entry, whose source is admin).
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub matcher: Matcher,
    pub class: HintClass,
    pub confidence: f32,
    pub strict: bool,
    pub inherit: bool,
    /// Several instances spread one per node.
    pub spread: bool,
    /// A fixed node (manual entries only).
    pub node: Option<u32>,
    pub source: HintSource,
    /// Where it was defined, `file:line`.
    pub origin: String,
    /// Classes for some of the process's threads, by behaviour; first match wins.
    pub roles: Vec<Role>,
}

/// An ordered list of rules; the first match wins.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
}

impl RuleSet {
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether a role matches on wait channels, which a scan then reads for every thread.
    pub fn reads_wait_channels(&self) -> bool {
        self.rules
            .iter()
            .any(|r| r.roles.iter().any(|x| !x.wchan.is_empty()))
    }
}

/// A rule as written in TOML (also the shape of a config `[[manual]]` entry).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub name: Spanned<String>,
    #[serde(default)]
    pub comm: Vec<Spanned<String>>,
    #[serde(default)]
    pub exe: Vec<Spanned<String>>,
    #[serde(default)]
    pub cmdline: Vec<Spanned<String>>,
    #[serde(default)]
    pub cgroup: Vec<Spanned<String>>,
    #[serde(default)]
    pub uids: Vec<Spanned<i64>>,
    pub class: Spanned<String>,
    pub confidence: Option<Spanned<f64>>,
    pub strict: Option<Spanned<bool>>,
    pub inherit: Option<Spanned<bool>>,
    pub spread: Option<Spanned<bool>>,
    pub node: Option<Spanned<i64>>,
    /// `[[rule.role]]` tables.
    #[serde(default)]
    pub role: Vec<RawRole>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRuleFile {
    #[serde(default)]
    rule: Vec<RawRule>,
}

/// Turns one raw rule into a rule, with errors at the offending key.
pub fn validate_rule(
    raw: &RawRule,
    src: &str,
    origin: &str,
    source: HintSource,
) -> Result<Rule, ConfigError> {
    let err = |span: std::ops::Range<usize>, msg: String| ConfigError::at(origin, src, span, msg);
    let name = raw.name.get_ref().trim().to_owned();
    if name.is_empty() {
        return Err(err(raw.name.span(), "rule name must not be empty".into()));
    }
    let class: HintClass = raw
        .class
        .get_ref()
        .parse()
        .map_err(|e| err(raw.class.span(), e))?;
    let globs = |list: &[Spanned<String>]| -> Result<Vec<Glob>, ConfigError> {
        list.iter()
            .map(|s| {
                if s.get_ref().is_empty() {
                    Err(err(s.span(), "empty pattern".into()))
                } else {
                    Ok(Glob::new(s.get_ref()))
                }
            })
            .collect()
    };
    let mut uids = Vec::new();
    for u in &raw.uids {
        let v = u32::try_from(*u.get_ref())
            .map_err(|_| err(u.span(), format!("uid {} out of range", u.get_ref())))?;
        uids.push(v);
    }
    let matcher = Matcher {
        comm: globs(&raw.comm)?,
        exe: globs(&raw.exe)?,
        cmdline: globs(&raw.cmdline)?,
        cgroup: globs(&raw.cgroup)?,
        uids,
    };
    if matcher.is_empty() {
        return Err(err(
            raw.name.span(),
            format!("rule {name:?} matches nothing: give comm, exe, cmdline, cgroup or uids"),
        ));
    }
    let confidence = match &raw.confidence {
        None => {
            if source == HintSource::Admin {
                1.0
            } else {
                0.9
            }
        }
        Some(c) if (0.0..=1.0).contains(c.get_ref()) => *c.get_ref() as f32,
        Some(c) => {
            return Err(err(
                c.span(),
                format!("confidence must be within 0..=1, got {}", c.get_ref()),
            ))
        }
    };
    let node =
        match &raw.node {
            None => None,
            Some(n) if source != HintSource::Admin => return Err(err(
                n.span(),
                "node is only allowed in [[manual]] entries; rules leave placement to the planner"
                    .into(),
            )),
            Some(n) => Some(
                u32::try_from(*n.get_ref())
                    .ok()
                    .filter(|v| *v < crate::uapi::SCHED_HINT_MAX_NODES)
                    .ok_or_else(|| err(n.span(), format!("node {} out of range", n.get_ref())))?,
            ),
        };
    let roles = validate_roles(&raw.role, &name, src, origin)?;
    let line = super::line_col(src, raw.name.span().start).0;
    Ok(Rule {
        name,
        matcher,
        class,
        confidence,
        strict: raw.strict.as_ref().is_some_and(|s| *s.get_ref()),
        // A raised class stays with the process the rule names unless the rule says its
        // children are meant too: a shell the tuner raised would pass it to every job.
        inherit: raw
            .inherit
            .as_ref()
            .map_or(!class.is_raising(), |s| *s.get_ref()),
        spread: raw.spread.as_ref().is_some_and(|s| *s.get_ref()),
        node,
        source,
        origin: format!("{origin}:{line}"),
        roles,
    })
}

/// Parses a rule file (`[[rule]]` tables).
pub fn parse_rules(src: &str, origin: &str) -> Result<Vec<Rule>, ConfigError> {
    let file: RawRuleFile =
        toml::from_str(src).map_err(|e| ConfigError::from_toml(origin, src, &e))?;
    file.rule
        .iter()
        .map(|r| validate_rule(r, src, origin, HintSource::Rule))
        .collect()
}

/// The embedded catalog.
pub fn default_rules() -> Result<Vec<Rule>, ConfigError> {
    parse_rules(DEFAULT_RULES, DEFAULT_ORIGIN)
}

/// Loads user rules from files and directories of `*.toml` (sorted by name). Paths that do
/// not exist are skipped: the default `/etc/sched_hint/rules.d` is optional.
pub fn load_rule_paths(paths: &[impl AsRef<Path>]) -> Result<Vec<Rule>, ConfigError> {
    let mut rules = Vec::new();
    for path in paths {
        let path = path.as_ref();
        let files = if path.is_dir() {
            let mut files: Vec<_> = std::fs::read_dir(path)
                .map_err(|e| ConfigError::file(path, e.to_string()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            files.sort();
            files
        } else if path.exists() {
            vec![path.to_path_buf()]
        } else {
            tracing::debug!(path = %path.display(), "rule path absent, skipped");
            continue;
        };
        for file in files {
            let src = std::fs::read_to_string(&file)
                .map_err(|e| ConfigError::file(&file, e.to_string()))?;
            rules.extend(parse_rules(&src, &file.display().to_string())?);
        }
    }
    Ok(rules)
}

fn toml_list(out: &mut String, key: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    let quoted: Vec<String> = items.iter().map(|s| toml_string(s)).collect();
    let _ = writeln!(out, "{key} = [{}]", quoted.join(", "));
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// Writes rules back as a rule file, each preceded by where it came from.
pub fn export_toml(rules: &[Rule]) -> String {
    let mut out = String::from("# Effective sched_hint tuner rules, first match wins.\n");
    for r in rules {
        let _ = writeln!(out, "\n# from {}", r.origin);
        out.push_str("[[rule]]\n");
        let _ = writeln!(out, "name = {}", toml_string(&r.name));
        let globs = |v: &[Glob]| v.iter().map(|g| g.as_str().to_owned()).collect::<Vec<_>>();
        toml_list(&mut out, "comm", &globs(&r.matcher.comm));
        toml_list(&mut out, "exe", &globs(&r.matcher.exe));
        toml_list(&mut out, "cmdline", &globs(&r.matcher.cmdline));
        toml_list(&mut out, "cgroup", &globs(&r.matcher.cgroup));
        if !r.matcher.uids.is_empty() {
            let uids: Vec<String> = r.matcher.uids.iter().map(u32::to_string).collect();
            let _ = writeln!(out, "uids = [{}]", uids.join(", "));
        }
        let _ = writeln!(out, "class = \"{}\"", r.class);
        let _ = writeln!(
            out,
            "confidence = {}",
            (f64::from(r.confidence) * 100.0).round() / 100.0
        );
        if r.strict {
            out.push_str("strict = true\n");
        }
        // The default is `inherit = !is_raising`: write it only where it differs.
        if r.inherit == r.class.is_raising() {
            let _ = writeln!(out, "inherit = {}", r.inherit);
        }
        if r.spread {
            out.push_str("spread = true\n");
        }
        export_roles(&mut out, &r.roles);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_point_at_the_line() {
        let src = "[[rule]]\nname = \"x\"\ncomm = [\"a\"]\nclass = \"fastest\"\n";
        let e = parse_rules(src, "r.toml").unwrap_err().to_string();
        assert!(
            e.starts_with("r.toml:4:9: unknown class \"fastest\""),
            "{e}"
        );
        let src = "[[rule]]\nname = \"x\"\nclass = \"batch\"\n";
        let e = parse_rules(src, "r.toml").unwrap_err().to_string();
        assert!(e.starts_with("r.toml:2:"), "{e}");
        assert!(e.contains("matches nothing"), "{e}");
        let src = "[[rule]]\nname = \"x\"\ncomm = [\"a\"]\nclass = \"batch\"\nnode = 1\n";
        let e = parse_rules(src, "r.toml").unwrap_err().to_string();
        assert!(e.starts_with("r.toml:5:8: node is only allowed"), "{e}");
        let src = "[[rule]]\nname = \"x\"\ncomm = [\"a\"]\nclas = \"batch\"\n";
        let e = parse_rules(src, "r.toml").unwrap_err().to_string();
        assert!(e.starts_with("r.toml:4:1: "), "{e}");
    }

    #[test]
    fn raised_classes_stay_with_the_process_unless_the_rule_says() {
        let src = "[[rule]]\nname = \"a\"\ncomm = [\"a\"]\nclass = \"latency\"\n\
                   [[rule]]\nname = \"b\"\ncomm = [\"b\"]\nclass = \"interactive\"\ninherit = true\n\
                   [[rule]]\nname = \"c\"\ncomm = [\"c\"]\nclass = \"batch\"\n";
        let r = parse_rules(src, "t").unwrap();
        assert_eq!(
            r.iter().map(|r| r.inherit).collect::<Vec<_>>(),
            [false, true, true]
        );
        let back = parse_rules(&export_toml(&r), "export").unwrap();
        assert_eq!(
            back.iter().map(|r| r.inherit).collect::<Vec<_>>(),
            [false, true, true]
        );
        // On stock the kernel resets a child's nice, policy and slice for us.
        let attr = crate::apply::stock::attr_for(crate::config::StockClass::DEFAULT, r[0].inherit);
        assert_ne!(
            attr.sched_flags & u64::from(crate::uapi::SCHED_FLAG_RESET_ON_FORK),
            0
        );
    }

    #[test]
    fn export_round_trips() {
        let rules = default_rules().unwrap();
        let text = export_toml(&rules);
        let back = parse_rules(&text, "export").unwrap();
        assert_eq!(back.len(), rules.len());
        for (a, b) in rules.iter().zip(&back) {
            assert_eq!(
                (&a.name, &a.matcher, a.class, a.strict, a.inherit, a.spread),
                (&b.name, &b.matcher, b.class, b.strict, b.inherit, b.spread)
            );
            assert_eq!(a.roles, b.roles, "{}", a.name);
            assert!((a.confidence - b.confidence).abs() < 0.006);
        }
    }
}
