//! Issue 20, reproductions 2 to 5: who may be the model, what it may send back, what its
//! answers may grant. Documentation/tuner-trust-model.md is the model held to.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::{Duration, Instant};

use tuner::classify::external::{ExternalClassifier, ProcFacts};
use tuner::hint::HintClass;

use crate::llm_support::{classifier, config, FaultServer, Procs};
use crate::support::{run, stderr, stdout, tuner};
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

/// Repro 3: a user's process gets the model's answer (here: the server is told to say
/// background); another user's process of the same binary, pattern and cgroup must be asked
/// about on its own, not served the first user's answer from the cache.
#[tokio::test]
async fn one_users_answer_is_not_anothers() {
    let srv = FaultServer::start("ok", &["--class", "background"]);
    let procs = Procs::new();
    let c = classifier(&config(
        &srv.url(),
        &procs.dir.path().join("c.json"),
        |_| {},
    ));
    let planted = procs.proc(BASE + 200, 65534, "python3", "python3", &["app.py"], "/");
    let v = c.classify(vec![planted]).await.unwrap();
    assert_eq!(v[0].class, HintClass::Background);
    // the server now says batch, and counts from zero
    let r = reqwest::Client::new()
        .post(format!("{}/_mode", srv.url()))
        .json(&serde_json::json!({ "mode": "ok", "class": "batch" }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let victim = procs.proc(BASE + 201, 0, "python3", "python3", &["app.py"], "/");
    let v = c.classify(vec![victim]).await.unwrap();
    let asked = srv.chat_count().await;
    println!("root's process: {:?}, after {asked} requests", v[0].class);
    assert_eq!(
        asked, 1,
        "root's process was answered from nobody's cache entry"
    );
    assert_eq!(v[0].class, HintClass::Batch);
}

/// The cache file as the tuner writes it, with one entry for `f` (which names a file).
fn cache_json(f: &ProcFacts, class: &str) -> String {
    let exe = f.exe.as_ref().unwrap();
    let md = std::fs::metadata(exe).unwrap();
    let pattern = tuner::llm::cache::cmdline_pattern(&f.comm, &f.cmdline);
    serde_json::json!({
        "version": 1,
        "entries": [{
            "exe": exe.display().to_string(),
            "dev": md.dev(), "ino": md.ino(), "size": md.size(),
            "mtime_ns": md.mtime() * 1_000_000_000 + md.mtime_nsec(),
            "pattern": pattern, "cgroup": f.cgroup, "uid": f.uid,
            "class": class, "model": "m", "comm": f.comm, "answered_at_unix": 1,
        }],
    })
    .to_string()
}

/// Repro 3: a cache file another user could have written is not believed: its planted
/// latency answer is not used, the model is asked.
#[tokio::test]
async fn a_cache_file_others_can_write_is_not_believed() {
    let srv = FaultServer::start("ok", &[]);
    let procs = Procs::new();
    let f = procs.proc(BASE + 300, 1000, "game", "game", &[], "/");
    let path = procs.dir.path().join("c.json");
    std::fs::write(&path, cache_json(&f, "latency")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let c = classifier(&config(&srv.url(), &path, |_| {}));
    let v = c.classify(vec![f]).await.unwrap();
    let asked = srv.chat_count().await;
    println!("{:?} after {asked} requests", v[0].class);
    assert_eq!(asked, 1, "the planted answer was used");
    assert_eq!(v[0].class, HintClass::Batch);
}

/// Repro 7: a FIFO as cache_path hung the start-up (the open blocked for a writer).
#[test]
fn a_fifo_as_cache_path_does_not_hang_the_start() {
    let procs = Procs::new();
    let fifo = procs.dir.path().join("fifo");
    let st = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(st.success());
    let cfg = config("http://127.0.0.1:9", &fifo, |_| {});
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let c = classifier(&cfg);
        let _ = tx.send(c.cache_len());
    });
    let got = rx.recv_timeout(Duration::from_secs(5));
    assert_eq!(got, Ok(0), "LlmClassifier::new did not return within 5 s");
}

/// Repro 4: `rules export --llm-cache` wrote the model's raw class for anyone. Now each rule
/// names the uid whose process was asked about and carries the class that uid could have
/// been granted: nobody's latency answer for its own binary comes out as throughput.
#[test]
fn exported_rules_name_the_uid_and_keep_the_ceilings() {
    let procs = Procs::new();
    let f = procs.proc(BASE + 400, 65534, "miner", "miner", &[], "/");
    let cache = procs.dir.path().join("c.json");
    std::fs::write(&cache, cache_json(&f, "latency")).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o600)).unwrap();
    let cfg = procs.dir.path().join("tuner.toml");
    std::fs::write(
        &cfg,
        format!("[llm]\ncache_path = {:?}\n", cache.display().to_string()),
    )
    .unwrap();
    let o = run(tuner()
        .args(["rules", "export", "--llm-cache", "-c"])
        .arg(&cfg));
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    println!("{text}");
    let rule = text.split("[[rule]]").nth(1).expect("one rule");
    assert!(rule.contains("uids = [65534]"), "no uid condition: {rule}");
    assert!(rule.contains("class = \"throughput\""), "{rule}");
    // and the file is one `config check` takes
    let rules = procs.dir.path().join("exported.toml");
    std::fs::write(&rules, &text).unwrap();
    let check = procs.dir.path().join("check.toml");
    std::fs::write(
        &check,
        format!("[rules]\npaths = [{:?}]\n", rules.display().to_string()),
    )
    .unwrap();
    let o = run(tuner().args(["config", "check"]).arg(&check));
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Repro 7: one HTTP 400 moved the client down the response formats for good (the pinned
/// schema, which holds the model to the asked pids, was never tried again). The fallback
/// now lasts `retry_down_ms`; then the pinned schema is asked for again.
#[tokio::test]
async fn one_rejected_format_is_not_forever() {
    let srv = FaultServer::start("reject-schema", &["--fail-count", "1"]);
    let procs = Procs::new();
    let c = classifier(&config(&srv.url(), &procs.dir.path().join("c.json"), |t| {
        t.llm.retry_down_ms = 300;
    }));
    let pinned = |v: &serde_json::Value| {
        !v["body"]["response_format"]["json_schema"]["schema"]["properties"]["verdicts"]
            ["prefixItems"]
            .is_null()
    };
    c.classify(procs.ordinary(BASE + 500, 1)).await.unwrap();
    assert!(!pinned(&srv.last().await), "the fallback after the 400");
    tokio::time::sleep(Duration::from_millis(400)).await;
    c.classify(vec![procs.proc(
        BASE + 510,
        1000,
        "later",
        "later",
        &[],
        "/",
    )])
    .await
    .unwrap();
    let last = srv.last().await;
    println!("400 ms after the 400: {}", last["body"]["response_format"]);
    assert!(pinned(&last), "still on the fallback");
}
