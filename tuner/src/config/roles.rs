//! Thread roles of a rule: `[[rule.role]]` entries that give some threads of a matched
//! process a class of their own, from how each thread behaves (matching them against a
//! thread is `classify::roles`).
//!
//! A server's threads do different jobs under one name (every thread of the xllamacpp server
//! is called `python`): a compute pool, a listener blocked in `accept`, HTTP workers that wake
//! once per streamed token. A role names what such a thread does, measured over the scan
//! interval; roles are tried in order, the first whose every given matcher holds wins, and a
//! thread that matches none takes the process's class.
//!
//! ```toml
//! [[rule]]
//! name = "llama.cpp-server"
//! comm = ["llama-server"]
//! class = "throughput"
//!
//! [[rule.role]]
//! name = "listener"
//! wchan = ["inet_csk_accept"]   # blocked in accept(2)
//! class = "interactive"
//!
//! [[rule.role]]
//! name = "compute"
//! min_cpu_pct = 20.0
//! class = "throughput"
//! ```

use std::fmt::Write as _;

use serde::Deserialize;
use toml::Spanned;

use super::ConfigError;
use crate::glob::Glob;
use crate::hint::HintClass;

/// Most roles one rule may carry: each is tried on every thread of every matched process.
pub const MAX_ROLES: usize = 16;

/// One role: a class for the threads whose behaviour matches.
#[derive(Debug, Clone, PartialEq)]
pub struct Role {
    pub name: String,
    pub class: HintClass,
    /// Globs on the kernel function the thread sleeps in (`/proc/PID/task/TID/wchan`).
    pub wchan: Vec<Glob>,
    /// CPU use over the scan interval, 100 = one full CPU.
    pub min_cpu_pct: Option<f64>,
    pub max_cpu_pct: Option<f64>,
    /// Voluntary context switches (the thread blocked) per second.
    pub min_voluntary_per_s: Option<f64>,
    pub max_voluntary_per_s: Option<f64>,
    /// The share of its context switches that were preemptions, 0 to 100: a thread that
    /// spins or computes is preempted rather than blocking.
    pub min_involuntary_pct: Option<f64>,
}

impl Role {
    /// Whether any matcher needs the thread's rates (a thread seen for the first time has
    /// none: it matches only by its wait channel, and only a role without minimums).
    pub fn needs_rates(&self) -> bool {
        self.min_cpu_pct.is_some()
            || self.max_cpu_pct.is_some()
            || self.min_voluntary_per_s.is_some()
            || self.max_voluntary_per_s.is_some()
            || self.min_involuntary_pct.is_some()
    }

    /// Whether any matcher sets a floor (which a thread not measured yet cannot reach).
    pub fn has_minimums(&self) -> bool {
        self.min_cpu_pct.is_some()
            || self.min_voluntary_per_s.is_some()
            || self.min_involuntary_pct.is_some()
    }

    fn is_empty(&self) -> bool {
        self.wchan.is_empty() && !self.needs_rates()
    }
}

/// A role as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRole {
    pub name: Spanned<String>,
    pub class: Spanned<String>,
    #[serde(default)]
    pub wchan: Vec<Spanned<String>>,
    pub min_cpu_pct: Option<Spanned<f64>>,
    pub max_cpu_pct: Option<Spanned<f64>>,
    pub min_voluntary_per_s: Option<Spanned<f64>>,
    pub max_voluntary_per_s: Option<Spanned<f64>>,
    pub min_involuntary_pct: Option<Spanned<f64>>,
}

/// Checks a rule's roles, with errors at the offending key.
pub fn validate_roles(
    raw: &[RawRole],
    rule: &str,
    src: &str,
    origin: &str,
) -> Result<Vec<Role>, ConfigError> {
    let err = |span: std::ops::Range<usize>, msg: String| ConfigError::at(origin, src, span, msg);
    let mut roles: Vec<Role> = Vec::with_capacity(raw.len());
    if let Some(r) = raw.get(MAX_ROLES) {
        return Err(err(
            r.name.span(),
            format!("rule {rule:?} has more than {MAX_ROLES} roles"),
        ));
    }
    for r in raw {
        let name = r.name.get_ref().trim().to_owned();
        if name.is_empty() {
            return Err(err(r.name.span(), "role name must not be empty".into()));
        }
        if roles.iter().any(|x| x.name == name) {
            return Err(err(
                r.name.span(),
                format!("rule {rule:?} has two roles named {name:?}"),
            ));
        }
        let class: HintClass = r
            .class
            .get_ref()
            .parse()
            .map_err(|e| err(r.class.span(), e))?;
        // Every thread of a hinted process holds a hint, the process's or its role's: a
        // role that says "no hint" would be taken as the process's class without a word.
        if class == HintClass::None {
            return Err(err(
                r.class.span(),
                format!(
                    "role {name:?} cannot have class \"none\": threads that match no role already take the process's class"
                ),
            ));
        }
        let mut wchan = Vec::with_capacity(r.wchan.len());
        for w in &r.wchan {
            if w.get_ref().is_empty() {
                return Err(err(w.span(), "empty pattern".into()));
            }
            wchan.push(Glob::new(w.get_ref()));
        }
        let num = |v: &Option<Spanned<f64>>, key: &str, max: f64| -> Result<_, ConfigError> {
            match v {
                None => Ok(None),
                Some(s) if s.get_ref().is_finite() && (0.0..=max).contains(s.get_ref()) => {
                    Ok(Some(*s.get_ref()))
                }
                Some(s) => Err(err(
                    s.span(),
                    format!("{key} must be within 0..={max}, got {}", s.get_ref()),
                )),
            }
        };
        // A thread uses at most one CPU; switches are bounded by nothing but the tick rate.
        let role = Role {
            name,
            class,
            wchan,
            min_cpu_pct: num(&r.min_cpu_pct, "min_cpu_pct", 100.0)?,
            max_cpu_pct: num(&r.max_cpu_pct, "max_cpu_pct", 100.0)?,
            min_voluntary_per_s: num(&r.min_voluntary_per_s, "min_voluntary_per_s", 1e9)?,
            max_voluntary_per_s: num(&r.max_voluntary_per_s, "max_voluntary_per_s", 1e9)?,
            min_involuntary_pct: num(&r.min_involuntary_pct, "min_involuntary_pct", 100.0)?,
        };
        let crossed = |lo: Option<f64>, hi: &Option<Spanned<f64>>, what: &str| match (lo, hi) {
            (Some(lo), Some(hi)) if lo > *hi.get_ref() => Err(err(
                hi.span(),
                format!("max_{what} {} is below min_{what} {lo}", hi.get_ref()),
            )),
            _ => Ok(()),
        };
        crossed(role.min_cpu_pct, &r.max_cpu_pct, "cpu_pct")?;
        crossed(
            role.min_voluntary_per_s,
            &r.max_voluntary_per_s,
            "voluntary_per_s",
        )?;
        if role.is_empty() {
            return Err(err(
                r.name.span(),
                format!(
                    "role {:?} matches every thread: give wchan, min_cpu_pct, max_cpu_pct, \
                     min_voluntary_per_s, max_voluntary_per_s or min_involuntary_pct",
                    role.name
                ),
            ));
        }
        roles.push(role);
    }
    Ok(roles)
}

/// Writes `roles` back as `[[rule.role]]` tables.
pub fn export_roles(out: &mut String, roles: &[Role]) {
    for r in roles {
        out.push_str("[[rule.role]]\n");
        let _ = writeln!(out, "name = {}", toml::Value::String(r.name.clone()));
        if !r.wchan.is_empty() {
            let quoted: Vec<String> = r
                .wchan
                .iter()
                .map(|g| toml::Value::String(g.as_str().to_owned()).to_string())
                .collect();
            let _ = writeln!(out, "wchan = [{}]", quoted.join(", "));
        }
        for (key, v) in [
            ("min_cpu_pct", r.min_cpu_pct),
            ("max_cpu_pct", r.max_cpu_pct),
            ("min_voluntary_per_s", r.min_voluntary_per_s),
            ("max_voluntary_per_s", r.max_voluntary_per_s),
            ("min_involuntary_pct", r.min_involuntary_pct),
        ] {
            if let Some(v) = v {
                // Debug keeps a decimal point, so the value reads back as a float.
                let _ = writeln!(out, "{key} = {v:?}");
            }
        }
        let _ = writeln!(out, "class = \"{}\"", r.class);
    }
}

#[cfg(test)]
mod tests {
    use crate::config::rules::{export_toml, parse_rules};
    use crate::hint::HintClass;

    const HEAD: &str = "[[rule]]\nname = \"srv\"\ncomm = [\"srv\"]\nclass = \"throughput\"\n";

    fn parse_err(roles: &str) -> String {
        parse_rules(&format!("{HEAD}{roles}"), "r.toml")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn roles_parse_in_order_with_their_matchers() {
        let src = format!(
            "{HEAD}[[rule.role]]\nname = \"listener\"\nwchan = [\"inet_csk_accept\"]\nclass = \"interactive\"\n\
             [[rule.role]]\nname = \"compute\"\nmin_cpu_pct = 20.0\nmin_involuntary_pct = 50\nclass = \"throughput\"\n\
             [[rule.role]]\nname = \"http\"\nmax_cpu_pct = 5\nmin_voluntary_per_s = 1.0\nclass = \"interactive\"\n"
        );
        let rules = parse_rules(&src, "r.toml").unwrap();
        let roles = &rules[0].roles;
        assert_eq!(
            roles
                .iter()
                .map(|r| (r.name.as_str(), r.class))
                .collect::<Vec<_>>(),
            [
                ("listener", HintClass::Interactive),
                ("compute", HintClass::Throughput),
                ("http", HintClass::Interactive)
            ]
        );
        assert_eq!(roles[0].wchan[0].as_str(), "inet_csk_accept");
        assert!(!roles[0].needs_rates());
        assert_eq!(
            (roles[1].min_cpu_pct, roles[1].min_involuntary_pct),
            (Some(20.0), Some(50.0))
        );
        assert_eq!(
            (roles[2].max_cpu_pct, roles[2].min_voluntary_per_s),
            (Some(5.0), Some(1.0))
        );
        // What `tuner rules export` writes reads back the same.
        let back = parse_rules(&export_toml(&rules), "export").unwrap();
        assert_eq!(back[0].roles, rules[0].roles);
    }

    #[test]
    fn bad_roles_are_refused_at_their_line() {
        // Line 5 is the first `[[rule.role]]`, its keys follow.
        let e = parse_err("[[rule.role]]\nname = \"a\"\nmin_cpu = 20.0\nclass = \"batch\"\n");
        assert!(e.starts_with("r.toml:7:1: "), "{e}");
        assert!(e.contains("min_cpu"), "{e}");

        let e = parse_err("[[rule.role]]\nname = \"a\"\nmin_cpu_pct = -1.0\nclass = \"batch\"\n");
        assert!(
            e.starts_with("r.toml:7:15: min_cpu_pct must be within 0..=100, got -1"),
            "{e}"
        );

        let e = parse_err(
            "[[rule.role]]\nname = \"a\"\nmin_voluntary_per_s = -0.5\nclass = \"batch\"\n",
        );
        assert!(
            e.starts_with("r.toml:7:23: min_voluntary_per_s must be"),
            "{e}"
        );

        let e = parse_err("[[rule.role]]\nname = \"a\"\nmax_cpu_pct = 5.0\nclass = \"speedy\"\n");
        assert!(e.starts_with("r.toml:8:9: unknown class \"speedy\""), "{e}");

        let e = parse_err(
            "[[rule.role]]\nname = \"a\"\nmax_cpu_pct = 5.0\nclass = \"batch\"\n\
             [[rule.role]]\nname = \"a\"\nmin_cpu_pct = 50.0\nclass = \"batch\"\n",
        );
        assert!(
            e.starts_with("r.toml:10:8: rule \"srv\" has two roles named \"a\""),
            "{e}"
        );

        let e = parse_err("[[rule.role]]\nname = \"a\"\nclass = \"batch\"\n");
        assert!(
            e.starts_with("r.toml:6:8: role \"a\" matches every thread"),
            "{e}"
        );

        let e = parse_err(
            "[[rule.role]]\nname = \"a\"\nmin_cpu_pct = 50.0\nmax_cpu_pct = 10.0\nclass = \"batch\"\n",
        );
        assert!(
            e.starts_with("r.toml:8:15: max_cpu_pct 10 is below min_cpu_pct 50"),
            "{e}"
        );

        let e = parse_err("[[rule.role]]\nname = \"a\"\nwchan = [\"x\"]\nclass = \"none\"\n");
        assert!(
            e.starts_with("r.toml:8:9: role \"a\" cannot have class \"none\""),
            "{e}"
        );
        assert_eq!(e.lines().count(), 1, "{e}");

        let e = parse_err("[[rule.role]]\nname = \" \"\nwchan = [\"x\"]\nclass = \"batch\"\n");
        assert!(
            e.starts_with("r.toml:6:8: role name must not be empty"),
            "{e}"
        );
    }
}
