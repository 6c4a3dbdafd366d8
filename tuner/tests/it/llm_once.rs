//! Acceptance of the LLM classifier through `tuner once`: with the real server the processes
//! the rules leave open are classified by the model and a second run makes no request; with
//! the server stopped the command still completes, with a clear warning.
//!
//! Only two probe processes (copies of `sleep` under new names, in a fresh directory) may reach
//! the model: every other executable on the machine is excluded by path, and heuristics are
//! off so that the probes stay open after the rules.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Mutex, MutexGuard};

use serde_json::Value;

use crate::llm_support::RealServer;
use crate::support::{default_nice, explain, sleep_binary, Reaped};

/// One test's probes at a time: the exclusions cover the paths that exist when a config is
/// written, so probes another test starts later in a new directory would reach the model
/// too (asked about, cached, exported).
static PROBES: Mutex<()> = Mutex::new(());

struct Probes {
    dir: tempfile::TempDir,
    children: Vec<Reaped>,
    _alone: MutexGuard<'static, ()>,
}

impl Probes {
    fn start() -> Probes {
        let alone = PROBES.lock().unwrap_or_else(|p| p.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let sleep = sleep_binary();
        let mut children = Vec::new();
        for name in ["llm-probe-a", "llm-probe-b"] {
            let exe = dir.path().join(name);
            std::fs::copy(sleep, &exe).unwrap();
            children.push(Reaped(spawn_copy(&exe)));
        }
        Probes {
            dir,
            children,
            _alone: alone,
        }
    }

    fn pids(&self) -> Vec<i64> {
        self.children.iter().map(|c| i64::from(c.pid())).collect()
    }
}

/// Starts `exe 120`. A fork by another test's thread while the copy was open for writing
/// holds a writable descriptor until that child execs: exec fails with ETXTBSY meanwhile.
fn spawn_copy(exe: &Path) -> Child {
    let mut tries = 0;
    loop {
        match default_nice(Command::new(exe).arg("120")).spawn() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 50 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other.unwrap(),
        }
    }
}

/// `exclude.exe` globs covering every path outside `keep`: each sibling of each ancestor of
/// `keep`, and the memfd pseudo-paths.
fn exclude_all_but(keep: &Path) -> Vec<String> {
    let mut globs = vec!["/memfd:*".to_string()];
    let mut parent = PathBuf::from("/");
    for comp in keep.strip_prefix("/").unwrap().components() {
        for e in std::fs::read_dir(&parent).unwrap().flatten() {
            if e.file_name() != comp.as_os_str() {
                let p = e.path().display().to_string();
                globs.push(format!("{p}/*"));
                globs.push(p);
            }
        }
        parent.push(comp);
    }
    globs
}

fn write_config(probes: &Probes, endpoint: &str, key_file: Option<&Path>, cache: &Path) -> PathBuf {
    let quoted: Vec<String> = exclude_all_but(probes.dir.path())
        .iter()
        .map(|g| format!("{g:?}"))
        .collect();
    let key = key_file.map_or(String::new(), |k| {
        format!("api_key_file = {:?}\n", k.display().to_string())
    });
    let text = format!(
        "[heuristics]\nenabled = false\n\n[exclude]\nexe = [{}]\n\n\
         [external]\nenabled = true\nkind = \"llm\"\nendpoint = {endpoint:?}\ntimeout_ms = 60000\nmax_batch = 8\n\n\
         [llm]\nmodel = \"smollm2\"\n{key}cache_path = {:?}\n",
        quoted.join(", "),
        cache.display().to_string()
    );
    let path = probes.dir.path().join("tuner.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `tuner once --dry-run --json --all`; returns the probes' rows and stderr.
fn once(cfg: &Path, probes: &Probes) -> (Vec<Value>, String) {
    let t = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_tuner"))
        .args([
            "once",
            "--dry-run",
            "--json",
            "--all",
            "--sample-ms",
            "300",
            "-c",
        ])
        .arg(cfg)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("tuner once: {:?}", t.elapsed());
    assert!(out.status.success(), "tuner once failed: {stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let pids = probes.pids();
    let rows = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| pids.contains(&r["pid"].as_i64().unwrap()))
        .cloned()
        .collect();
    (rows, stderr)
}

#[test]
fn tuner_once_asks_the_model_once_then_uses_the_cache() {
    let Some((srv, _serial)) = RealServer::get() else {
        return;
    };
    let probes = Probes::start();
    let cache = probes.dir.path().join("llm-cache.json");
    let cfg = write_config(&probes, &srv.url(), Some(&srv.key_file), &cache);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let counters = || {
        rt.block_on(async {
            (
                srv.metric("n_decode_total").await,
                srv.metric("prompt_tokens_total").await,
            )
        })
    };

    let before = counters();
    let (rows, stderr) = once(&cfg, &probes);
    assert_eq!(rows.len(), 2, "{rows:?}\n{stderr}");
    for r in &rows {
        assert_eq!(r["step"], "external", "{r}\n{stderr}");
        assert_eq!(r["source"], "model", "{r}");
        assert!(r["class"].is_string(), "{r}");
    }
    let after_first = counters();
    assert!(after_first.0 > before.0, "the model was asked");
    assert!(cache.exists());

    let (rows2, stderr2) = once(&cfg, &probes);
    assert_eq!(
        counters(),
        after_first,
        "the second run makes no request\n{stderr2}"
    );
    assert_eq!(rows2.len(), 2);
    for (a, b) in rows.iter().zip(&rows2) {
        assert_eq!((&a["pid"], &a["class"]), (&b["pid"], &b["class"]));
        assert_eq!(b["source"], "model", "{b}");
    }

    let export = Command::new(env!("CARGO_BIN_EXE_tuner"))
        .args(["rules", "export", "--llm-cache", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&export.stdout);
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    assert_eq!(text.matches("[[rule]]").count(), 2, "{text}");
    assert!(text.contains("name = \"llm-llm-probe-a\""), "{text}");
}

#[test]
fn tuner_once_completes_with_rules_when_the_server_is_down() {
    let probes = Probes::start();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = write_config(
        &probes,
        &format!("http://127.0.0.1:{port}"),
        None,
        &probes.dir.path().join("c.json"),
    );
    let (rows, stderr) = once(&cfg, &probes);
    assert!(
        stderr.contains("cannot reach llm server"),
        "no clear warning: {stderr}"
    );
    assert_eq!(rows.len(), 2);
    for r in &rows {
        assert!(
            r["class"].is_null() && r["excluded"] == false,
            "left open: {r}"
        );
    }
}

/// Issue 19, reproduction 7: after `tuner once` cached a model answer, `tuner explain` said
/// "external: no answer yet" and "result: open". It starts from the cached answer now (and
/// from the state file's hint, here none).
#[test]
fn explain_starts_from_the_models_cached_answer() {
    let srv = crate::llm_support::FaultServer::start("ok", &["--class", "batch"]);
    let probes = Probes::start();
    let cache = probes.dir.path().join("llm-cache.json");
    let cfg = write_config(&probes, &srv.url(), None, &cache);
    let state = probes.dir.path().join("state.json");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!(
        "\n[daemon]\nstate_file = {:?}\n",
        state.display().to_string()
    ));
    std::fs::write(&cfg, text).unwrap();
    let (rows, stderr) = once(&cfg, &probes);
    assert_eq!(rows.len(), 2, "{rows:?}\n{stderr}");
    assert_eq!(rows[0]["step"], "external", "{}\n{stderr}", rows[0]);
    assert!(cache.exists(), "the answer is cached");

    let pid = probes.pids()[0];
    let text = explain(&cfg, pid, "300");
    assert!(!text.contains("no answer yet"), "{text}");
    assert!(text.contains("4 external: batch"), "{text}");
    assert!(text.contains("result: batch by external"), "{text}");
    assert!(text.contains("held     none"), "{text}");
}
