use std::io;

use nix::errno::Errno;

use crate::cli::ConfigError;
use crate::hint::HintError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cpu {cpu} of --cpus {list} is not available to this process (allowed: {allowed})")]
    CpuUnavailable {
        cpu: usize,
        list: String,
        allowed: String,
    },
    #[error("cannot read the cpu affinity of this process: {0}")]
    Affinity(Errno),
    #[error("cannot pin thread {thread} to cpus {cpus}: {errno}")]
    Pin {
        thread: String,
        cpus: String,
        errno: Errno,
    },
    #[error(transparent)]
    Hint(#[from] HintError),
    #[error("cannot give tid {tid} a {slice_us} us slice with sched_setattr: {errno}")]
    Slice {
        tid: i32,
        slice_us: u64,
        errno: Errno,
    },
    #[error("cannot start thread {name}: {source}")]
    Spawn { name: String, source: io::Error },
    #[error("benchmark threads did not start within {0} s")]
    StartupTimeout(u64),
    #[error("futex call failed in thread {thread}: {source}")]
    Futex { thread: String, source: io::Error },
    #[error("cannot wait for SIGUSR1: {0}")]
    Signal(Errno),
    #[error("thread {0} panicked")]
    Panicked(String),
}

impl Error {
    /// Usage errors exit with 2, like clap's own; everything else with 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) => 2,
            _ => 1,
        }
    }
}
