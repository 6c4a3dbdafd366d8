//! The answer cache: one model answer per binary identity and owner, persisted as JSON.
//!
//! A binary's identity is its executable (path, device, inode, size, mtime) plus a command-line
//! pattern and the cgroup, with digit runs folded so that `worker 17` and `worker 18`, or
//! `session-3.scope` and `session-4.scope`, share an answer. A new build of the binary changes
//! its inode, size or mtime, so it is asked about again and its old answer is dropped.
//!
//! The process's uid is part of the key: the model's answer was drawn from facts its owner
//! chose (a command line that reads as an instruction, say), so it stands for that owner's
//! processes alone and one user cannot plant an answer for another's
//! (Documentation/tuner-trust-model.md).
//!
//! The cache stores the model's raw class; ceilings are applied each time an answer is used,
//! for the process at hand. The file is replaced atomically (write, fsync, rename), and read
//! only when it is a regular file that no other user can write, up to `MAX_FILE_BYTES`.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::classify::external::ProcFacts;
use crate::hint::HintClass;

use super::prompt::sanitise;
use super::schema::{class_from_name, class_name};

const CACHE_VERSION: u32 = 1;
const MAX_PATTERN_CHARS: usize = 96;
/// Beyond this many entries the oldest answers are forgotten.
pub const MAX_ENTRIES: usize = 8192;
/// A file of `MAX_ENTRIES` entries is a few MiB; a larger one is not ours.
const MAX_FILE_BYTES: u64 = 32 << 20;
/// The uid of entries written before answers were kept per uid: matches no process.
const UNKNOWN_UID: u32 = u32::MAX;

fn unknown_uid() -> u32 {
    UNKNOWN_UID
}

/// What makes two processes "the same program" for the cache.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BinaryKey {
    pub exe: String,
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
    /// `cmdline_pattern` of the command line.
    pub pattern: String,
    /// The cgroup path with digit runs folded.
    pub cgroup: String,
    /// The owner of the processes the answer is for.
    #[serde(default = "unknown_uid")]
    pub uid: u32,
}

impl BinaryKey {
    /// Same program, place and pattern, whatever the file's stamp.
    fn same_slot(&self, o: &BinaryKey) -> bool {
        self.exe == o.exe
            && self.pattern == o.pattern
            && self.cgroup == o.cgroup
            && self.uid == o.uid
    }
}

/// The identity of the process's binary, or `None` when it has no executable (kernel threads)
/// or the file cannot be examined. `/proc/PID/exe` is preferred while it still names the same
/// path (it reaches the mapped file even when the path was replaced or lives in another mount
/// namespace); otherwise the path itself.
pub fn identify(f: &ProcFacts) -> Option<BinaryKey> {
    let exe = f.exe.as_ref()?;
    let link = PathBuf::from(format!("/proc/{}/exe", f.pid));
    let meta = match fs::read_link(&link) {
        Ok(target) if &target == exe => fs::metadata(&link).ok(),
        _ => None,
    }
    .or_else(|| fs::metadata(exe).ok())?;
    if !meta.is_file() {
        return None;
    }
    Some(BinaryKey {
        exe: exe.to_string_lossy().into_owned(),
        dev: meta.dev(),
        ino: meta.ino(),
        size: meta.size(),
        mtime_ns: meta
            .mtime()
            .saturating_mul(1_000_000_000)
            .saturating_add(meta.mtime_nsec()),
        pattern: cmdline_pattern(&f.comm, &f.cmdline),
        cgroup: fold_digits(&sanitise(&f.cgroup, 256)),
        uid: f.uid,
    })
}

/// The program name (basename of argv[0], else comm) and the first argument that is not an
/// option (a script, a subcommand, a module), its digit runs folded to `#`.
/// `python3 -m http.server 8000` → `python3 http.server`; `sleep 100` → `sleep #`. Spaces in
/// the program name become `_` (`tmux: server` → `tmux:_server`).
pub fn cmdline_pattern(comm: &str, cmdline: &[String]) -> String {
    let prog = cmdline
        .first()
        .map(|a| a.rsplit('/').next().unwrap_or(a))
        .filter(|s| !s.is_empty())
        .unwrap_or(comm);
    // The first space separates the program from the argument, so none may stay in the name.
    let mut p = sanitise(prog, MAX_PATTERN_CHARS).replace(' ', "_");
    if let Some(arg) = cmdline
        .iter()
        .skip(1)
        .take(8)
        .find(|a| !a.starts_with('-') && !a.is_empty())
    {
        p.push(' ');
        p.push_str(&fold_digits(arg));
    }
    sanitise(&p, MAX_PATTERN_CHARS)
}

fn fold_digits(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_digits = false;
    for c in s.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('#');
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
    out
}

/// One cached answer as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheEntry {
    #[serde(flatten)]
    pub key: BinaryKey,
    /// The model's class, before any ceiling.
    pub class: String,
    pub model: String,
    /// The sanitised comm of the process that was asked about, for reviewers.
    pub comm: String,
    /// Its cgroup as it was (the key's is folded): which ceilings an export applies.
    #[serde(default)]
    pub cgroup_seen: String,
    pub answered_at_unix: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct CacheFile {
    version: u32,
    entries: Vec<CacheEntry>,
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cannot read llm cache {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("llm cache {path} is not valid: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("cannot write llm cache {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("llm cache {path} is not trusted: {reason}")]
    Untrusted { path: PathBuf, reason: String },
}

#[derive(Debug, Default)]
pub struct AnswerCache {
    path: Option<PathBuf>,
    entries: HashMap<BinaryKey, CacheEntry>,
    dirty: bool,
}

impl AnswerCache {
    /// An empty cache that is never written.
    pub fn in_memory() -> Self {
        AnswerCache::default()
    }

    /// Loads the cache at `path`; a missing file is an empty cache. A file that another
    /// user could have written, or that is not a regular file (a FIFO would block the
    /// start-up), or that is larger than any cache the tuner writes, is refused.
    pub fn load(path: &Path) -> Result<Self, CacheError> {
        let mut c = AnswerCache {
            path: Some(path.to_path_buf()),
            ..Default::default()
        };
        let read_err = |source| CacheError::Read {
            path: path.into(),
            source,
        };
        let untrusted = |reason: String| CacheError::Untrusted {
            path: path.into(),
            reason,
        };
        // O_NONBLOCK: opening a FIFO returns at once; the type is checked on the open file.
        let file = match fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(c),
            Err(source) => return Err(read_err(source)),
        };
        let md = file.metadata().map_err(read_err)?;
        if !md.is_file() {
            return Err(untrusted("not a regular file".into()));
        }
        let own = nix::unistd::geteuid().as_raw();
        if (md.uid() != 0 && md.uid() != own) || md.mode() & 0o022 != 0 {
            return Err(untrusted(format!(
                "owner uid {}, mode {:04o}: another user could have written its answers",
                md.uid(),
                md.mode() & 0o7777
            )));
        }
        if md.len() > MAX_FILE_BYTES {
            return Err(untrusted(format!(
                "{} bytes, more than the {MAX_FILE_BYTES} a cache can take",
                md.len()
            )));
        }
        let mut text = String::new();
        io::Read::read_to_string(&mut io::Read::take(file, MAX_FILE_BYTES), &mut text)
            .map_err(read_err)?;
        let parse = |reason: String| CacheError::Parse {
            path: path.into(),
            reason,
        };
        let file: CacheFile = serde_json::from_str(&text).map_err(|e| parse(e.to_string()))?;
        if file.version != CACHE_VERSION {
            return Err(parse(format!(
                "version {} (want {CACHE_VERSION})",
                file.version
            )));
        }
        let mut ownerless = 0;
        for e in file.entries {
            if e.key.uid == UNKNOWN_UID {
                ownerless += 1;
            } else if class_from_name(&e.class).is_some() {
                c.entries.insert(e.key.clone(), e);
            }
        }
        if ownerless > 0 {
            // Answers from before they were kept per uid: whose they are is not known.
            tracing::info!(
                path = %path.display(),
                ownerless,
                "llm cache entries without a uid dropped; those binaries are asked again"
            );
            c.dirty = true;
        }
        Ok(c)
    }

    /// An empty cache that will replace whatever is at `path` on the next save: for a file that
    /// could not be loaded.
    pub fn fresh_at(path: &Path) -> Self {
        AnswerCache {
            path: Some(path.to_path_buf()),
            ..Default::default()
        }
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, key: &BinaryKey) -> Option<HintClass> {
        self.entries
            .get(key)
            .and_then(|e| class_from_name(&e.class))
    }

    /// Records an answer. Older answers for the same program, place and pattern but another
    /// file stamp (a previous build) are dropped.
    pub fn insert(
        &mut self,
        key: BinaryKey,
        class: HintClass,
        model: &str,
        comm: &str,
        cgroup: &str,
    ) {
        let Some(name) = class_name(class) else {
            return;
        };
        self.entries.retain(|k, _| k == &key || !k.same_slot(&key));
        let entry = CacheEntry {
            key: key.clone(),
            class: name.to_string(),
            model: sanitise(model, 128),
            comm: sanitise(comm, 32),
            cgroup_seen: sanitise(cgroup, 256),
            answered_at_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        };
        self.entries.insert(key, entry);
        if self.entries.len() > MAX_ENTRIES {
            let mut ages: Vec<_> = self
                .entries
                .iter()
                .map(|(k, e)| (e.answered_at_unix, k.clone()))
                .collect();
            ages.sort();
            for (_, k) in ages.into_iter().take(self.entries.len() - MAX_ENTRIES) {
                self.entries.remove(&k);
            }
        }
        self.dirty = true;
    }

    /// Entries in a stable order (by key), for export and for the file.
    pub fn entries(&self) -> Vec<&CacheEntry> {
        let mut v: Vec<_> = self.entries.values().collect();
        v.sort_by(|a, b| a.key.cmp(&b.key));
        v
    }

    /// Writes the cache if it changed since it was loaded or last saved.
    pub fn save(&mut self) -> Result<(), CacheError> {
        match self.take_save() {
            Some(p) => p.write(),
            None => Ok(()),
        }
    }

    /// The bytes to write if the cache changed, so the write can happen outside a lock or on a
    /// blocking thread. The cache counts as saved from here on.
    pub fn take_save(&mut self) -> Option<PendingSave> {
        let path = self.path.clone()?;
        if !self.dirty {
            return None;
        }
        let file = CacheFile {
            version: CACHE_VERSION,
            entries: self.entries().into_iter().cloned().collect(),
        };
        let mut text = serde_json::to_string_pretty(&file).unwrap_or_default();
        text.push('\n');
        self.dirty = false;
        Some(PendingSave {
            path,
            data: text.into_bytes(),
        })
    }
}

/// A serialised cache waiting to be written.
#[derive(Debug)]
pub struct PendingSave {
    path: PathBuf,
    data: Vec<u8>,
}

impl PendingSave {
    pub fn write(self) -> Result<(), CacheError> {
        write_atomic(&self.path, &self.data).map_err(|source| CacheError::Write {
            path: self.path.clone(),
            source,
        })
    }
}

/// Writes `data` to a temporary file next to `path`, syncs it and renames it over `path`.
fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    // Unique per process and per write, so concurrent saves never share a temporary file.
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}.{seq}.tmp", std::process::id()));
    let res = (|| {
        // The file holds other users' command-line patterns: root's to read.
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(pid: i32, exe: &Path, cmdline: &[&str], cgroup: &str) -> ProcFacts {
        ProcFacts {
            pid,
            uid: 0,
            comm: "prog".into(),
            exe: Some(exe.to_path_buf()),
            cmdline: cmdline.iter().map(|s| s.to_string()).collect(),
            cgroup: cgroup.into(),
            nr_threads: 1,
            cpu_pct: 0.0,
            voluntary_ctxsw_per_s: 0.0,
            involuntary_ctxsw_per_s: 0.0,
            rss_kib: 0,
        }
    }

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn patterns() {
        assert_eq!(
            cmdline_pattern(
                "c",
                &args(&["/usr/bin/python3", "-m", "http.server", "8000"])
            ),
            "python3 http.server"
        );
        assert_eq!(cmdline_pattern("c", &args(&["sleep", "100"])), "sleep #");
        assert_eq!(cmdline_pattern("kworker/0:1", &[]), "kworker/0:1");
        assert_eq!(cmdline_pattern("Web Content", &[]), "Web_Content");
        assert_eq!(cmdline_pattern("c", &args(&["make", "-j8"])), "make");
        assert_eq!(cmdline_pattern("c", &args(&["a\nb", "x\x1by"])), "a_b x y");
        assert!(
            cmdline_pattern("c", &args(&["x", &"y".repeat(500)]))
                .chars()
                .count()
                <= MAX_PATTERN_CHARS
        );
    }

    #[test]
    fn key_follows_the_file_and_folds_digits() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("prog");
        fs::write(&exe, b"v1").unwrap();
        // A pid that cannot exist, so the path itself is examined.
        let a = identify(&facts(
            i32::MAX,
            &exe,
            &["prog", "17"],
            "/user.slice/session-3.scope",
        ))
        .unwrap();
        let b = identify(&facts(
            i32::MAX,
            &exe,
            &["prog", "18"],
            "/user.slice/session-4.scope",
        ))
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.cgroup, "/user.slice/session-#.scope");
        let c = identify(&facts(
            i32::MAX,
            &exe,
            &["prog", "serve"],
            "/user.slice/session-3.scope",
        ))
        .unwrap();
        assert_ne!(a, c, "another pattern");
        fs::write(&exe, b"version 2").unwrap();
        let d = identify(&facts(
            i32::MAX,
            &exe,
            &["prog", "17"],
            "/user.slice/session-3.scope",
        ))
        .unwrap();
        assert_ne!(a, d, "the binary changed");
        assert_eq!(
            identify(&facts(i32::MAX, &dir.path().join("gone"), &[], "/")),
            None
        );
        assert_eq!(
            identify(&facts(i32::MAX, dir.path(), &[], "/")),
            None,
            "not a file"
        );
    }

    /// Issue 20, reproduction 3: one user's answer is not another's.
    #[test]
    fn answers_are_kept_per_uid() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("prog");
        fs::write(&exe, b"v1").unwrap();
        let mut f = facts(i32::MAX, &exe, &["prog"], "/");
        let mine = identify(&f).unwrap();
        f.uid = 65534;
        let theirs = identify(&f).unwrap();
        assert_ne!(mine, theirs);
        let mut c = AnswerCache::in_memory();
        c.insert(theirs.clone(), HintClass::Background, "m", "prog", "/");
        assert_eq!(c.get(&mine), None);
        c.insert(mine.clone(), HintClass::Batch, "m", "prog", "/");
        assert_eq!((c.get(&theirs), c.len()), (Some(HintClass::Background), 2));
    }

    #[test]
    fn a_file_others_could_write_a_fifo_and_ownerless_entries_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("prog");
        fs::write(&exe, b"v1").unwrap();
        let path = dir.path().join("c.json");
        let mut c = AnswerCache::load(&path).unwrap();
        let k = identify(&facts(i32::MAX, &exe, &["prog"], "/")).unwrap();
        c.insert(k.clone(), HintClass::Latency, "m", "prog", "/");
        c.save().unwrap();
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
        assert!(matches!(
            AnswerCache::load(&path),
            Err(CacheError::Untrusted { .. })
        ));
        // An entry from before answers were kept per uid.
        let text = fs::read_to_string(&path)
            .unwrap()
            .replace("\"uid\": 0,", "");
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(AnswerCache::load(&path).unwrap().is_empty());

        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let e = AnswerCache::load(&fifo).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }

    #[test]
    fn own_exe_is_identified_through_proc() {
        let exe = std::env::current_exe().unwrap();
        let me = facts(std::process::id() as i32, &exe, &["x"], "/");
        let k = identify(&me).unwrap();
        assert_eq!(k.ino, fs::metadata(&exe).unwrap().ino());
    }

    #[test]
    fn save_load_round_trip_and_replacement() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/llm-cache.json");
        let exe = dir.path().join("prog");
        fs::write(&exe, b"v1").unwrap();
        let k1 = identify(&facts(i32::MAX, &exe, &["prog"], "/")).unwrap();
        let mut c = AnswerCache::load(&path).unwrap();
        assert!(c.is_empty());
        c.insert(k1.clone(), HintClass::Batch, "m", "prog\n", "/");
        c.save().unwrap();
        let c2 = AnswerCache::load(&path).unwrap();
        assert_eq!(c2.get(&k1), Some(HintClass::Batch));
        assert_eq!(c2.entries()[0].comm, "prog");

        fs::write(&exe, b"version 2").unwrap();
        let k2 = identify(&facts(i32::MAX, &exe, &["prog"], "/")).unwrap();
        let mut c3 = c2;
        assert_eq!(c3.get(&k2), None);
        c3.insert(k2.clone(), HintClass::Interactive, "m", "prog", "/");
        assert_eq!(c3.len(), 1, "the old build's answer is gone");
        c3.save().unwrap();
        assert_eq!(
            AnswerCache::load(&path).unwrap().get(&k2),
            Some(HintClass::Interactive)
        );
        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left");
    }

    #[test]
    fn corrupt_file_is_an_error_and_none_class_is_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        fs::write(&path, b"{\"version\":1,\"entries\":[").unwrap();
        assert!(matches!(
            AnswerCache::load(&path),
            Err(CacheError::Parse { .. })
        ));
        fs::write(&path, b"{\"version\":9,\"entries\":[]}").unwrap();
        assert!(matches!(
            AnswerCache::load(&path),
            Err(CacheError::Parse { .. })
        ));
        let mut c = AnswerCache::fresh_at(&path);
        let exe = std::env::current_exe().unwrap();
        let k = identify(&facts(i32::MAX, &exe, &[], "/")).unwrap();
        c.insert(k.clone(), HintClass::None, "m", "x", "/");
        assert_eq!(c.get(&k), None);
    }
}
