//! Issue 20, reproduction 1: an unprivileged user's process gains no priority by its name.
//! Documentation/tuner-trust-model.md is the model these tests hold the tuner to.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use crate::support::{class_of, fixture_copy, host_config, once_json, sleep_binary, write};
use crate::trust_live::{is_root, NOBODY};

/// `dir/name`: a copy of sleep, owned (with `dir`) by nobody where the tests run as root;
/// otherwise by the test user, which no more vouches for it.
fn impostor(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::copy(sleep_binary(), &path).unwrap();
    if is_root() {
        std::os::unix::fs::chown(dir, Some(NOBODY), Some(NOBODY)).unwrap();
        std::os::unix::fs::chown(&path, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    path
}

/// Rewrites fixture process `pid` as `comm` run by `uid` from `exe`, seen from the host's `/`.
fn fake_process(host: &Path, pid: u32, comm: &str, uid: u32, exe: &Path) {
    let dir = host.join("proc").join(pid.to_string());
    let old = std::fs::read_to_string(dir.join("comm")).unwrap();
    let old = old.trim_end();
    let mut files = vec![dir.join("stat"), dir.join("status"), dir.join("comm")];
    if let Ok(tasks) = std::fs::read_dir(dir.join("task")) {
        for t in tasks.flatten() {
            files.extend([t.path().join("stat"), t.path().join("status")]);
        }
    }
    for f in files.iter().filter(|f| f.exists()) {
        let mut text = std::fs::read_to_string(f).unwrap();
        text = text.replace(&format!("({old})"), &format!("({comm})"));
        text = text.replace(&format!("Name:\t{old}"), &format!("Name:\t{comm}"));
        if f.ends_with("comm") {
            text = format!("{comm}\n");
        }
        let text: Vec<String> = text
            .lines()
            .map(|l| match l.split_once(':') {
                Some(("Uid" | "Gid", _)) => {
                    format!("{}:\t{uid}\t{uid}\t{uid}\t{uid}", &l[..3])
                }
                _ => l.to_owned(),
            })
            .collect();
        std::fs::write(f, text.join("\n") + "\n").unwrap();
    }
    std::fs::write(dir.join("cmdline"), format!("{comm}\0")).unwrap();
    let _ = std::fs::remove_file(dir.join("exe"));
    symlink(exe, dir.join("exe")).unwrap();
    let _ = std::fs::remove_file(dir.join("root"));
    symlink("/", dir.join("root")).unwrap();
}

/// Repro 1 on the fixture host: copies of sleep named pipewire and jackd, run by nobody from
/// a directory nobody owns, get no raising class; a root-owned binary named as a user rule
/// names it gets latency for uid 1000 but only the ceiling's throughput for nobody.
#[test]
fn impostor_names_get_no_raised_class() {
    let (dir, host) = fixture_copy("it-trust");
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    fake_process(&host, 400, "pipewire", NOBODY, &impostor(&bin, "pipewire"));
    fake_process(&host, 990, "jackd", NOBODY, &impostor(&bin, "jackd"));
    fake_process(&host, 600, "vim", 1000, &impostor(&bin, "vim"));
    let sleep = std::fs::canonicalize(sleep_binary()).unwrap();
    fake_process(&host, 800, "sleep", 1000, &sleep);
    fake_process(&host, 700, "sleep", NOBODY, &sleep);
    let rules = write(
        dir.path(),
        "sleepers.toml",
        "[[rule]]\nname = \"sleeper\"\ncomm = [\"sleep\"]\nclass = \"latency\"\n",
    );
    let cfg = host_config(dir.path(), &host, &[&rules], "");
    let v = once_json(&cfg, &["--dry-run"], "10");
    let (pipewire, jackd, vim) = (class_of(&v, 400), class_of(&v, 990), class_of(&v, 600));
    println!("impostors: pipewire={pipewire} jackd={jackd} vim={vim}");
    for (name, class) in [("pipewire", &pipewire), ("jackd", &jackd), ("vim", &vim)] {
        assert!(
            !matches!(class.as_str(), "latency" | "interactive"),
            "a user's copy of sleep named {name} got {class}"
        );
    }
    let sleep_root_owned = std::fs::metadata(&sleep)
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    if sleep_root_owned {
        assert_eq!(class_of(&v, 800), "latency", "uid 1000's root-owned sleep");
        assert_eq!(class_of(&v, 700), "throughput", "nobody's ceiling");
    } else {
        println!(
            "skipped the trusted-binary half: {} is not root's",
            sleep.display()
        );
    }
}

/// Repro 7: one byte that is not UTF-8 in an argument hid the whole command line, so an
/// admin's `[[manual]]` entry on it no longer matched (and the process fell to whatever
/// else it looked like).
#[test]
fn a_non_utf8_argument_hides_nothing_from_manual_entries() {
    let (dir, host) = fixture_copy("it-utf8");
    std::fs::write(
        host.join("proc/800/cmdline"),
        b"/usr/bin/renderd\0--scene\0caf\xe9.blend\0--farm\0",
    )
    .unwrap();
    let cfg = host_config(
        dir.path(),
        &host,
        &[],
        "\n[[manual]]\nname = \"render-farm\"\ncmdline = [\"* --farm\"]\nclass = \"background\"\n",
    );
    let v = once_json(&cfg, &["--dry-run"], "10");
    assert_eq!(
        class_of(&v, 800),
        "background",
        "the [[manual]] entry did not match"
    );
}
