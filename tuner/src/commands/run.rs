//! `tuner run`: the daemon.

use std::path::{Path, PathBuf};

use crate::apply;
use crate::classify::builder;
use crate::cli::RunArgs;
use crate::daemon::{self, Daemon};
use crate::engine::{Engine, Mode};
use crate::error::Error;
use crate::metrics::Metrics;

pub fn run(path: Option<&Path>, args: RunArgs) -> Result<(), Error> {
    let (cfg, rules) = super::load(path)?;
    let choice = args.backend.map_or(cfg.daemon.backend, Into::into);
    let metrics = Metrics::new();
    let sink = apply::open(choice, &cfg, metrics.clone())?;
    let external = builder::build(&cfg, &metrics)?;
    let clock = super::clock();
    let observer = super::observer(&cfg, clock.clone());
    let engine = Engine::new(cfg.clone(), rules, metrics.clone(), Mode::Daemon);
    let reload_path: Option<PathBuf> = path.map(Path::to_path_buf);
    let reload = Box::new(move || {
        let (cfg, rules) = super::load(reload_path.as_deref())?;
        Ok((cfg, rules))
    });
    let daemon = Daemon {
        engine,
        observer,
        sink,
        external,
        metrics,
        clock,
        reload: Some(reload),
        metrics_bound: None,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(2)
        .build()
        .map_err(|e| Error::io("cannot start the runtime", e))?;
    rt.block_on(daemon::run_with_signals(daemon))
}
