//! The state file on disk: read, replaced atomically, and updated under a lock so that the
//! daemon and `tuner hint` never lose each other's entries.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::{State, VERSION};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read the state file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the state file {} is not valid ({message}); it was left as it is: move it aside to start afresh", path.display())]
    Corrupt { path: PathBuf, message: String },
    #[error("the state file {} has version {found}, newer than version {known} that this tuner knows; it was left as it is", path.display())]
    FutureVersion {
        path: PathBuf,
        found: u32,
        known: u32,
    },
    #[error("cannot write the state file {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// How long an update waits for another writer (`tuner hint set`, a moment's work) before it
/// gives up.
const LOCK_WAIT: Duration = Duration::from_secs(1);

/// The state file at one path (`[daemon] state_file`).
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

/// Only the version, read before the rest so that a newer format is named as such.
#[derive(serde::Deserialize)]
struct Versioned {
    version: u32,
}

impl StateFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StateFile { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The state on disk; an absent file is an empty state.
    pub fn load(&self) -> Result<State, StateError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::default()),
            Err(source) => {
                return Err(StateError::Read {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let corrupt = |e: serde_json::Error| StateError::Corrupt {
            path: self.path.clone(),
            message: e.to_string(),
        };
        let v: Versioned = serde_json::from_str(&text).map_err(corrupt)?;
        if v.version > VERSION {
            return Err(StateError::FutureVersion {
                path: self.path.clone(),
                found: v.version,
                known: VERSION,
            });
        }
        serde_json::from_str(&text).map_err(corrupt)
    }

    /// Replaces the file with `state`: a temporary file beside it, fsync, rename over it,
    /// fsync of the directory. On any failure the old file stays as it was.
    pub fn save(&self, state: &State) -> Result<(), StateError> {
        let werr = |source| StateError::Write {
            path: self.path.clone(),
            source,
        };
        let dir = self.dir();
        std::fs::create_dir_all(&dir).map_err(werr)?;
        let text = serde_json::to_vec_pretty(state)
            .map_err(|e| werr(std::io::Error::other(e.to_string())))?;
        let name = self
            .path
            .file_name()
            .map_or("state.json".into(), |n| n.to_string_lossy().into_owned());
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let written = (|| {
            // Writable by its owner only, whatever the umask: a restore puts back the prior
            // settings it records, so whoever can write it could have them written.
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o644)
                .open(&tmp)?;
            f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
            f.write_all(&text)?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            File::open(&dir)?.sync_all()
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written.map_err(werr)
    }

    /// Reads, changes and writes back the state while holding the lock file beside it, so
    /// two writers (the daemon, `tuner hint`) take turns. `change` returns what the caller
    /// wants back; the file is written only when `change` succeeds.
    pub fn update<T, E: From<StateError>>(
        &self,
        change: impl FnOnce(&mut State) -> Result<T, E>,
    ) -> Result<T, E> {
        let _lock = self.lock()?;
        let mut state = self.load()?;
        let out = change(&mut state)?;
        self.save(&state)?;
        Ok(out)
    }

    fn dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    fn lock(&self) -> Result<Flock<File>, StateError> {
        let werr = |source| StateError::Write {
            path: self.path.clone(),
            source,
        };
        std::fs::create_dir_all(self.dir()).map_err(werr)?;
        let mut lock_path = self.path.clone().into_os_string();
        lock_path.push(".lock");
        // Only its owner may open it: flock needs no more than a descriptor open for reading,
        // and a reader holding it would stop every update (the daemon's journal among them).
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(werr)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(werr)?;
        // Bounded: a writer that holds it longer than an update takes is stuck or hostile, and
        // the caller must go on (the daemon writes nothing it cannot record, and exits).
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => return Ok(lock),
                Err((back, Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                    f = back;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err((_, Errno::EWOULDBLOCK)) => {
                    return Err(werr(std::io::Error::new(
                        std::io::ErrorKind::WouldBlock,
                        format!(
                            "{} is held by another process for over {} ms",
                            Path::new(&lock_path).display(),
                            LOCK_WAIT.as_millis()
                        ),
                    )))
                }
                Err((_, errno)) => return Err(werr(errno.into())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hint::{test_hint, HintClass, HintSource};
    use crate::state::{Entry, Settings, TaskRecord, Writer};

    fn entry(pid: i32) -> Entry {
        let s = Settings {
            policy: 0,
            nice: 0,
            slice_ns: None,
            cpus: None,
        };
        Entry {
            pid,
            start_ticks: 42,
            comm: "rsync".into(),
            hint: test_hint(HintClass::Background, HintSource::Rule),
            backend: "stock".into(),
            per_thread: false,
            by: Writer::Daemon,
            since_unix_ms: 1,
            written_unix_ms: 1,
            tasks: vec![TaskRecord {
                tid: pid,
                written: Settings {
                    policy: 5,
                    ..s.clone()
                },
                prior: s,
            }],
            thread_classes: Vec::new(),
        }
    }

    #[test]
    fn round_trip_and_an_absent_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let f = StateFile::new(dir.path().join("sub/state.json"));
        assert_eq!(f.load().unwrap(), State::default());
        let mut st = State::default();
        st.entries.push(entry(10));
        f.save(&st).unwrap();
        assert_eq!(f.load().unwrap(), st);
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(
            names,
            vec!["state.json"],
            "no temporary file is left behind"
        );
    }

    #[test]
    fn a_corrupt_file_is_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, "{\"version\": 1, \"entries\": [tru").unwrap();
        let f = StateFile::new(&path);
        let e = f.load().unwrap_err().to_string();
        assert!(
            e.contains("is not valid") && e.contains("left as it is"),
            "{e}"
        );
        let r: Result<(), StateError> = f.update(|_| Ok(()));
        assert!(r.is_err());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"version\": 1, \"entries\": [tru",
            "nothing is lost"
        );
    }

    #[test]
    fn a_future_version_is_refused_by_name_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let text = "{\"version\": 2, \"entries\": [], \"new_field\": {}}";
        std::fs::write(&path, text).unwrap();
        let f = StateFile::new(&path);
        let e = f.load().unwrap_err().to_string();
        assert!(e.contains("has version 2, newer than version 1"), "{e}");
        let r: Result<(), StateError> = f.update(|_| Ok(()));
        assert!(r.is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }

    /// Issue 19, hostile review: the lock beside the state file could be opened by anyone
    /// (0644), and flock needs only a descriptor open for reading: another user holding it
    /// stopped every update, the daemon's journal (and with it the event loop, SIGTERM
    /// included) for good. Only the owner may open it now, and an update gives up after a
    /// bounded wait. The state file is writable by its owner only, whatever the umask.
    #[test]
    fn the_lock_is_the_owners_and_a_holder_cannot_stop_updates_for_good() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let f = StateFile::new(&path);
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::empty());
        let r: Result<(), StateError> = f.update(|st| {
            st.entries.push(entry(10));
            Ok(())
        });
        nix::sys::stat::umask(old);
        r.unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let lock_path = dir.path().join("state.json.lock");
        assert_eq!(mode(&lock_path), 0o600);
        assert_eq!(mode(&path), 0o644);

        let held = Flock::lock(File::open(&lock_path).unwrap(), FlockArg::LockExclusive).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let f2 = f.clone();
        std::thread::spawn(move || {
            let r: Result<(), StateError> = f2.update(|_| Ok(()));
            let _ = tx.send(r.map_err(|e| e.to_string()));
        });
        let r = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("an update waits a bounded time for the lock");
        let e = r.unwrap_err();
        assert!(e.contains("is held by another process"), "{e}");
        drop(held);
        assert_eq!(f.load().unwrap().entries, vec![entry(10)], "nothing lost");
    }

    #[test]
    fn an_unwritable_directory_is_a_clear_error_and_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let f = StateFile::new(&path);
        let mut st = State::default();
        st.entries.push(entry(10));
        f.save(&st).unwrap();
        // A directory where the file's directory should be: creating the temporary file
        // fails for root and non-root alike.
        let blocked = StateFile::new(path.join("state.json"));
        let e = blocked.save(&st).unwrap_err().to_string();
        assert!(e.starts_with("cannot write the state file"), "{e}");
        assert_eq!(f.load().unwrap(), st);
    }
}
