//! `configs/llm-serving.rules.toml`, as the serving bench passes it, against the real
//! xllamacpp server of `scripts/llm-server.sh`: the server must be decided by the catalog's
//! rule with thread roles, which a rule in that file would shadow.

use crate::llm_support::{repo_root, RealServer};
use crate::support::{run, stderr, stdout, tuner, write};
use tuner::observe::synthetic::ScratchDir;

#[test]
fn the_serving_rule_file_leaves_the_python_embedded_server_to_the_catalog() {
    let Some((srv, _serial)) = RealServer::get() else {
        return;
    };
    let dir = ScratchDir::new("serving-rules").unwrap();
    let rules = repo_root().join("configs/llm-serving.rules.toml");
    let cfg = write(
        dir.path(),
        "tuner.toml",
        &format!(
            "[daemon]\nbackend = \"dry-run\"\nlock_path = \"{}\"\nstate_file = \"{}\"\n\n[rules]\npaths = [\"{}\"]\n",
            dir.path().join("tuner.lock").display(),
            dir.path().join("state.json").display(),
            rules.display()
        ),
    );
    let o = run(tuner().arg("-c").arg(&cfg).args([
        "explain",
        &srv.pid.to_string(),
        "--sample-ms",
        "100",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains(
            "\"llama.cpp-server-python\" matched (cmdline=*xllamacpp*) at <embedded rules>"
        ),
        "{out}"
    );
    assert!(
        out.contains("result: throughput by rule:llama.cpp-server-python"),
        "{out}"
    );
    assert!(out.contains("\n  2b roles: "), "{out}");
}
