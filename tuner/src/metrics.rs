//! Counters with a description each, rendered in the Prometheus text format, and a tiny
//! HTTP responder for them on a loopback address (no HTTP library: one request line in,
//! one response out).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::hint::{HintClass, Step};

/// The `kind` labels of `tuner_write_errors_total`, in the order they are rendered. A failed
/// write is an `apply::ApplyError`, and `ApplyError::metric_kind` names its label: the
/// causes are labels of a counter here, not a second error type.
pub mod write_kind {
    pub const GONE: &str = "gone";
    pub const PERMISSION: &str = "permission";
    pub const NODE: &str = "node";
    pub const INVALID: &str = "invalid";
    pub const OTHER: &str = "other";
    pub const ALL: [&str; 5] = [GONE, PERMISSION, NODE, INVALID, OTHER];
}

/// Writes one more section of the Prometheus text.
type Renderer = Box<dyn Fn(&mut String) + Send + Sync>;

#[derive(Default)]
pub struct Metrics {
    pub scans: AtomicU64,
    pub scan_errors: AtomicU64,
    pub last_pass_us: AtomicU64,
    pub processes: AtomicU64,
    /// Per [`Step`], plus one for open decisions.
    decisions: [AtomicU64; 6],
    /// Per [`HintClass`], processes hinted after the last pass.
    hinted: [AtomicU64; 6],
    pub writes_set: AtomicU64,
    pub writes_clear: AtomicU64,
    pub writes_deferred: AtomicU64,
    write_errors: [AtomicU64; 5],
    pub external_requests: AtomicU64,
    pub external_answers: AtomicU64,
    pub external_errors: AtomicU64,
    pub migrations: AtomicU64,
    pub migration_errors: AtomicU64,
    pub reloads: AtomicU64,
    pub reload_errors: AtomicU64,
    /// Children found holding a hint inherited from an ancestor the tuner hinted.
    pub inherited: AtomicU64,
    /// More sections for [`Metrics::render`]: the LLM classifier's own counters.
    renderers: Mutex<Vec<Renderer>>,
}

fn write_kind_index(kind: &str) -> usize {
    let index = write_kind::ALL.iter().position(|k| *k == kind);
    debug_assert!(index.is_some(), "unknown write error kind {kind:?}");
    index.unwrap_or(write_kind::ALL.len() - 1)
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn inc(c: &AtomicU64) {
        add(c, 1);
    }

    /// `step: None` counts an open decision.
    pub fn decision(&self, step: Option<Step>) {
        let i = step.map_or(5, |s| {
            Step::ALL.iter().position(|x| *x == s).expect("known step")
        });
        add(&self.decisions[i], 1);
    }

    #[cfg(test)]
    pub fn decisions_of(&self, step: Option<Step>) -> u64 {
        let i = step.map_or(5, |s| {
            Step::ALL.iter().position(|x| *x == s).expect("known step")
        });
        self.decisions[i].load(Ordering::Relaxed)
    }

    pub fn set_hinted(&self, counts: &[u64; 6]) {
        for (slot, n) in self.hinted.iter().zip(counts) {
            slot.store(*n, Ordering::Relaxed);
        }
    }

    /// Counts a failed write under `kind`, one of [`write_kind::ALL`] (`other` for any else).
    pub fn write_error(&self, kind: &str) {
        add(&self.write_errors[write_kind_index(kind)], 1);
    }

    #[cfg(test)]
    pub fn write_errors_of(&self, kind: &str) -> u64 {
        self.write_errors[write_kind_index(kind)].load(Ordering::Relaxed)
    }

    /// Appends `f`'s output to every rendering.
    pub fn add_renderer(&self, f: impl Fn(&mut String) + Send + Sync + 'static) {
        self.renderers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Box::new(f));
    }

    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut single = |name: &str, kind: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        };
        single(
            "tuner_scans_total",
            "counter",
            "Scan-classify-plan passes run.",
            get(&self.scans),
        );
        single(
            "tuner_scan_errors_total",
            "counter",
            "Scans that failed to observe the machine.",
            get(&self.scan_errors),
        );
        single(
            "tuner_last_pass_microseconds",
            "gauge",
            "Duration of the last pass, observation included.",
            get(&self.last_pass_us),
        );
        single(
            "tuner_processes",
            "gauge",
            "Processes seen by the last scan.",
            get(&self.processes),
        );
        single(
            "tuner_writes_set_total",
            "counter",
            "Hints written (set or refreshed).",
            get(&self.writes_set),
        );
        single(
            "tuner_writes_clear_total",
            "counter",
            "Hints cleared.",
            get(&self.writes_clear),
        );
        single(
            "tuner_writes_deferred_total",
            "counter",
            "Writes postponed by the rate limit.",
            get(&self.writes_deferred),
        );
        single(
            "tuner_external_requests_total",
            "counter",
            "Batches sent to the external classifier.",
            get(&self.external_requests),
        );
        single(
            "tuner_external_answers_total",
            "counter",
            "Verdicts received from the external classifier.",
            get(&self.external_answers),
        );
        single(
            "tuner_external_errors_total",
            "counter",
            "External classifier calls that failed or timed out.",
            get(&self.external_errors),
        );
        single(
            "tuner_migrations_total",
            "counter",
            "migrate_pages calls made by the stock backend.",
            get(&self.migrations),
        );
        single(
            "tuner_migration_errors_total",
            "counter",
            "migrate_pages calls that failed.",
            get(&self.migration_errors),
        );
        single(
            "tuner_config_reloads_total",
            "counter",
            "Configuration reloads (SIGHUP) that succeeded.",
            get(&self.reloads),
        );
        single(
            "tuner_config_reload_errors_total",
            "counter",
            "Configuration reloads that failed; the old configuration stays.",
            get(&self.reload_errors),
        );
        single(
            "tuner_inherited_total",
            "counter",
            "Children adopted as holding a hint they inherited from a hinted ancestor.",
            get(&self.inherited),
        );

        let _ = writeln!(out, "# HELP tuner_decisions_total Decisions made, by the step that made them (open: none yet).");
        let _ = writeln!(out, "# TYPE tuner_decisions_total counter");
        for (i, step) in Step::ALL.iter().enumerate() {
            let _ = writeln!(
                out,
                "tuner_decisions_total{{step=\"{}\"}} {}",
                step.as_str(),
                get(&self.decisions[i])
            );
        }
        let _ = writeln!(
            out,
            "tuner_decisions_total{{step=\"open\"}} {}",
            get(&self.decisions[5])
        );
        let _ = writeln!(
            out,
            "# HELP tuner_hinted_processes Processes holding a hint after the last pass, by class."
        );
        let _ = writeln!(out, "# TYPE tuner_hinted_processes gauge");
        for class in HintClass::ALL {
            let _ = writeln!(
                out,
                "tuner_hinted_processes{{class=\"{class}\"}} {}",
                get(&self.hinted[class.index()])
            );
        }
        let _ = writeln!(
            out,
            "# HELP tuner_write_errors_total Failed writes, by cause."
        );
        let _ = writeln!(out, "# TYPE tuner_write_errors_total counter");
        for (i, kind) in write_kind::ALL.iter().enumerate() {
            let _ = writeln!(
                out,
                "tuner_write_errors_total{{kind=\"{kind}\"}} {}",
                get(&self.write_errors[i])
            );
        }
        for r in self
            .renderers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            r(&mut out);
        }
        out
    }
}

/// Serves `GET /metrics` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let m = metrics.clone();
                    tokio::spawn(async move {
                        if let Err(e) = respond(stream, &m).await {
                            tracing::debug!(error = %e, "metrics request failed");
                        }
                    });
                }
                Err(e) => tracing::warn!(error = %e, "metrics accept failed"),
            },
        }
    }
}

async fn respond(mut stream: TcpStream, metrics: &Metrics) -> std::io::Result<()> {
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    let read = async {
        while len < buf.len() {
            let n = stream.read(&mut buf[len..]).await?;
            if n == 0 {
                break;
            }
            len += n;
            if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") || buf[..len].contains(&b'\n') {
                break;
            }
        }
        Ok::<(), std::io::Error>(())
    };
    tokio::time::timeout(Duration::from_secs(2), read)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "request timed out"))??;
    let request = String::from_utf8_lossy(&buf[..len]);
    let mut parts = request.split_ascii_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, body) = match (method, path) {
        ("GET", "/metrics") => ("200 OK", metrics.render()),
        ("GET", _) => ("404 Not Found", "not found\n".to_owned()),
        _ => ("405 Method Not Allowed", "method not allowed\n".to_owned()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_has_help_type_and_labels() {
        let m = Metrics::new();
        Metrics::inc(&m.scans);
        m.decision(Some(Step::Rule));
        m.decision(Some(Step::Rule));
        m.decision(None);
        m.write_error(write_kind::PERMISSION);
        let text = m.render();
        assert!(text.contains("# TYPE tuner_scans_total counter\ntuner_scans_total 1\n"));
        assert!(text.contains("tuner_decisions_total{step=\"rule\"} 2\n"));
        assert!(text.contains("tuner_decisions_total{step=\"open\"} 1\n"));
        assert!(text.contains("tuner_write_errors_total{kind=\"permission\"} 1\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').unwrap();
            value
                .parse::<u64>()
                .unwrap_or_else(|_| panic!("bad sample line {line}"));
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn serves_metrics_over_http() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let m = Metrics::new();
        Metrics::inc(&m.writes_set);
        let (tx, rx) = watch::channel(false);
        let server = tokio::spawn(serve(listener, m.clone(), rx));
        let get = |path: &'static str| async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        let ok = get("/metrics").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("tuner_writes_set_total 1\n"));
        assert!(get("/").await.starts_with("HTTP/1.1 404"));
        tx.send(true).unwrap();
        server.await.unwrap();
    }
}
