//! `tuner status`: what this machine offers the tuner.

use std::path::Path;

use serde::Serialize;

use crate::app;
use crate::apply::{
    self,
    ioctl::{DeviceInfo, IoctlSink},
};
use crate::cli::StatusArgs;
use crate::config::{Backend, DEFAULT_PATH};
use crate::error::Error;
use crate::hint::{HintClass, HintSource};
use crate::observe::sysfs::SysfsSource;
use crate::observe::{SchedHintSysfs, SysSource, Topology};
use crate::output::outln;
use crate::state::file::StateFile;
use crate::state::{State, ThreadClass, Writer, Yielded};

#[derive(Serialize)]
struct Status {
    config: String,
    rules: usize,
    backend: Backend,
    device_path: String,
    device_present: bool,
    device: Option<DeviceInfo>,
    device_error: Option<String>,
    sysfs: Option<SysfsView>,
    privileged: bool,
    nodes: Vec<NodeView>,
    state_file: String,
    state_error: Option<String>,
    /// The hints the state file records and the process still holds (same pid and start).
    applied: Vec<AppliedView>,
    /// Processes the tuner backed off from, and why.
    yielded: Vec<Yielded>,
}

#[derive(Serialize)]
struct AppliedView {
    pid: i32,
    tids: usize,
    comm: String,
    class: HintClass,
    node: Option<u32>,
    source: HintSource,
    since_unix_ms: u64,
    backend: String,
    by: Writer,
    /// Threads whose role gave them another class.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    thread_classes: Vec<ThreadClass>,
}

/// A name as a terminal may print it: control characters (escape sequences, newlines)
/// written out as escapes, so a process cannot forge rows or colours.
fn printable(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let esc: Vec<char> = if c.is_control() || c == '\\' {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            esc
        })
        .collect()
}

fn applied(state: &State) -> Vec<AppliedView> {
    state
        .entries
        .iter()
        .filter(|e| crate::sys::is_process(e.key()))
        .map(|e| AppliedView {
            pid: e.pid,
            tids: e.tasks.len().max(1),
            comm: e.comm.clone(),
            class: e.hint.class,
            node: e.hint.node,
            source: e.hint.source,
            since_unix_ms: e.since_unix_ms,
            backend: e.backend.clone(),
            by: e.by,
            thread_classes: e.thread_classes.clone(),
        })
        .collect()
}

#[derive(Serialize)]
struct SysfsView {
    enabled: Option<bool>,
    abi_version: Option<u32>,
    classes: Vec<(String, Vec<(String, String)>)>,
    stats: Vec<(String, String)>,
}

#[derive(Serialize)]
struct NodeView {
    id: u32,
    cpus: String,
    mem_total_mib: u64,
    mem_free_mib: u64,
    distances: Vec<u32>,
}

fn nodes(topo: &Topology) -> Vec<NodeView> {
    topo.nodes
        .iter()
        .map(|n| NodeView {
            id: n.id,
            cpus: n.cpus.to_string(),
            mem_total_mib: n.mem_total_kib / 1024,
            mem_free_mib: n.mem_free_kib / 1024,
            distances: n.distances.clone(),
        })
        .collect()
}

fn sysfs_view(s: SchedHintSysfs) -> SysfsView {
    SysfsView {
        enabled: s.enabled,
        abi_version: s.abi_version,
        classes: s.classes,
        stats: s.stats,
    }
}

pub fn status(path: Option<&Path>, args: StatusArgs) -> Result<(), Error> {
    let (cfg, rules) = app::load(path)?;
    let device = &cfg.daemon.device;
    let (device_info, device_error) = if device.exists() {
        match IoctlSink::open(device) {
            Ok(s) => (Some(s.info()), None),
            Err(e) => (None, Some(e.to_string())),
        }
    } else {
        (None, None)
    };
    // An unreadable state file is reported, not fatal: the rest of the status still holds.
    let (state, state_error) = match StateFile::new(&cfg.daemon.state_file).load() {
        Ok(s) => (s, None),
        Err(e) => (State::default(), Some(e.to_string())),
    };
    let mut sys = SysfsSource::new(&cfg.observe.sys_root);
    let topo = sys.topology()?;
    let st = Status {
        config: path.map_or_else(
            || {
                if Path::new(DEFAULT_PATH).exists() {
                    DEFAULT_PATH.to_owned()
                } else {
                    "built-in defaults".to_owned()
                }
            },
            |p| p.display().to_string(),
        ),
        rules: rules.len(),
        backend: apply::resolve(cfg.daemon.backend, device),
        device_path: device.display().to_string(),
        device_present: device.exists(),
        device: device_info,
        device_error,
        sysfs: sys.sched_hint().map(sysfs_view),
        privileged: apply::check_privileges().is_ok(),
        nodes: nodes(&topo),
        state_file: cfg.daemon.state_file.display().to_string(),
        state_error,
        applied: applied(&state),
        yielded: state
            .yielded
            .iter()
            .filter(|y| crate::sys::is_process((y.pid, y.start_ticks)))
            .cloned()
            .collect(),
    };
    if args.json {
        return super::print_json(&st);
    }
    outln!("config      {} ({} rules)", st.config, st.rules)?;
    outln!(
        "backend     {} (daemon.backend = {})",
        st.backend.as_str(),
        cfg.daemon.backend.as_str()
    )?;
    match (&st.device, &st.device_error) {
        (Some(d), _) => outln!(
            "device      {}: abi {}, {} classes, flags 0x{:x}, {}, nodes {:?}",
            st.device_path,
            d.abi_version,
            d.nr_classes,
            d.flags_supported,
            if d.enabled {
                "enabled"
            } else {
                "disabled (kill switch)"
            },
            d.online_nodes
        )?,
        (None, Some(e)) => outln!("device      {}: {e}", st.device_path)?,
        (None, None) => outln!(
            "device      {}: absent (stock kernel, or the module is not loaded)",
            st.device_path
        )?,
    }
    match &st.sysfs {
        Some(s) => {
            outln!(
                "sysfs       /sys/kernel/sched_hint: enabled {}, abi_version {}",
                s.enabled.map_or("?".into(), |e| (e as u8).to_string()),
                s.abi_version.map_or("?".into(), |v| v.to_string())
            )?;
            for (class, values) in &s.classes {
                let kv: Vec<String> = values.iter().map(|(k, v)| format!("{k}={v}")).collect();
                outln!("  class     {class:<12} {}", kv.join(" "))?;
            }
            for (k, v) in &s.stats {
                outln!("  stat      {k} = {v}")?;
            }
        }
        None => outln!("sysfs       /sys/kernel/sched_hint: absent")?,
    }
    outln!(
        "privileges  {}",
        if st.privileged {
            "root or CAP_SYS_NICE"
        } else {
            "unprivileged (only --dry-run and one's own processes)"
        }
    )?;
    for n in &st.nodes {
        outln!(
            "node{}       cpus {}, {} MiB of {} MiB free, distances {:?}",
            n.id,
            n.cpus,
            n.mem_free_mib,
            n.mem_total_mib,
            n.distances
        )?;
    }
    match &st.state_error {
        Some(e) => outln!("applied     unknown: {e}")?,
        None => outln!("applied     {} hints ({})", st.applied.len(), st.state_file)?,
    }
    if !st.applied.is_empty() {
        outln!(
            "  {:<8} {:>4} {:<16} {:<12} {:>4} {:<9} {:<14} {:<7} BY",
            "PID",
            "TIDS",
            "COMM",
            "CLASS",
            "NODE",
            "SOURCE",
            "SINCE",
            "BACKEND"
        )?;
    }
    let now = crate::state::unix_ms();
    for a in &st.applied {
        outln!(
            "  {:<8} {:>4} {:<16} {:<12} {:>4} {:<9} {:<14} {:<7} {}",
            a.pid,
            a.tids,
            printable(&a.comm),
            a.class.as_str(),
            a.node.map_or("-".into(), |n| n.to_string()),
            a.source.as_str(),
            format!("{} s ago", now.saturating_sub(a.since_unix_ms) / 1000),
            a.backend,
            match a.by {
                Writer::Daemon => "daemon",
                Writer::Admin => "admin",
            }
        )?;
        if !a.thread_classes.is_empty() {
            let roles: Vec<String> = a
                .thread_classes
                .iter()
                .map(|c| format!("{} {} {}", c.tid, printable(&c.role), c.class))
                .collect();
            outln!("  {:<8} roles: {}", "", roles.join(", "))?;
        }
    }
    for y in &st.yielded {
        outln!(
            "yielded     pid {} ({}): {}",
            y.pid,
            printable(&y.comm),
            printable(&y.reason)
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_names_cannot_forge_rows_or_colours() {
        assert_eq!(printable("\x1b[31mRED\n9 sshd"), "\\u{1b}[31mRED\\n9 sshd");
        assert_eq!(printable("rsync"), "rsync");
    }
}
