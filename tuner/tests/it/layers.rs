//! The tuner's modules import one way: no cycle between the top-level modules of `src/`, and
//! the low layers (`config`, `hint`, `observe`, `metrics`, `apply`) import nothing above them.
//!
//! An edge `a -> b` is any `crate::b` path in a file under `src/a` (or `src/a.rs`), outside
//! comments and outside the `#[cfg(test)] mod tests` block at the end of a file (and the
//! `tests.rs` files such blocks live in): tests may reach across layers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The text that counts: up to the unit-test block, without `//` comments.
fn code(text: &str) -> String {
    let end = text.find("#[cfg(test)]\nmod tests").unwrap_or(text.len());
    text[..end]
        .lines()
        .map(|l| l.find("//").map_or(l, |i| &l[..i]))
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The modules `code` names through `crate::` paths, grouped ones (`crate::{a, b::c}`) too.
fn targets(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for part in group.split(',') {
                let name = ident(part.trim());
                if !name.is_empty() {
                    out.insert(name.to_owned());
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                out.insert(name.to_owned());
            }
        }
    }
    out
}

fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut g = Graph::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        if rel.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let first = rel.components().next().unwrap().as_os_str();
        let module = first.to_str().unwrap().trim_end_matches(".rs").to_owned();
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for t in targets(&code(&text)) {
            if t != module {
                g.entry(module.clone())
                    .or_default()
                    .entry(t)
                    .or_default()
                    .insert(rel.display().to_string());
            }
        }
    }
    g
}

/// A cycle through `start`, if there is one: the path back to it.
fn cycle_from(g: &Graph, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_owned(), vec![start.to_owned()])];
    let mut seen = BTreeSet::new();
    while let Some((node, path)) = stack.pop() {
        for next in g.get(&node).into_iter().flat_map(|m| m.keys()) {
            if next == start {
                let mut p = path.clone();
                p.push(next.clone());
                return Some(p);
            }
            if seen.insert(next.clone()) {
                let mut p = path.clone();
                p.push(next.clone());
                stack.push((next.clone(), p));
            }
        }
    }
    None
}

#[test]
fn no_import_cycle_between_top_level_modules() {
    let g = graph();
    assert!(
        g.contains_key("engine"),
        "the scan found the sources: {g:?}"
    );
    for module in g.keys() {
        if let Some(cycle) = cycle_from(&g, module) {
            let files: Vec<String> = cycle
                .windows(2)
                .map(|w| format!("{} -> {}: {:?}", w[0], w[1], g[&w[0]][&w[1]]))
                .collect();
            panic!("import cycle {}\n{}", cycle.join(" -> "), files.join("\n"));
        }
    }
}

#[test]
fn low_layers_import_nothing_above_them() {
    let g = graph();
    let forbidden: [(&str, &[&str]); 6] = [
        (
            "config",
            &["classify", "llm", "observe", "apply", "engine", "app"],
        ),
        (
            "hint",
            &["config", "classify", "observe", "apply", "engine"],
        ),
        ("observe", &["config", "classify", "apply", "engine", "app"]),
        ("metrics", &["classify", "engine", "apply", "app"]),
        ("apply", &["classify", "engine", "daemon", "app"]),
        ("engine", &["daemon", "app", "commands", "cli"]),
    ];
    for (low, above) in forbidden {
        for high in above {
            let files = g.get(low).and_then(|m| m.get(*high));
            assert!(files.is_none(), "{low} imports {high} in {files:?}");
        }
    }
}
