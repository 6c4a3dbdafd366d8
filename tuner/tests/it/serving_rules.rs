//! The catalog against the real xllamacpp server of `scripts/llm-server.sh`, with the
//! defaults the serving bench and the demo use: the server, which runs as "python", must be
//! decided by the catalog's rule with thread roles (no rule file of their own any more).

use crate::llm_support::RealServer;
use crate::support::{explain, live_dry_run_config};
use tuner::observe::synthetic::ScratchDir;

#[test]
fn the_catalog_decides_the_python_embedded_server_with_its_roles() {
    let Some((srv, _serial)) = RealServer::get() else {
        return;
    };
    let dir = ScratchDir::new("serving-rules").unwrap();
    let cfg = live_dry_run_config(dir.path());
    let out = explain(&cfg, srv.pid, "100");
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
