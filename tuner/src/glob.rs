//! Shell-style globs (`*`, `?`) for rule matchers; no character classes, no escapes.

use std::fmt;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: String,
    has_wildcards: bool,
}

impl Glob {
    pub fn new(pattern: &str) -> Self {
        Self {
            pattern: pattern.to_owned(),
            has_wildcards: pattern.contains(['*', '?']),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether the pattern contains a `/` (exe patterns without one match the file name).
    fn has_slash(&self) -> bool {
        self.pattern.contains('/')
    }

    pub fn matches(&self, text: &str) -> bool {
        if !self.has_wildcards {
            return self.pattern == text;
        }
        wildcard_match(self.pattern.as_bytes(), text.as_bytes())
    }
}

/// The first of `globs` that matches the executable `exe`: a pattern with a `/` matches the
/// whole path, one without matches the file name.
pub fn find_exe<'a>(globs: &'a [Glob], exe: &Path) -> Option<&'a Glob> {
    let full = exe.to_string_lossy();
    let name = exe
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    globs.iter().find(|g| {
        if g.has_slash() {
            g.matches(&full)
        } else {
            g.matches(&name)
        }
    })
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pattern)
    }
}

/// Linear-time matching with single-star backtracking. Works on bytes: `?` matches one byte,
/// which is one character for the ASCII names rules deal with.
fn wildcard_match(pat: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pat.len() && (pat[p] == b'?' || pat[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pat.len() && pat[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_patterns_match_exactly() {
        let g = Glob::new("rustc");
        assert!(g.matches("rustc"));
        assert!(!g.matches("rustc-wrapper"));
        assert!(!g.matches("rust"));
    }

    #[test]
    fn stars_and_question_marks() {
        assert!(Glob::new("kworker/*").matches("kworker/0:1H"));
        assert!(Glob::new("*vllm*").matches("python3 -m vllm.entrypoints.openai"));
        assert!(!Glob::new("*vllm*").matches("python3 -m http.server"));
        assert!(Glob::new("cc1?").matches("cc1p"));
        assert!(!Glob::new("cc1?").matches("cc1"));
        assert!(Glob::new("a*b*c").matches("axxbyyc"));
        assert!(!Glob::new("a*b*c").matches("axxbyy"));
        assert!(Glob::new("*").matches(""));
        assert!(Glob::new("**x").matches("aax"));
    }

    #[test]
    fn exe_patterns_match_the_path_with_a_slash_else_the_file_name() {
        let globs = [Glob::new("/usr/bin/*"), Glob::new("llama-*")];
        let found = |exe: &str| find_exe(&globs, Path::new(exe)).map(Glob::as_str);
        assert_eq!(found("/usr/bin/rsync"), Some("/usr/bin/*"));
        assert_eq!(found("/opt/llama/bin/llama-server"), Some("llama-*"));
        assert_eq!(found("/opt/bin/rsync"), None);
        assert_eq!(found("/usr/local/bin/llama"), None);
    }
}
