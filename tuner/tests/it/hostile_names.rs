//! Names chosen by other users reach the terminal escaped (issue 19, reproduction 6).

use tuner::observe::synthetic::ScratchDir;

use crate::support::{
    explain, fixture_copy, host_config, once_json, row, run, stderr, stdout, tuner,
};

const EVIL: &str = "\x1b[31mRED\n9 sshd";

/// The fixture host with process 500 renamed to [`EVIL`] (comm and cmdline), and a config
/// that reads it.
fn evil_host() -> (ScratchDir, std::path::PathBuf) {
    let (dir, host) = fixture_copy("it-evil");
    let edit = |rel: &str, from: &str, to: &str| {
        let p = host.join(rel);
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains(from), "{rel} holds {from:?}");
        std::fs::write(&p, text.replace(from, to)).unwrap();
    };
    edit("proc/500/stat", "(llama-server)", &format!("({EVIL})"));
    edit("proc/500/comm", "llama-server", EVIL);
    edit("proc/500/cmdline", "-m\0", &format!("{EVIL}\0"));
    let cfg = host_config(dir.path(), &host, &[], "");
    (dir, cfg)
}

fn assert_no_fake_row(out: &str) {
    assert!(
        !out.contains('\x1b'),
        "an escape sequence reached the terminal:\n{out}"
    );
    assert!(
        !out.lines().any(|l| l.starts_with("9 sshd")),
        "a fake row:\n{out}"
    );
    assert!(
        out.contains("\\x1b[31mRED\\x0a9 sshd"),
        "the name, escaped:\n{out}"
    );
}

#[test]
fn a_hostile_comm_is_escaped_in_the_table_and_in_explain() {
    let (_dir, cfg) = evil_host();
    let o = run(tuner().arg("--config").arg(&cfg).args([
        "once",
        "--dry-run",
        "--all",
        "--sample-ms",
        "10",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_no_fake_row(&stdout(&o));

    let out = explain(&cfg, 500, "10");
    assert_no_fake_row(&out);
    let cmdline = out.lines().find(|l| l.contains("cmdline")).unwrap();
    assert!(
        cmdline.contains("\\x1b[31mRED\\x0a9 sshd /models"),
        "{cmdline}"
    );

    // JSON keeps the name as it is; serde escapes it.
    let v = once_json(&cfg, &["--dry-run"], "10");
    assert_eq!(row(&v, 500)["comm"], EVIL);
}
