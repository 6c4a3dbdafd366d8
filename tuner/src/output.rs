//! Tables and JSON for the commands, and the one way they reach stdout.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::Write as _;

use crate::engine::{Action, Row};
use crate::error::Error;

/// Writes to stdout and returns the failure instead of panicking as `print!` does: a
/// reader that goes away early (`tuner hint get 1 | grep -q ...`) is an ordinary event.
pub fn emit(args: std::fmt::Arguments<'_>) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("cannot write to stdout", e))
}

/// `print!` through [`emit`]; evaluates to its `Result`.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::emit(format_args!($($arg)*))
    };
}

/// `println!` through [`emit`]; evaluates to its `Result`.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::emit(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use {out, outln};

/// A name from another process (comm, exe, cmdline, cgroup, a classifier's reason) made safe
/// to print on a terminal: every control character (C0, DEL, C1) and every bidi override
/// becomes a visible `\xNN` / `\u{NNNN}` escape. Anyone can name a process
/// `"\x1b[31mRED\n9 sshd"`; unescaped, that colours the terminal and fakes a table row.
/// Human-readable output passes every such string through here; JSON is escaped by serde.
pub fn term(s: &str) -> Cow<'_, str> {
    fn unsafe_char(c: char) -> bool {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    }
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            c if !unsafe_char(c) => out.push(c),
            c if (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{{{:04x}}}", c as u32);
            }
        }
    }
    Cow::Owned(out)
}

/// Left-aligned columns separated by two spaces; the last column is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let n = cells.len();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == n {
                out.push_str(cell);
            } else {
                let _ = write!(out, "{cell:<w$}  ");
            }
        }
        out.push('\n');
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}

/// Which rows `tuner once` lists: hinted, open and failed ones; with `all`, every row.
pub fn listed(r: &Row, all: bool) -> bool {
    all || (!r.excluded && (r.hint.is_some() || r.class.is_none() || r.action == Action::Failed))
}

pub fn once_table(rows: &[&Row]) -> String {
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let class = match (r.class, r.excluded) {
                (_, true) => "-".to_owned(),
                (Some(c), _) => c.to_string(),
                (None, _) => "open".to_owned(),
            };
            let class = if r.skipped_threads > 0 && !r.excluded {
                format!(
                    "{class} ({}/{} thr)",
                    r.threads as usize - r.skipped_threads,
                    r.threads
                )
            } else {
                class
            };
            // Thread roles: which role how many threads have, beside the process's class.
            let roles = r.role_summary();
            let class = if roles.is_empty() {
                class
            } else {
                format!("{class} [{roles}]")
            };
            let source = if r.excluded {
                "excluded".to_owned()
            } else {
                r.source.map_or_else(|| "-".to_owned(), |s| s.to_string())
            };
            let action = match &r.error {
                Some(e) => format!("{}: {e}", r.action),
                None => r.action.to_string(),
            };
            vec![
                r.pid.to_string(),
                term(&r.comm).into_owned(),
                class,
                r.node.map_or_else(|| "-".to_owned(), |n| n.to_string()),
                source,
                format!("{:.2}", r.confidence),
                format!("{}:{}", r.step.as_str(), term(&r.rule)),
                term(&action).into_owned(),
            ]
        })
        .collect();
    table(
        &[
            "PID",
            "COMM",
            "CLASS",
            "NODE",
            "SOURCE",
            "CONF",
            "DECIDED BY",
            "ACTION",
        ],
        &body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align() {
        let t = table(
            &["A", "LONG"],
            &[
                vec!["wide-cell".into(), "x".into()],
                vec!["y".into(), "z".into()],
            ],
        );
        assert_eq!(t, "A          LONG\nwide-cell  x\ny          z\n");
    }

    #[test]
    fn terminal_escapes_leave_one_visible_line() {
        assert_eq!(term("\x1b[31mRED\n9 sshd"), "\\x1b[31mRED\\x0a9 sshd");
        assert_eq!(term("a\u{9b}b\u{202e}c\x7f"), "a\\u{009b}b\\u{202e}c\\x7f");
        assert!(matches!(term("kworker/0:1 ünïcode"), Cow::Borrowed(_)));
    }
}
