//! Wiring: the one place that turns a [`Config`] into the parts that do the work.
//!
//! The observer (procfs and sysfs under the configured roots, with the options it reads),
//! the engine (the classification steps and the planner, fed with the effective rules), the
//! external classifier (`[external]`, the LLM classifier for `kind = "llm"`), the sink (the
//! backend) and the daemon that drives them. `tuner run`, `once`, `explain`, the benchmark
//! and the tests build through here, so each part is set up one way.
//!
//! Layers (no module imports one above it): `cli`/`commands` → `app` → `daemon` → `engine`
//! → `observe`, `classify`, `plan`, `apply`, `llm` → `config`, `hint`, `uapi`, `glob`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::apply::{self, HintSink};
use crate::classify::external::ExternalClassifier;
use crate::clock::{Clock, MonotonicClock};
use crate::config::rules::RuleSet;
use crate::config::{Backend, Config, STDIN_PATH};
use crate::daemon::{Daemon, Reload, Reloader};
use crate::engine::{Engine, Mode};
use crate::error::Error;
use crate::llm::{LlmClassifier, LlmConfig};
use crate::metrics::Metrics;
use crate::observe::procfs::ProcfsSource;
use crate::observe::snapshot::{ClassifierServer, ObserveOptions, Observer};
use crate::observe::sysfs::SysfsSource;
use crate::observe::WchanFilter;
use crate::state::file::{StateError, StateFile};
use crate::state::Writer;

/// The configuration and the effective rules (`[[manual]]`, rule files, embedded catalog).
pub fn load(path: Option<&Path>) -> Result<(Arc<Config>, RuleSet), Error> {
    let cfg = Config::load(path)?;
    let rules = cfg.load_rules()?;
    Ok((Arc::new(cfg), rules))
}

/// What the observer needs of the configuration and the rules.
pub fn observe_options(cfg: &Config, rules: &RuleSet) -> ObserveOptions {
    ObserveOptions {
        wait_channels: (cfg.observe.threads && rules.reads_wait_channels()).then(|| {
            let rules = rules.clone();
            WchanFilter::new(move |p| rules.may_read_wait_channels(p))
        }),
        threads: cfg.observe.threads,
        numa: cfg.plan.numa,
        numa_min_rss_kib: cfg.observe.numa_min_rss_kib,
        numa_maps_every_scans: cfg.observe.numa_maps_every_scans,
        static_refresh_scans: cfg.observe.static_refresh_scans,
        classifier_server: cfg.external.enabled.then(|| ClassifierServer {
            pid_file: cfg.external.pid_file.clone(),
            port: cfg.external.endpoint_port,
        }),
    }
}

/// An observer over the configured procfs and sysfs roots.
pub fn observer(cfg: &Config, rules: &RuleSet, clock: Arc<dyn Clock>) -> Observer {
    Observer::new(
        Box::new(ProcfsSource::new(&cfg.observe.proc_root)),
        Box::new(SysfsSource::new(&cfg.observe.sys_root)),
        clock,
        observe_options(cfg, rules),
    )
}

/// The external classifier `[external]` configures; `Ok(None)` when it is disabled. Its own
/// counters join `metrics`' rendering.
pub fn external(
    cfg: &Config,
    metrics: &Metrics,
) -> Result<Option<Arc<dyn ExternalClassifier>>, Error> {
    let ext = &cfg.external;
    if !ext.enabled {
        return Ok(None);
    }
    match ext.kind.as_str() {
        "llm" => {
            let llm = LlmConfig::new(&ext.endpoint, ext.timeout_ms, ext.max_batch, &cfg.llm)
                .map_err(|e| Error::Usage(e.to_string()))?;
            let classifier = LlmClassifier::new(&llm).map_err(|e| Error::Usage(e.to_string()))?;
            let seen = classifier.clone();
            metrics.add_renderer(move |out| seen.metrics().render(out));
            Ok(Some(Arc::new(classifier)))
        }
        other => Err(Error::Usage(format!(
            "unknown external classifier kind {other:?}"
        ))),
    }
}

/// Re-reads `path` (SIGHUP): the new configuration, its rules and observer options.
pub fn reloader(path: Option<&Path>) -> Reloader {
    let path: Option<PathBuf> = path.map(Path::to_path_buf);
    Box::new(move || {
        if path.as_deref() == Some(Path::new(STDIN_PATH)) {
            return Err(Error::Usage(
                "the configuration came from standard input, which cannot be read again: restart to change it".into(),
            ));
        }
        let (cfg, rules) = load(path.as_deref())?;
        Ok(Reload {
            observe: observe_options(&cfg, &rules),
            cfg,
            rules,
        })
    })
}

/// Keeps `engine`'s writes in the state file `[daemon] state_file` names, and hands it the
/// hints an earlier run left there (taken up per `on_restart` at the first pass). Fails,
/// before anything is written, when the file cannot be read or written.
pub fn keep_state(cfg: &Config, engine: &mut Engine, backend: Backend) -> Result<(), Error> {
    let store = StateFile::new(&cfg.daemon.state_file);
    let earlier = store.update(|st| -> Result<_, Error> { Ok(st.entries.clone()) })?;
    engine.resume(earlier, cfg.daemon.on_restart);
    let name = backend.as_str();
    engine.set_journal(
        name,
        Box::new(move |entries, yielded| {
            store
                .update(|st| -> Result<(), StateError> {
                    // Entries `tuner hint set` made are the admin's; the rest are this run's.
                    st.entries
                        .retain(|e| e.by == Writer::Admin || e.backend != name);
                    st.entries.extend(entries);
                    st.yielded = yielded;
                    Ok(())
                })
                .map_err(|e| e.to_string())
        }),
    );
    Ok(())
}

/// A loaded configuration with the state its parts share.
pub struct App {
    pub cfg: Arc<Config>,
    pub rules: RuleSet,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
}

impl App {
    /// Reads the configuration at `path` (see [`Config::load`]) and its rules.
    pub fn load(path: Option<&Path>) -> Result<App, Error> {
        let (cfg, rules) = load(path)?;
        Ok(App::new(cfg, rules))
    }

    /// From a configuration already in hand; loads its rules.
    #[cfg(test)]
    pub fn from_config(cfg: Config) -> Result<App, Error> {
        let rules = cfg.load_rules()?;
        Ok(App::new(Arc::new(cfg), rules))
    }

    pub fn new(cfg: Arc<Config>, rules: RuleSet) -> App {
        App {
            cfg,
            rules,
            metrics: Metrics::new(),
            clock: Arc::new(MonotonicClock::new()),
        }
    }

    pub fn observer(&self) -> Observer {
        observer(&self.cfg, &self.rules, self.clock.clone())
    }

    pub fn engine(&self, mode: Mode) -> Engine {
        Engine::new(
            self.cfg.clone(),
            self.rules.clone(),
            self.metrics.clone(),
            mode,
        )
    }

    /// Opens the backend `backend` resolves to; real backends check privileges first, so an
    /// unprivileged run fails before anything is observed.
    pub fn sink(&self, backend: Backend) -> Result<Box<dyn HintSink>, Error> {
        Ok(apply::open(backend, &self.cfg, self.metrics.clone())?)
    }

    pub fn external(&self) -> Result<Option<Arc<dyn ExternalClassifier>>, Error> {
        external(&self.cfg, &self.metrics)
    }

    /// The daemon over this configuration, writing through `sink`.
    pub fn daemon(
        self,
        sink: Box<dyn HintSink>,
        external: Option<Arc<dyn ExternalClassifier>>,
        reload: Option<Reloader>,
    ) -> Daemon {
        Daemon {
            engine: self.engine(Mode::Daemon),
            observer: self.observer(),
            sink,
            external,
            metrics: self.metrics,
            clock: self.clock,
            reload,
            metrics_bound: None,
        }
    }
}
