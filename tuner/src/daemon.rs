//! The daemon: one event loop owns the engine and the sink.
//!
//! `tokio::select!` over the scan timer, the scan in flight (observation runs on the
//! blocking pool and hands the observer back), external classifier answers (each request
//! runs in its own task and answers through a channel, so a slow classifier never holds up
//! hints already known), SIGHUP (reload) and shutdown. On shutdown the daemon clears the
//! hints it set, or keeps them, as configured.

use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::apply::{describe, HintSink};
use crate::classify::external::{ExternalClassifier, ExternalError, ExternalVerdict};
use crate::clock::Clock;
use crate::config::rules::RuleSet;
use crate::config::{Config, OnExit};
use crate::engine::Engine;
use crate::error::Error;
use crate::metrics::{self, Metrics};
use crate::observe::snapshot::{NumaRead, ObserveOptions, Observer, Snapshot};
use crate::observe::{ObserveError, ProcKey};
use crate::service;

/// A re-read configuration: what the engine and the observer take of it.
pub struct Reload {
    pub cfg: Arc<Config>,
    pub rules: RuleSet,
    pub observe: ObserveOptions,
}

pub type Reloader = Box<dyn FnMut() -> Result<Reload, Error> + Send>;

type Answer = (Vec<ProcKey>, Result<Vec<ExternalVerdict>, ExternalError>);
type ScanResult = (Observer, Result<Snapshot, ObserveError>, u64);

pub struct Daemon {
    pub engine: Engine,
    pub observer: Observer,
    pub sink: Box<dyn HintSink>,
    pub external: Option<Arc<dyn ExternalClassifier>>,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    pub reload: Option<Reloader>,
    /// Told the metrics address once it is bound (tests bind port 0).
    pub metrics_bound: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
}

/// How long the exit waits for a scan in flight before it clears without it.
const EXIT_SCAN_WAIT: Duration = Duration::from_secs(2);

fn interval(ms: u64) -> tokio::time::Interval {
    let mut t = tokio::time::interval(Duration::from_millis(ms));
    t.set_missed_tick_behavior(MissedTickBehavior::Delay);
    t
}

impl Daemon {
    /// Runs until `shutdown` completes; each message on `hup` reloads the configuration.
    pub async fn run(
        mut self,
        mut hup: mpsc::Receiver<()>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        let cfg = self.engine.config().clone();
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut metrics_task = None;
        if cfg.metrics.enabled {
            let listener = tokio::net::TcpListener::bind(cfg.metrics.listen)
                .await
                .map_err(|e| {
                    Error::io(
                        format!("cannot listen on {} for metrics", cfg.metrics.listen),
                        e,
                    )
                })?;
            let addr = listener
                .local_addr()
                .map_err(|e| Error::io("metrics socket", e))?;
            tracing::info!(%addr, "metrics listening on http://{addr}/metrics");
            if let Some(tx) = self.metrics_bound.take() {
                let _ = tx.send(addr);
            }
            metrics_task = Some(tokio::spawn(metrics::serve(
                listener,
                self.metrics.clone(),
                stop_rx,
            )));
        }
        tracing::info!(
            backend = self.sink.kind().as_str(),
            interval_ms = cfg.daemon.interval_ms,
            "tuner running"
        );
        let mut autogroups = cfg.daemon.state_file.clone().into_os_string();
        autogroups.push(".autogroups");
        self.sink
            .keep_sessions_in(std::path::Path::new(&autogroups));

        let (ext_tx, mut ext_rx) = mpsc::channel::<Answer>(8);
        let mut ext_in_flight = false;
        let mut tick = interval(cfg.daemon.interval_ms);
        let mut observer = Some(self.observer);
        let mut scan: Option<JoinHandle<ScanResult>> = None;
        let mut pending_opts: Option<ObserveOptions> = None;
        let mut ready_sent = false;
        tokio::pin!(shutdown);

        // An error ends the loop like a signal does: the exit below runs either way.
        let outcome: Result<(), Error> = loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break Ok(()),
                Some(()) = hup.recv() => {
                    let Some(reload) = self.reload.as_mut() else { continue };
                    service::reloading();
                    let result = reload();
                    if ready_sent {
                        service::ready();
                    }
                    match result {
                        Ok(Reload { cfg: new_cfg, rules, observe: opts }) => {
                            let old = self.engine.config().clone();
                            let waiting = old.restart_needed(&new_cfg);
                            if !waiting.is_empty() {
                                tracing::warn!(settings = %waiting.join(", "), "changed settings take effect after a restart; the rest is applied now");
                            }
                            if new_cfg.daemon.interval_ms != old.daemon.interval_ms {
                                tick = interval(new_cfg.daemon.interval_ms);
                            }
                            let rewrite = self.sink.set_config(&new_cfg);
                            self.engine.set_config(new_cfg, rules);
                            // Held hints whose class now means other settings are written again.
                            self.engine.rewrite_classes(&rewrite);
                            match observer.as_mut() {
                                Some(o) => o.set_options(opts),
                                None => pending_opts = Some(opts),
                            }
                            self.metrics.reloads.fetch_add(1, Ordering::Relaxed);
                            let classes: Vec<&str> = rewrite.iter().map(|c| c.as_str()).collect();
                            tracing::info!(rewrite_classes = %classes.join(","), "configuration reloaded");
                        }
                        Err(e) => {
                            self.metrics.reload_errors.fetch_add(1, Ordering::Relaxed);
                            tracing::error!("reload failed, keeping the old configuration: {e}");
                        }
                    }
                }
                Some((keys, answer)) = ext_rx.recv() => {
                    ext_in_flight = false;
                    self.engine.on_external(&keys, answer, self.clock.now_ms());
                }
                joined = async { scan.as_mut().expect("guarded").await }, if scan.is_some() => {
                    scan = None;
                    let (mut obs, result, observe_us) = match joined {
                        Ok(j) => j,
                        Err(e) => break Err(Error::Runtime(format!("scan task failed: {e}"))),
                    };
                    if let Some(o) = pending_opts.take() {
                        obs.set_options(o);
                    }
                    observer = Some(obs);
                    match result {
                        Ok(mut snap) => {
                            self.engine.prepare(&mut snap);
                            // A bug that panics in a pass must not skip the exit below: the
                            // hints held so far are restored on the way out like on SIGTERM.
                            // (What the panicking pass itself wrote is in the state file,
                            // journalled before the writes, for the next run's on_restart.)
                            let engine = &mut self.engine;
                            let sink = self.sink.as_mut();
                            let pass = std::panic::catch_unwind(AssertUnwindSafe(|| engine.pass(&snap, sink)));
                            let Ok(report) = pass else {
                                break Err(Error::Runtime("a pass panicked (a bug: see the message above); restoring the hints held and exiting".into()));
                            };
                            self.metrics.last_pass_us.store(observe_us + report.pass_us, Ordering::Relaxed);
                            for op in &report.ops {
                                tracing::debug!("{}", describe(op));
                            }
                            tracing::debug!(processes = snap.procs.len(), writes = report.ops.len(), pass_us = observe_us + report.pass_us, "pass done");
                            if let (Some(ext), false) = (&self.external, report.open.is_empty() || ext_in_flight) {
                                let (keys, facts): (Vec<ProcKey>, Vec<_>) = report.open.into_iter().unzip();
                                self.engine.mark_pending(&keys, self.clock.now_ms());
                                self.metrics.external_requests.fetch_add(1, Ordering::Relaxed);
                                ext_in_flight = true;
                                let timeout_ms = self.engine.config().external.timeout_ms;
                                let fut = ext.classify(facts);
                                let tx = ext_tx.clone();
                                tokio::spawn(async move {
                                    let answer = tokio::time::timeout(Duration::from_millis(timeout_ms), fut)
                                        .await
                                        .unwrap_or(Err(ExternalError::Timeout(timeout_ms)));
                                    let _ = tx.send((keys, answer)).await;
                                });
                            }
                        }
                        Err(e) => {
                            self.metrics.scan_errors.fetch_add(1, Ordering::Relaxed);
                            tracing::error!("scan failed: {e}");
                        }
                    }
                    if !ready_sent {
                        // The first scan is applied (or failed and logged): the host is as
                        // hinted as it will be, and a broken start has shown itself.
                        service::ready();
                        ready_sent = true;
                    }
                }
                _ = tick.tick(), if scan.is_none() => {
                    let mut obs = observer.take().expect("observer is home when no scan runs");
                    scan = Some(tokio::task::spawn_blocking(move || {
                        let t0 = Instant::now();
                        let r = obs.observe(NumaRead::Auto);
                        (obs, r, t0.elapsed().as_micros() as u64)
                    }));
                }
            }
        };

        service::stopping();
        if let Some(s) = scan.take() {
            // A scan only reads; its result is not needed, and the exit must not wait on a
            // stuck /proc read for long.
            if tokio::time::timeout(EXIT_SCAN_WAIT, s).await.is_err() {
                tracing::warn!("a scan still runs at exit; clearing without it");
            }
        }
        let on_exit = self.engine.config().daemon.on_exit;
        if on_exit == OnExit::Clear {
            let ops = self.engine.clear_all_ops();
            if !ops.is_empty() {
                let results = self.sink.apply(&ops);
                let failed = results.iter().filter(|r| r.is_err()).count();
                tracing::info!(
                    cleared = ops.len() - failed,
                    failed,
                    "hints cleared on exit"
                );
                self.engine.cleared(&ops, &results);
            }
        } else {
            tracing::info!(kept = self.engine.applied_count(), "hints kept on exit");
        }
        // Autogroup nices go back at every exit, `on_exit = "keep"` too: they are a
        // session's, not a hinted process's, and the next run starts from what it sees.
        self.sink.restore_sessions();
        let _ = stop_tx.send(true);
        if let Some(t) = metrics_task {
            let _ = t.await;
        }
        outcome
    }
}

/// Runs the daemon with SIGHUP for reload and SIGTERM or SIGINT for shutdown.
pub async fn run_with_signals(daemon: Daemon) -> Result<(), Error> {
    use tokio::signal::unix::{signal, SignalKind};
    let sig = |kind: SignalKind, name: &str| {
        signal(kind).map_err(|e| Error::io(format!("cannot install the {name} handler"), e))
    };
    let mut hup_sig = sig(SignalKind::hangup(), "SIGHUP")?;
    let mut term = sig(SignalKind::terminate(), "SIGTERM")?;
    let mut int = sig(SignalKind::interrupt(), "SIGINT")?;
    let (hup_tx, hup_rx) = mpsc::channel(1);
    tokio::spawn(async move {
        while hup_sig.recv().await.is_some() {
            if hup_tx.send(()).await.is_err() {
                break;
            }
        }
    });
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        }
    };
    daemon.run(hup_rx, shutdown).await
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::Mutex;

    use super::*;
    use crate::app::{self, App};
    use crate::apply::recording::{self, RecordingSink};
    use crate::apply::HintOp;
    use crate::classify::external::{ExternalFuture, ProcFacts};

    struct Stalled;

    impl ExternalClassifier for Stalled {
        fn name(&self) -> &'static str {
            "stalled"
        }

        fn classify(&self, _facts: Vec<ProcFacts>) -> ExternalFuture {
            Box::pin(std::future::pending())
        }
    }

    fn fixture_config() -> Config {
        let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/host2"));
        let mut cfg = Config::default();
        cfg.observe.proc_root = root.join("proc");
        cfg.observe.sys_root = root.join("sys");
        cfg.daemon.interval_ms = 100;
        cfg
    }

    /// Milliseconds on tokio's clock: on paused time, what the daemon's timers see.
    struct TokioClock(tokio::time::Instant);

    impl Clock for TokioClock {
        fn now_ms(&self) -> u64 {
            self.0.elapsed().as_millis() as u64 + 1
        }
    }

    fn daemon(
        cfg: Config,
        sink: RecordingSink,
        external: Option<Arc<dyn ExternalClassifier>>,
        reload: Option<Reloader>,
    ) -> (Daemon, Arc<Metrics>) {
        let mut app = App::from_config(cfg).unwrap();
        app.clock = Arc::new(TokioClock(tokio::time::Instant::now()));
        let metrics = app.metrics.clone();
        (app.daemon(Box::new(sink), external, reload), metrics)
    }

    /// Waits up to 5 s of the test's (paused) time; scans do not let it pass while they run.
    async fn until(what: &str, mut cond: impl FnMut() -> bool) {
        for _ in 0..500 {
            if cond() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out waiting for {what}");
    }

    /// The pids set so far, each once (the daemon's passes set some again).
    fn set_pids(ops: &[HintOp]) -> Vec<i32> {
        let mut v = recording::set_pids(ops);
        v.dedup();
        v
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_stalled_classifier_delays_nothing_and_exit_clears() {
        let mut cfg = fixture_config();
        cfg.external.enabled = true;
        cfg.external.timeout_ms = 60_000;
        cfg.heuristics.enabled = false;
        let sink = RecordingSink::new();
        let ops = sink.ops();
        let (d, metrics) = daemon(cfg, sink, Some(Arc::new(Stalled)), None);
        let (_hup_tx, hup_rx) = mpsc::channel(1);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(d.run(hup_rx, async {
            let _ = stop_rx.await;
        }));
        until("rule hints", || set_pids(&ops.lock().unwrap()).len() == 7).await;
        until("three scans", || metrics.scans.load(Ordering::Relaxed) >= 3).await;
        assert_eq!(
            metrics.external_requests.load(Ordering::Relaxed),
            1,
            "one request in flight, never a second"
        );
        assert_eq!(
            set_pids(&ops.lock().unwrap()),
            vec![400, 401, 500, 600, 700, 701, 990]
        );

        stop_tx.send(()).unwrap();
        task.await.unwrap().unwrap();
        let log = ops.lock().unwrap();
        let cleared = recording::cleared_pids(&log);
        // 400 was written thread by thread (400 and 401) and is cleared as a whole.
        assert_eq!(cleared, vec![400, 500, 600, 700, 701, 990]);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn sighup_reloads_and_a_bad_reload_keeps_the_old_config() {
        let mut cfg = fixture_config();
        cfg.daemon.on_exit = OnExit::Keep;
        let calls = Arc::new(Mutex::new(0));
        let calls2 = calls.clone();
        let reload: Reloader = Box::new(move || {
            let mut n = calls2.lock().unwrap();
            *n += 1;
            if *n == 1 {
                let mut c = fixture_config();
                c.daemon.on_exit = OnExit::Keep;
                c.exclude.comm.push(crate::glob::Glob::new("sshd"));
                let rules = c.load_rules()?;
                Ok(Reload {
                    observe: app::observe_options(&c, &rules),
                    cfg: Arc::new(c),
                    rules,
                })
            } else {
                Err(Error::Config(
                    crate::config::Config::parse("[daemon]\ninterval_ms = 1\n", "t").unwrap_err(),
                ))
            }
        });
        let sink = RecordingSink::new();
        let ops = sink.ops();
        let (d, metrics) = daemon(cfg, sink, None, Some(reload));
        let (hup_tx, hup_rx) = mpsc::channel(1);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(d.run(hup_rx, async {
            let _ = stop_rx.await;
        }));
        until("first hints", || {
            set_pids(&ops.lock().unwrap()).contains(&990)
        })
        .await;
        hup_tx.send(()).await.unwrap();
        until("reload", || metrics.reloads.load(Ordering::Relaxed) == 1).await;
        let scans = metrics.scans.load(Ordering::Relaxed);
        until("a scan after the reload", || {
            metrics.scans.load(Ordering::Relaxed) >= scans + 2
        })
        .await;
        hup_tx.send(()).await.unwrap();
        until("failed reload", || {
            metrics.reload_errors.load(Ordering::Relaxed) == 1
        })
        .await;
        let scans = metrics.scans.load(Ordering::Relaxed);
        until("scans go on", || {
            metrics.scans.load(Ordering::Relaxed) >= scans + 2
        })
        .await;
        stop_tx.send(()).unwrap();
        task.await.unwrap().unwrap();
        assert_eq!(*calls.lock().unwrap(), 2);
        let log = ops.lock().unwrap();
        assert!(
            log.iter().all(|o| matches!(o, HintOp::Set { .. })),
            "on_exit = keep clears nothing, and an excluded sshd is forgotten, not cleared"
        );
    }

    /// A sink whose `admin_hinted` (asked at the start of every pass) panics in pass `n`: a
    /// bug in the middle of a pass.
    struct PanicsIn {
        inner: RecordingSink,
        pass: usize,
        n: usize,
    }

    impl HintSink for PanicsIn {
        fn kind(&self) -> crate::config::Backend {
            self.inner.kind()
        }
        fn apply(&mut self, ops: &[HintOp]) -> Vec<Result<(), crate::apply::ApplyError>> {
            self.inner.apply(ops)
        }
        fn get(
            &mut self,
            t: crate::apply::Target,
        ) -> Result<Option<crate::hint::KernelHint>, crate::apply::ApplyError> {
            self.inner.get(t)
        }
        fn supports_ttl(&self) -> bool {
            self.inner.supports_ttl()
        }
        fn admin_hinted(&mut self, pids: &[i32]) -> std::collections::HashSet<i32> {
            self.pass += 1;
            assert_ne!(self.pass, self.n, "a bug in pass {}", self.n);
            self.inner.admin_hinted(pids)
        }
    }

    /// Issue 19, deliver 3: an error exit restores like SIGTERM does. A panic in a pass went
    /// straight out of the event loop, past the exit that clears, leaving every hint held.
    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_panic_in_a_pass_restores_the_hints_on_the_way_out() {
        let mut cfg = fixture_config();
        cfg.heuristics.enabled = false;
        let inner = RecordingSink::new();
        let ops = inner.ops();
        let mut app = App::from_config(cfg).unwrap();
        app.clock = Arc::new(TokioClock(tokio::time::Instant::now()));
        let sink = PanicsIn {
            inner,
            pass: 0,
            n: 3,
        };
        let d = app.daemon(Box::new(sink), None, None);
        let (_hup_tx, hup_rx) = mpsc::channel(1);
        let result = d.run(hup_rx, std::future::pending()).await;
        assert!(matches!(result, Err(Error::Runtime(_))), "{result:?}");
        let log = ops.lock().unwrap();
        let cleared = recording::cleared_pids(&log);
        assert_eq!(
            cleared,
            recording::set_owners(&log),
            "every process a hint was set on is cleared"
        );
        assert!(!cleared.is_empty());
    }

    /// Issue 19, reproduction 5: `[stock.batch] nice = 3, slice_us = 20000` after SIGHUP must
    /// reach the processes already hinted batch, and only them.
    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn sighup_rewrites_the_holders_of_a_class_whose_stock_settings_changed() {
        let mut cfg = fixture_config();
        cfg.daemon.on_exit = OnExit::Keep;
        let reload: Reloader = Box::new(|| {
            let mut c = fixture_config();
            c.daemon.on_exit = OnExit::Keep;
            c.stock.classes[crate::hint::HintClass::Batch.index()].nice = 3;
            c.stock.classes[crate::hint::HintClass::Batch.index()].slice_us = 20_000;
            let rules = c.load_rules()?;
            Ok(Reload {
                observe: app::observe_options(&c, &rules),
                cfg: Arc::new(c),
                rules,
            })
        });
        let mut sink = RecordingSink::new();
        sink.ttl = false;
        sink.stock = Some(cfg.stock.clone());
        let ops = sink.ops();
        let (d, metrics) = daemon(cfg, sink, None, Some(reload));
        let (hup_tx, hup_rx) = mpsc::channel(1);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(d.run(hup_rx, async {
            let _ = stop_rx.await;
        }));
        let writes = |pid: i32| {
            recording::set_pids(&ops.lock().unwrap())
                .iter()
                .filter(|p| **p == pid)
                .count()
        };
        until("first hints", || writes(600) == 1 && writes(990) == 1).await;
        let scans = metrics.scans.load(Ordering::Relaxed);
        until("two more scans", || {
            metrics.scans.load(Ordering::Relaxed) >= scans + 2
        })
        .await;
        assert_eq!((writes(600), writes(990)), (1, 1), "nothing to rewrite yet");

        hup_tx.send(()).await.unwrap();
        until("reload", || metrics.reloads.load(Ordering::Relaxed) == 1).await;
        let scans = metrics.scans.load(Ordering::Relaxed);
        until("two scans after the reload", || {
            metrics.scans.load(Ordering::Relaxed) >= scans + 2
        })
        .await;
        stop_tx.send(()).unwrap();
        task.await.unwrap().unwrap();
        assert_eq!(
            writes(600),
            2,
            "the batch process (rustc) is written with the new settings, once"
        );
        assert_eq!(writes(990), 1, "an interactive process is left alone");
    }
}
