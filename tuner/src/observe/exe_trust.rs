//! Whether a process's executable is one that no unprivileged user can have written or put
//! in place: the basis for granting raising classes by name (Documentation/tuner-trust-model.md).
//!
//! Trusted means: the file is owned by root and not group- or world-writable, and so is every
//! directory from it up to the process's root directory. A copy of `/bin/sleep` named
//! `pipewire` in a user's directory fails (the copy or its directory is the user's), and so
//! does one in `/tmp` (world-writable). The path is looked up through `<pid dir>/root`, the
//! process's own view of the file system, so a process in another mount namespace is judged
//! by the files it really runs; the file itself is judged through `<pid dir>/exe`, the inode
//! that runs, which no rename or bind mount can swap.
//!
//! ```text
//! /proc/4711/exe  -> /usr/bin/pipewire   root:root 0755  (and /usr/bin, /usr, / the same)
//! exe_trusted(Path::new("/proc/4711"), Path::new("/usr/bin/pipewire")) == true
//! ```

use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path};

const GROUP_OR_WORLD_WRITABLE: u32 = 0o022;

fn root_only(md: &std::fs::Metadata) -> bool {
    md.uid() == 0 && md.mode() & GROUP_OR_WORLD_WRITABLE == 0
}

/// `pid_dir` is `/proc/<pid>` (or a fixture's); `exe` the target of its `exe` link. Any
/// file that cannot be read makes the answer `false`.
pub fn exe_trusted(pid_dir: &Path, exe: &Path) -> bool {
    // The inode that runs: a file replaced after exec is judged as it was run.
    match std::fs::metadata(pid_dir.join("exe")) {
        Ok(md) if md.is_file() && root_only(&md) => {}
        _ => return false,
    }
    dirs_root_only(&pid_dir.join("root"), exe)
}

/// The same judgement for a path that no process runs now (an exported rule's executable),
/// seen from the file system at `root`.
pub fn path_trusted(root: &Path, exe: &Path) -> bool {
    let rel = exe.strip_prefix("/").unwrap_or(exe);
    match std::fs::metadata(root.join(rel)) {
        Ok(md) if md.is_file() && root_only(&md) => {}
        _ => return false,
    }
    dirs_root_only(root, exe)
}

/// Every directory from `exe`'s up to `/`, under `root`, is root's and only root's to write.
fn dirs_root_only(root: &Path, exe: &Path) -> bool {
    // "(deleted)" and relative targets name no directory chain that can be checked.
    if !exe.is_absolute() || exe.as_os_str().as_encoded_bytes().ends_with(b" (deleted)") {
        return false;
    }
    if exe
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return false;
    }
    let mut dir = exe.parent();
    while let Some(d) = dir {
        let rel = d.strip_prefix("/").unwrap_or(d);
        // The kernel names the exe by its resolved path, so a symlink here comes from a
        // fixture or a race; it counts only when root owns the link too.
        let path = root.join(rel);
        match std::fs::metadata(&path) {
            Ok(md) if md.is_dir() && root_only(&md) => {}
            _ => return false,
        }
        if let Ok(l) = std::fs::symlink_metadata(&path) {
            if l.file_type().is_symlink() && l.uid() != 0 {
                return false;
            }
        }
        dir = d.parent();
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    use crate::observe::synthetic::ScratchDir;

    /// A pid dir whose `exe` names `exe` and whose `root` is the host's `/`.
    fn pid_dir(scratch: &Path, exe: &Path) -> std::path::PathBuf {
        let d = scratch.join("proc-4711");
        std::fs::create_dir_all(&d).unwrap();
        symlink(exe, d.join("exe")).unwrap();
        symlink("/", d.join("root")).unwrap();
        d
    }

    fn system_binary() -> Option<&'static Path> {
        ["/usr/bin/sleep", "/bin/sleep"]
            .into_iter()
            .map(Path::new)
            .find(|p| std::fs::metadata(p).is_ok_and(|m| root_only(&m)))
    }

    #[test]
    fn a_root_owned_system_binary_is_trusted() {
        let Some(bin) = system_binary() else {
            eprintln!("skipped: no root-owned sleep binary on this host");
            return;
        };
        let s = ScratchDir::new("exe-trust").unwrap();
        assert!(exe_trusted(&pid_dir(s.path(), bin), bin));
        assert!(path_trusted(Path::new("/"), bin));
    }

    #[test]
    fn a_copy_in_a_temp_dir_is_not() {
        let Some(bin) = system_binary() else {
            eprintln!("skipped: no root-owned sleep binary on this host");
            return;
        };
        let s = ScratchDir::new("exe-trust").unwrap();
        let copy = s.path().join("pipewire");
        std::fs::copy(bin, &copy).unwrap();
        // Owned by whoever runs the tests, under the world-writable temp dir: either fails.
        assert!(!exe_trusted(&pid_dir(s.path(), &copy), &copy));
        assert!(!path_trusted(Path::new("/"), &copy));
    }

    #[test]
    fn odd_paths_and_missing_files_are_not() {
        let s = ScratchDir::new("exe-trust").unwrap();
        let d = pid_dir(s.path(), Path::new("/usr/bin/../bin/sleep"));
        assert!(!exe_trusted(&d, Path::new("/usr/bin/../bin/sleep")));
        assert!(!exe_trusted(
            &s.path().join("no-such-pid"),
            Path::new("/usr/bin/sleep")
        ));
        assert!(!exe_trusted(&d, Path::new("/usr/bin/sleep (deleted)")));
    }
}
