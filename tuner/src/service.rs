//! Telling the service manager where the daemon stands (`Type=notify`): READY=1 once the first
//! scan has been applied, so units ordered after the tuner start on a host already hinted;
//! RELOADING=1 and READY=1 around a SIGHUP; STOPPING=1 when shutdown begins. Outside systemd
//! (`NOTIFY_SOCKET` unset) each call does nothing.

use sd_notify::NotifyState;

fn send(what: &str, state: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(state) {
        // The daemon works without it; systemd will time the start out and say so.
        tracing::warn!("cannot tell the service manager {what}: {e}");
    }
}

pub fn ready() {
    send("READY=1", &[NotifyState::Ready]);
}

pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send("RELOADING=1", &[NotifyState::Reloading, now]),
        Err(e) => tracing::warn!("cannot read the monotonic clock for RELOADING=1: {e}"),
    }
}

pub fn stopping() {
    send("STOPPING=1", &[NotifyState::Stopping]);
}
