//! The library's error type and the process exit codes it maps to ([`EXIT_CODES`], which
//! `tuner --help` prints).

use std::path::PathBuf;

use crate::apply::ApplyError;
use crate::config::ConfigError;
use crate::lock::LockError;
use crate::observe::ObserveError;
use crate::state::file::StateError;

pub const EXIT_OK: u8 = 0;
pub const EXIT_RUNTIME: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_NO_DEVICE: u8 = 3;
pub const EXIT_PERMISSION: u8 = 4;

/// Every exit code with its meaning.
pub const EXIT_CODES: [(u8, &str); 5] = [
    (EXIT_OK, "success"),
    (
        EXIT_RUNTIME,
        "runtime error (observation failed, a write failed)",
    ),
    (EXIT_USAGE, "usage or configuration error"),
    (
        EXIT_NO_DEVICE,
        "the sched_hint device is missing (ioctl backend)",
    ),
    (
        EXIT_PERMISSION,
        "permission denied (needs root or CAP_SYS_NICE)",
    ),
];

/// [`EXIT_CODES`] as the text after `tuner --help`.
pub fn exit_codes_help() -> String {
    let mut text = String::from("Exit codes:");
    for (code, meaning) in EXIT_CODES {
        text.push_str(&format!("\n  {code}  {meaning}"));
    }
    text
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Usage(String),
    #[error("device {} is missing: load the sched_hint module, or use --backend stock or --dry-run", .0.display())]
    DeviceMissing(PathBuf),
    #[error("permission denied: {0}")]
    Permission(String),
    #[error(transparent)]
    Observe(#[from] ObserveError),
    #[error(transparent)]
    Apply(ApplyError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("{0}")]
    Runtime(String),
}

impl From<ApplyError> for Error {
    fn from(e: ApplyError) -> Self {
        match e {
            ApplyError::DeviceMissing(path) => Error::DeviceMissing(path),
            ApplyError::PermissionDenied(what) => Error::Permission(what),
            other => Error::Apply(other),
        }
    }
}

impl Error {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// Stdout's reader went away (`| head`, `| grep -q`): it has read all it wanted, so
    /// the command ends quietly with success instead of a panic or an error message.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) | Error::Usage(_) => EXIT_USAGE,
            Error::DeviceMissing(_) => EXIT_NO_DEVICE,
            Error::Permission(_) => EXIT_PERMISSION,
            Error::Observe(ObserveError::NoSuchProcess(_)) => EXIT_RUNTIME,
            Error::Observe(_)
            | Error::Apply(_)
            | Error::State(_)
            | Error::Io { .. }
            | Error::Lock(_)
            | Error::Runtime(_) => EXIT_RUNTIME,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_errors_map_to_their_exit_codes() {
        let e: Error = ApplyError::DeviceMissing("/dev/sched_hint".into()).into();
        assert_eq!(e.exit_code(), EXIT_NO_DEVICE);
        let e: Error = ApplyError::PermissionDenied("setting latency".into()).into();
        assert_eq!(e.exit_code(), EXIT_PERMISSION);
        let e: Error = ApplyError::NoSuchTask(7).into();
        assert_eq!(e.exit_code(), EXIT_RUNTIME);
    }

    #[test]
    fn help_lists_every_exit_code() {
        assert_eq!(
            exit_codes_help(),
            "Exit codes:\n  0  success\n  1  runtime error (observation failed, a write failed)\n  \
             2  usage or configuration error\n  3  the sched_hint device is missing (ioctl \
             backend)\n  4  permission denied (needs root or CAP_SYS_NICE)"
        );
    }

    #[test]
    fn messages_are_lower_case_without_trailing_period() {
        let e = Error::DeviceMissing("/dev/sched_hint".into());
        let msg = e.to_string();
        assert!(msg.starts_with("device /dev/sched_hint is missing"));
        assert!(!msg.ends_with('.'));
    }
}
