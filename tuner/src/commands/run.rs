//! `tuner run`: the daemon.

use std::path::Path;
use std::time::Duration;

use crate::app::{self, App};
use crate::cli::RunArgs;
use crate::daemon;
use crate::error::Error;
use crate::lock::InstanceLock;

/// How long the exit waits for the runtime's threads (a scan in flight) once the hints are
/// restored.
const EXIT_THREADS_WAIT: Duration = Duration::from_secs(1);

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
    // The hints are restored by now. A scan stuck in a /proc read holds a blocking thread that
    // dropping the runtime would wait for without end: the exit must not.
    rt.shutdown_timeout(EXIT_THREADS_WAIT);
    drop(lock);
    result
}
