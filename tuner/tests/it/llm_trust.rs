//! Issue 20, reproductions 2 to 5: who may be the model, what it may send back, what its
//! answers may grant. Documentation/tuner-trust-model.md is the model held to.

use std::time::{Duration, Instant};

use tuner::classify::external::ExternalClassifier;

use crate::llm_support::{classifier, config, FaultServer, Procs};
use crate::trust_live::live_skip_reason;

const BASE: i32 = 6_000_000;

/// Repro 2: the server is down and a user took its port. The tuner must not ask it: not
/// with the facts of other users' processes, not with the API key, not even for /health.
#[tokio::test]
async fn a_squatter_on_the_port_hears_nothing() {
    if let Some(why) = live_skip_reason() {
        println!("skipped: {why}");
        return;
    }
    let squatter = FaultServer::start_as_nobody("ok");
    let procs = Procs::new();
    let cfg = config(&squatter.url(), &procs.dir.path().join("c.json"), |_| {});
    let c = classifier(&cfg);
    // root's processes: what the squatter would class, and learn about
    let facts = (0..3)
        .map(|i| procs.proc(BASE + i, 0, "postgres", "postgres", &["-D", "/srv"], "/"))
        .collect();
    let got = c.classify(facts).await;
    // `total` counts this look at the counters too
    let heard = squatter.count("total").await - 1;
    println!("classify: {got:?}; the squatter heard {heard} requests");
    assert_eq!(heard, 0, "the squatter was asked");
    let e = got.expect_err("no answer can come from a squatter");
    assert!(e.to_string().contains("not trusted"), "{e}");
}

/// Repro 2: a 256 MiB body is dropped once it passes the bound, not read into memory.
#[tokio::test]
async fn a_huge_body_is_cut_off() {
    let body_bytes: u64 = 256 << 20;
    let srv = FaultServer::start("huge", &["--body-bytes", &body_bytes.to_string()]);
    let procs = Procs::new();
    let cfg = config(&srv.url(), &procs.dir.path().join("c.json"), |t| {
        t.timeout_ms = 60_000;
    });
    let c = classifier(&cfg);
    let t = Instant::now();
    let got = c.classify(procs.ordinary(BASE + 100, 2)).await;
    let took = t.elapsed();
    // The server learns the client is gone only when its socket buffers fill.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = srv.count("sent").await;
    println!("classify: {got:?} after {took:?}; the server wrote {sent} bytes");
    assert!(got.is_err(), "a 256 MiB answer is no answer");
    assert!(
        sent < 32 << 20,
        "the tuner read {sent} of {body_bytes} bytes"
    );
}
