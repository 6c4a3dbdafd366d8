//! The catalog against the real xllamacpp server of `scripts/llm-server.sh`, with the
//! defaults the serving bench and the demo use: the server, which runs as "python", must be
//! decided by the catalog's rule with thread roles (no rule file of their own any more).

use crate::llm_support::RealServer;
use crate::support::{run, stderr, stdout, tuner, write};
use tuner::observe::synthetic::ScratchDir;

#[test]
fn the_catalog_decides_the_python_embedded_server_with_its_roles() {
    let Some((srv, _serial)) = RealServer::get() else {
        return;
    };
    let dir = ScratchDir::new("serving-rules").unwrap();
    let cfg = write(
        dir.path(),
        "tuner.toml",
        &format!(
            "[daemon]\nbackend = \"dry-run\"\nlock_path = \"{}\"\nstate_file = \"{}\"\n",
            dir.path().join("tuner.lock").display(),
            dir.path().join("state.json").display(),
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
