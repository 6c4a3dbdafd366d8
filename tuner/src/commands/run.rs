//! `tuner run`: the daemon.

use std::path::Path;

use crate::app::{self, App};
use crate::cli::RunArgs;
use crate::daemon;
use crate::error::Error;
use crate::lock::InstanceLock;

pub fn run(path: Option<&Path>, args: RunArgs) -> Result<(), Error> {
    let app = App::load(path)?;
    let choice = args.backend.unwrap_or(app.cfg.daemon.backend);
    let sink = app.sink(choice)?;
    // After the privilege check, before the first write; held until the process exits.
    let lock = InstanceLock::acquire(&app.cfg.daemon.lock_path)?;
    tracing::debug!(path = %lock.path().display(), "single-instance lock taken");
    let kind = sink.kind();
    let cfg = app.cfg.clone();
    let external = app.external()?;
    let mut daemon = app.daemon(sink, external, Some(app::reloader(path)));
    app::keep_state(&cfg, &mut daemon.engine, kind)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(2)
        .build()
        .map_err(|e| Error::io("cannot start the runtime", e))?;
    let result = rt.block_on(daemon::run_with_signals(daemon));
    drop(lock);
    result
}
