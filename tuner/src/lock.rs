//! One daemon per host: `tuner run` holds an exclusive `flock` on a lock file for as long as it
//! runs. Two daemons would each take the other's writes for an admin's and fight over every
//! task; the kernel drops the lock when the holder dies however it dies, so a crash never
//! leaves a stale lock behind (a pid file alone would).
//!
//! The holder writes its pid into the file so that the second one can say who holds it.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another tuner is running: pid {holder} holds {}", path.display())]
    Held { path: PathBuf, holder: String },
    #[error("cannot take the lock {}: {message}", path.display())]
    Io { path: PathBuf, message: String },
}

/// Held while alive; dropping it (or exiting) releases the lock.
#[derive(Debug)]
pub struct InstanceLock {
    _file: Flock<File>,
    path: PathBuf,
}

impl InstanceLock {
    /// Takes the lock at `path`, creating the file (and its directory) when missing; fails at
    /// once, never waits, when another process holds it.
    pub fn acquire(path: &Path) -> Result<InstanceLock, LockError> {
        let io = |e: std::io::Error| LockError::Io {
            path: path.to_path_buf(),
            message: e.to_string().to_lowercase(),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map_err(io)?;
        let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((mut file, Errno::EWOULDBLOCK)) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = match text.trim() {
                    "" => "unknown (it has not written its pid yet)".to_owned(),
                    pid => pid.to_owned(),
                };
                return Err(LockError::Held {
                    path: path.to_path_buf(),
                    holder,
                });
            }
            Err((_, errno)) => return Err(io(errno.into())),
        };
        lock.set_len(0).map_err(io)?;
        lock.rewind().map_err(io)?;
        writeln!(lock, "{}", std::process::id()).map_err(io)?;
        Ok(InstanceLock {
            _file: lock,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::synthetic::ScratchDir;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid() {
        let dir = ScratchDir::new("lock").unwrap();
        let path = dir.path().join("run/tuner.lock");
        let first = InstanceLock::acquire(&path).unwrap();
        let e = InstanceLock::acquire(&path).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "another tuner is running: pid {} holds {}",
                std::process::id(),
                path.display()
            )
        );
        drop(first);
        let again = InstanceLock::acquire(&path).expect("released on drop");
        assert_eq!(again.path(), path);
    }
}
