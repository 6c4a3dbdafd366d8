//! Shared pieces of the LLM classifier tests: the fault server, the real llama.cpp server and
//! fake processes whose binaries are real files.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};

use serde_json::Value;
use tuner::classify::external::ProcFacts;
use tuner::config::ceiling::Ceilings;
use tuner::config::llm::LlmSection;
use tuner::hint::HintClass;
use tuner::llm::{LlmClassifier, LlmConfig};

use crate::llm_fault_server;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

async fn get_json(url: &str) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

/// The fault server ([`crate::llm_fault_server`]), stopped when dropped.
pub struct FaultServer {
    port: u16,
    /// In this process; or `child`, a process of its own.
    _server: Option<llm_fault_server::Server>,
    child: Option<std::process::Child>,
}

impl FaultServer {
    /// Starts in `mode`; `extra` as the flags `--fail-count N`, `--delay-ms N`, `--class C`,
    /// `--body-bytes N`.
    pub fn start(mode: &str, extra: &[&str]) -> FaultServer {
        let mut m = llm_fault_server::Mode {
            mode: mode.to_owned(),
            ..Default::default()
        };
        for pair in extra.chunks(2) {
            match pair {
                ["--fail-count", n] => m.fail_count = n.parse().unwrap(),
                ["--delay-ms", n] => m.delay_ms = n.parse().unwrap(),
                ["--class", c] => m.class = (*c).to_owned(),
                ["--body-bytes", n] => m.body_bytes = n.parse().unwrap(),
                other => panic!("unknown fault server flags {other:?}"),
            }
        }
        let server = llm_fault_server::Server::start(m);
        FaultServer {
            port: server.port,
            _server: Some(server),
            child: None,
        }
    }

    /// Starts in `mode` in a process of uid and gid 65534 (this test binary again, through
    /// setpriv): a user who took the port while the real server was down. Root only.
    pub fn start_as_nobody(mode: &str) -> FaultServer {
        use std::io::BufRead as _;
        let mut child = Command::new("setpriv")
            .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
            .arg(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "llm_fault_server::child_process_entry",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("SCHED_HINT_FAULT_SERVER_CHILD", mode)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn the fault server as nobody");
        let out = std::io::BufReader::new(child.stdout.take().unwrap());
        let port = out
            .lines()
            .map_while(Result::ok)
            // libtest prints the test's name on the same line first
            .find_map(|l| l.split("PORT ").nth(1).map(|p| p.trim().parse().unwrap()))
            .expect("the child fault server's port");
        FaultServer {
            port,
            _server: None,
            child: Some(child),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `/_count`: requests seen (`chat`, `health`, `total`) and body bytes sent (`sent`).
    pub async fn count(&self, what: &str) -> u64 {
        get_json(&format!("{}/_count", self.url())).await[what]
            .as_u64()
            .unwrap()
    }

    /// Chat requests seen so far.
    pub async fn chat_count(&self) -> u64 {
        get_json(&format!("{}/_count", self.url())).await["chat"]
            .as_u64()
            .unwrap()
    }

    /// The last chat request: `{"body": ..., "authorization": ...}`.
    pub async fn last(&self) -> Value {
        get_json(&format!("{}/_last", self.url())).await
    }

    pub async fn set_mode(&self, mode: &str, fail_count: i64) {
        let body = serde_json::json!({ "mode": mode, "fail_count": fail_count });
        let r = reqwest::Client::new()
            .post(format!("{}/_mode", self.url()))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Writes a file only its owner may read, as an API key file must be.
pub fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// The key the shared real server requires.
pub const REAL_SERVER_KEY: &str = "sk-sched-hint-test";

/// The xllamacpp llama.cpp server started by `scripts/llm-server.sh` on a free port, shared by
/// the real-server tests. It requires `REAL_SERVER_KEY` and exits by itself when the test
/// binary does (`--watch-pid`); its run directory lives under cargo's target tmp dir.
pub struct RealServer {
    pub port: u16,
    pub key_file: PathBuf,
    /// The server process (the launcher's python, which hosts llama.cpp's threads).
    pub pid: i32,
}

static REAL_SERVER: OnceLock<Option<RealServer>> = OnceLock::new();
/// One real-server test at a time: the model runs on one thread, and a test that counts the
/// server's tokens must see only its own requests.
static REAL_SERIAL: Mutex<()> = Mutex::new(());

impl RealServer {
    /// The shared server and the right to use it alone, or `None` after printing why when the
    /// venv or the model is missing (`make setup` installs both). With
    /// `SCHED_HINT_REQUIRE_LLM=1` a missing server fails the test instead.
    pub fn get() -> Option<(&'static RealServer, MutexGuard<'static, ()>)> {
        let serial = REAL_SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let srv = REAL_SERVER.get_or_init(RealServer::start).as_ref()?;
        Some((srv, serial))
    }

    fn start() -> Option<RealServer> {
        let cache = std::env::var_os("SCHED_HINT_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/sched_hint")
            });
        let py = cache.join("venv/bin/python");
        let model = cache.join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
        if !py.exists() || !model.exists() {
            let why = format!(
                "real llm server tests skipped: {} or {} missing; run `make setup`",
                py.display(),
                model.display()
            );
            if std::env::var("SCHED_HINT_REQUIRE_LLM").as_deref() == Ok("1") {
                panic!("{why} (SCHED_HINT_REQUIRE_LLM=1)");
            }
            // Straight to the process's stderr: the test harness captures eprintln!.
            let _ = writeln!(std::io::stderr().lock(), "SKIP: {why}");
            return None;
        }
        // Run directories of earlier test binaries that have exited are litter.
        for e in std::fs::read_dir(env!("CARGO_TARGET_TMPDIR"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("llm-server-") {
                if !Path::new("/proc").join(pid).exists() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let run_dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("llm-server-{}", std::process::id()));
        std::fs::create_dir_all(&run_dir).unwrap();
        let key_file = run_dir.join("key");
        write_private(&key_file, &format!("{REAL_SERVER_KEY}\n"));
        let t = std::time::Instant::now();
        // At nice 0 whatever the runner's: the serving-rules test wants the tuner to treat
        // the server as it treats one started by its unit, not as one reniced by hand.
        let out = crate::support::default_nice(&mut Command::new(
            repo_root().join("scripts/llm-server.sh"),
        ))
        .arg("start")
        .args([
            "--port",
            "0",
            "--watch-pid",
            &std::process::id().to_string(),
        ])
        .arg("--run-dir")
        .arg(&run_dir)
        .arg("--api-key-file")
        .arg(&key_file)
        .output()
        .unwrap();
        assert!(
            out.status.success(),
            "llm-server.sh start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        let pid = std::fs::read_to_string(run_dir.join("llm-server.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        eprintln!(
            "real llm server on 127.0.0.1:{port}, started in {:?}",
            t.elapsed()
        );
        Some(RealServer {
            port,
            key_file,
            pid,
        })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// llama.cpp's Prometheus counters (`llamacpp:NAME`), by NAME.
    pub async fn metric(&self, name: &str) -> f64 {
        let text = reqwest::Client::new()
            .get(format!("{}/metrics", self.url()))
            .bearer_auth(REAL_SERVER_KEY)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("llamacpp:{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no llamacpp:{name} in /metrics"))
    }

    /// Waits until the server has no request in progress (one a client gave up on may still
    /// run), so the next test starts on an idle server.
    pub async fn wait_idle(&self) {
        for _ in 0..600 {
            if self.metric("requests_processing").await == 0.0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("llm server still busy after 60 s");
    }
}

/// Fake processes whose executables are real, distinct files in a temporary directory, so the
/// cache can identify them. Pids start far above any real pid_max.
pub struct Procs {
    pub dir: tempfile::TempDir,
}

impl Procs {
    pub fn new() -> Procs {
        Procs {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// The file standing for binary `name` (created on first use).
    pub fn exe(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        if !p.exists() {
            std::fs::write(&p, format!("binary {name}")).unwrap();
        }
        p
    }

    pub fn proc(
        &self,
        pid: i32,
        uid: u32,
        bin: &str,
        comm: &str,
        args: &[&str],
        cgroup: &str,
    ) -> ProcFacts {
        let exe = self.exe(bin);
        let mut cmdline = vec![exe.to_string_lossy().into_owned()];
        cmdline.extend(args.iter().map(|s| s.to_string()));
        ProcFacts {
            pid,
            uid,
            comm: comm.into(),
            exe: Some(exe),
            cmdline,
            cgroup: cgroup.into(),
            nr_threads: 4,
            cpu_pct: 35.0,
            voluntary_ctxsw_per_s: 120.0,
            involuntary_ctxsw_per_s: 8.0,
            rss_kib: 50_000,
        }
    }

    /// A handful of ordinary processes, one binary each.
    pub fn ordinary(&self, base_pid: i32, n: usize) -> Vec<ProcFacts> {
        const NAMES: [(&str, &[&str], &str); 8] = [
            (
                "pulseaudio",
                &["--daemonize=no"],
                "/user.slice/user-1000.slice/session-2.scope",
            ),
            (
                "make",
                &["-j8", "all"],
                "/user.slice/user-1000.slice/session-2.scope",
            ),
            ("updatedb", &[], "/system.slice/plocate-updatedb.service"),
            (
                "firefox",
                &["--new-window"],
                "/user.slice/user-1000.slice/app.slice",
            ),
            (
                "ffmpeg",
                &["-i", "in.mkv", "out.mp4"],
                "/user.slice/user-1000.slice/session-2.scope",
            ),
            (
                "rsync",
                &["-a", "/home", "/backup"],
                "/system.slice/backup.service",
            ),
            (
                "vim",
                &["notes.txt"],
                "/user.slice/user-1000.slice/session-2.scope",
            ),
            (
                "postgres",
                &["-D", "/var/lib/pg"],
                "/system.slice/postgresql.service",
            ),
        ];
        NAMES
            .iter()
            .cycle()
            .take(n)
            .enumerate()
            .map(|(i, (name, args, cg))| {
                let bin = if i < NAMES.len() {
                    name.to_string()
                } else {
                    format!("{name}{i}")
                };
                self.proc(base_pid + i as i32, 1000, &bin, name, args, cg)
            })
            .collect()
    }
}

/// What a test may adjust: `[external]`'s timeout and batch size and the `[llm]` section.
pub struct TestCfg {
    pub timeout_ms: u64,
    pub batch_size: usize,
    pub llm: LlmSection,
}

/// A configuration pointing at `url`, caching in `cache_path`, ceilings at latency (so the
/// ceiling tests choose theirs); `f` adjusts it.
pub fn config(url: &str, cache_path: &Path, f: impl FnOnce(&mut TestCfg)) -> LlmConfig {
    let mut t = TestCfg {
        timeout_ms: 5_000,
        batch_size: 8,
        llm: LlmSection {
            model: "smollm2".into(),
            connect_timeout_ms: 500,
            max_retries: 3,
            backoff_ms: 10,
            cache_path: Some(cache_path.to_path_buf()),
            health_wait_ms: 500,
            retry_down_ms: 60_000,
            ceilings: Ceilings::new(HintClass::Latency),
            ..Default::default()
        },
    };
    f(&mut t);
    LlmConfig::new(url, t.timeout_ms, t.batch_size, &t.llm).unwrap()
}

/// Ceilings as written in `[llm.ceilings]`.
pub fn ceilings(default: &str, uid: &[(&str, &str)], cgroup: &[(&str, &str)]) -> Ceilings {
    let map = |kv: &[(&str, &str)]| {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    Ceilings::from_raw(default, &map(uid), &map(cgroup)).unwrap()
}

pub fn classifier(cfg: &LlmConfig) -> LlmClassifier {
    LlmClassifier::new(cfg).unwrap()
}

/// The pids of `verdicts`, sorted.
pub fn pids_of(v: &[tuner::classify::external::ExternalVerdict]) -> Vec<i32> {
    let mut p: Vec<i32> = v.iter().map(|v| v.pid).collect();
    p.sort();
    p
}
