#!/usr/bin/env python3
"""Tests for tuner_layers.py on small made-up crates.

Run: python3 scripts/tuner_layers_test.py   (scripts/test-host.sh runs it)
"""
import contextlib
import io
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tuner_layers  # noqa: E402


def crate(files):
    d = Path(tempfile.mkdtemp())
    for name, text in files.items():
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_text(text)
    return d


def run(src):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = tuner_layers.main(["tuner_layers", str(src)])
    return rc, out.getvalue()


class Layers(unittest.TestCase):
    def layers_of(self, files):
        """What tuner_layers prints for a made-up crate of @files, which must have no cycle."""
        rc, out = run(crate(files))
        self.assertEqual(0, rc, out)
        return out

    def test_a_cycle_through_a_use_group_fails_and_is_named(self):
        src = crate({
            "lib.rs": "pub mod config;\npub mod classify;\n",
            "config/mod.rs": "use crate::{classify::rules::Rule, glob};\n",
            "classify/rules.rs": "use crate::config::ConfigError;\n",
        })
        rc, out = run(src)
        self.assertEqual(1, rc)
        self.assertIn("classify -> config -> classify", out)

    def test_comments_test_items_and_test_files_do_not_count(self):
        out = self.layers_of({
            "engine/mod.rs": (
                "//! `crate::app::App` wires this.\n"
                "/* crate::app */\n"
                "use crate::plan::Plan;\n"
                "#[cfg(test)]\nmod tests;\n"
                "#[cfg(test)]\nfn helper() { crate::app::App::new(); }\n"
                "#[cfg(test)]\nmod inline { use crate::app::App; }\n"
                "const S: &str = \"crate::app\";\n"),
            "engine/tests.rs": "use crate::app::App;\n",
            "app.rs": "use crate::engine::Engine;\n",
            "plan/mod.rs": "",
        })
        self.assertIn("engine     uses plan\n", out)
        self.assertIn("app        uses engine\n", out)

    def test_strings_chars_and_raw_strings_hide_nothing_and_add_nothing(self):
        out = self.layers_of({
            "a.rs": ("const J: &str = r#\"{\"x\": \"crate::b\"}\"#;\n"
                     "const Q: char = '\"';\nconst B: char = '{';\n"
                     "fn f<'x>(s: &'x str) {}\n"
                     "#[cfg(test)]\nmod t { const R: &str = r#\"}\"#; }\n"
                     "use crate::c::C;\n"),
            "b.rs": "use crate::a::J;\n",
            "c.rs": "",
        })
        self.assertIn("a          uses c\n", out)

    def test_super_paths_reexports_and_spaced_paths_count(self):
        out = self.layers_of({
            "lib.rs": "pub mod a;\npub use error::Error;\n",
            "a/x.rs": "use super::super::b::B;\n",
            "a/mod.rs": "mod x;\nuse super::c;\nfn f() -> crate::Error { crate :: d::g() }\n",
            "b.rs": "", "c.rs": "", "d.rs": "", "error.rs": "",
        })
        self.assertIn("a          uses b, c, d, error\n", out)

    def test_a_test_only_field_or_arm_hides_only_itself(self):
        out = self.layers_of({
            "a.rs": ("struct S {\n    #[cfg(test)]\n    t: crate::c::T,\n    u: u8,\n}\n"
                     "enum E { X, #[cfg(test)] Y(crate::c::T) }\n"
                     "impl S { fn g() { crate::b::g(); } }\n"),
            "b.rs": "", "c.rs": "",
        })
        self.assertIn("a          uses b\n", out)

    def test_nested_block_comments_and_included_files(self):
        out = self.layers_of({
            "a.rs": "/* /* */ crate::b */\ninclude!(\"a_gen.rs\");\n",
            "a_gen.rs": "use crate::c::C;\n",
            "b.rs": "", "c.rs": "",
        })
        self.assertIn("a          uses c\n", out)
        self.assertNotIn("a_gen", out)

    def test_the_tuner_has_no_cycle(self):
        rc, out = run(Path(__file__).resolve().parent.parent / "tuner/src")
        self.assertEqual(0, rc, out)


if __name__ == "__main__":
    unittest.main()
