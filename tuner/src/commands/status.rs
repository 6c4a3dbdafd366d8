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
use crate::observe::sysfs::SysfsSource;
use crate::observe::{SchedHintSysfs, SysSource, Topology};
use crate::output::outln;

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
    Ok(())
}
