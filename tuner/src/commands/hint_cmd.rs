//! `tuner hint set|get|clear`: one process by hand.

use std::path::Path;
use std::sync::Arc;

use crate::app;
use crate::apply::{self, HintOp, HintSink, Restore, Scope, Target};
use crate::classify::exclude::host_base_slice;
use crate::cli::{HintClearArgs, HintSetArgs, HintTargetArgs};
use crate::config::{Backend, Config};
use crate::error::Error;
use crate::hint::{Hint, HintSource, KernelHint};
use crate::metrics::Metrics;
use crate::observe::procfs::ProcfsSource;
use crate::observe::sysfs::SysfsSource;
use crate::observe::{ObserveError, ProcKey, ProcSource, ScanOptions, SysSource};
use crate::output::outln;
use crate::state::file::StateFile;
use crate::state::{unix_ms, Entry, Settings, TaskRecord, Writer};

fn sink(cfg: &Config, backend: Option<Backend>) -> Result<Box<dyn HintSink>, Error> {
    let choice = backend.unwrap_or(cfg.daemon.backend);
    let mut sink = apply::open_unchecked(choice, cfg, Metrics::new())?;
    if let Ok(topo) = SysfsSource::new(&cfg.observe.sys_root).topology() {
        sink.set_topology(&topo);
    }
    Ok(sink)
}

/// The target, the threads it covers now, and the identity of its process (pid and start
/// time; for `--thread`, the thread's own).
fn target(cfg: &Config, pid: i32, thread: bool) -> Result<(Target, Vec<i32>, ProcKey), Error> {
    if thread {
        let start = crate::sys::start_ticks(pid)
            .ok_or_else(|| Error::Runtime(format!("no such thread: {pid}")))?;
        return Ok((
            Target {
                pid,
                scope: Scope::Thread,
            },
            vec![pid],
            (pid, start),
        ));
    }
    let opts = ScanOptions {
        threads: true,
        ..Default::default()
    };
    let p = ProcfsSource::new(&cfg.observe.proc_root)
        .scan_pid(pid, &opts)
        .map_err(|e| match e {
            ObserveError::NoSuchProcess(pid) => Error::Runtime(format!("no such process: {pid}")),
            other => other.into(),
        })?;
    if p.kthread {
        return Err(Error::Usage(format!(
            "pid {pid} is a kernel thread; kernel threads take no hints"
        )));
    }
    Ok((
        Target {
            pid,
            scope: Scope::Process,
        },
        p.tasks.iter().map(|t| t.tid).collect(),
        p.key(),
    ))
}

fn one(sink: &mut dyn HintSink, op: HintOp) -> Result<(), Error> {
    match sink.apply(&[op]).pop() {
        Some(Ok(())) | None => Ok(()),
        Some(Err(e)) => Err(e.into()),
    }
}

/// Refuses a node this machine does not have: a stock kernel has no node to check against, so
/// `--node 1 --strict` on a one-node machine would otherwise "succeed" and change nothing.
fn check_node(cfg: &Config, node: u32) -> Result<(), Error> {
    let topo = SysfsSource::new(&cfg.observe.sys_root).topology()?;
    if topo.node(node).is_some() {
        return Ok(());
    }
    let ids: Vec<String> = topo.nodes.iter().map(|n| n.id.to_string()).collect();
    Err(Error::Usage(format!(
        "node {node} does not exist here (nodes: {})",
        ids.join(", ")
    )))
}

pub fn set(path: Option<&Path>, args: HintSetArgs) -> Result<(), Error> {
    let (cfg, _) = app::load(path)?;
    if let Some(node) = args.node {
        check_node(&cfg, node)?;
    }
    let mut sink = sink(&cfg, args.backend)?;
    if sink.kind() == Backend::Stock && args.ttl_ms > 0 {
        // Nothing would put it back when it lapses: the daemon restores only its own lapsed
        // hints, and an admin's stock hint stays until `tuner hint clear`.
        return Err(Error::Usage(
            "the stock backend has no expiry: set the hint without --ttl-ms and clear it with `tuner hint clear`, or use the ioctl backend".into(),
        ));
    }
    let (target, tids, owner) = target(&cfg, args.pid, args.thread)?;
    let hint = Hint {
        class: args.class,
        node: args.node,
        strict: args.strict,
        inherit: !args.no_inherit,
        ttl_ms: args.ttl_ms,
        source: HintSource::Admin,
    };
    let stock = sink.kind() == Backend::Stock;
    let base_slice_ns = if stock { base_slice(&cfg) } else { None };
    let strict = hint.strict && hint.node.is_some();
    let read = |tids: &[i32]| -> Vec<(i32, Option<Settings>)> {
        tids.iter()
            .map(|&t| (t, apply::stock::current(t, strict, base_slice_ns)))
            .collect()
    };
    let store = StateFile::new(&cfg.daemon.state_file);
    // Read before writing, so that a bad state file stops the command before any change.
    let held = if stock { Some(store.load()?) } else { None };
    let before = if stock { read(&tids) } else { Vec::new() };
    one(
        sink.as_mut(),
        HintOp::Set {
            target,
            hint,
            tids: tids.clone(),
            owner,
        },
    )?;
    if let Some(held) = held {
        // What this tuner replaced earlier stays what a clear puts back.
        let earlier = held.entry(owner).cloned();
        let tasks = before
            .into_iter()
            .zip(read(&tids))
            .filter_map(|((tid, prior), (_, written))| {
                let prior = earlier
                    .as_ref()
                    .and_then(|e| e.tasks.iter().find(|r| r.tid == tid))
                    .map(|r| r.prior.clone())
                    .or(prior)?;
                Some(TaskRecord {
                    tid,
                    written: written?,
                    prior,
                })
            })
            .collect();
        let now = unix_ms();
        let entry = Entry {
            pid: owner.0,
            start_ticks: owner.1,
            comm: std::fs::read_to_string(format!("/proc/{}/comm", owner.0))
                .unwrap_or_default()
                .trim_end()
                .to_owned(),
            hint,
            backend: "stock".into(),
            per_thread: args.thread,
            by: Writer::Admin,
            since_unix_ms: earlier.as_ref().map_or(now, |e| e.since_unix_ms),
            written_unix_ms: now,
            tasks,
            thread_classes: Vec::new(),
        };
        store.update(|st| -> Result<(), Error> {
            st.entries.retain(|e| e.key() != owner);
            st.entries.push(entry);
            Ok(())
        })?;
    }
    outln!(
        "pid {}: set class {} node {}{} inherit {} ttl {} (backend {})",
        args.pid,
        hint.class,
        hint.node.map_or("-".into(), |n| n.to_string()),
        if hint.strict { " (strict)" } else { "" },
        hint.inherit,
        if hint.ttl_ms == 0 {
            "none".into()
        } else {
            format!("{} ms", hint.ttl_ms)
        },
        sink.kind().as_str()
    )?;
    Ok(())
}

fn show(pid: i32, h: Option<&KernelHint>) -> String {
    match h {
        None => format!("pid {pid}: no hint"),
        Some(h) => format!(
            "pid {pid}: class {} node {}{} inherit {} source {} ttl {} generation {}",
            h.class,
            h.node.map_or("-".into(), |n| n.to_string()),
            if h.strict { " (strict)" } else { "" },
            h.inherit,
            h.source.map_or("unknown", |s| s.as_str()),
            if h.ttl_ms == 0 {
                "none".into()
            } else {
                format!("{} ms", h.ttl_ms)
            },
            h.generation
        ),
    }
}

pub fn get(path: Option<&Path>, args: HintTargetArgs) -> Result<(), Error> {
    let (cfg, _) = app::load(path)?;
    let mut sink = sink(&cfg, args.backend)?;
    let scope = if args.thread {
        Scope::Thread
    } else {
        Scope::Process
    };
    let h = sink.get(Target {
        pid: args.pid,
        scope,
    })?;
    if args.json {
        super::print_json(
            &serde_json::json!({ "pid": args.pid, "backend": sink.kind(), "hint": h }),
        )
    } else {
        outln!("{}", show(args.pid, h.as_ref()))?;
        Ok(())
    }
}

pub fn clear(path: Option<&Path>, args: HintClearArgs) -> Result<(), Error> {
    let (cfg, _): (Arc<Config>, _) = app::load(path)?;
    let mut sink = sink(&cfg, args.backend)?;
    let (target, tids, owner) = target(&cfg, args.pid, args.thread)?;
    if sink.kind() != Backend::Stock {
        // The kernel holds the hint itself: clearing it removes exactly what was set.
        one(
            sink.as_mut(),
            HintOp::Clear {
                target,
                tids,
                restore: None,
            },
        )?;
        outln!(
            "pid {}: cleared (backend {})",
            args.pid,
            sink.kind().as_str()
        )?;
        return Ok(());
    }
    // The stock backend's settings look like anyone's: only what the state file says the
    // tuner wrote is put back, to what it replaced.
    let store = StateFile::new(&cfg.daemon.state_file);
    let entry = store
        .load()?
        .entries
        .into_iter()
        .find(|e| e.key() == owner && e.backend == "stock");
    let Some(entry) = entry else {
        return Err(Error::Runtime(format!(
            "pid {}: the tuner holds no record of a hint it set there ({}); nothing changed",
            args.pid,
            store.path().display()
        )));
    };
    let tasks: Vec<_> = entry
        .tasks
        .iter()
        .filter(|t| !args.thread || t.tid == args.pid)
        .cloned()
        .collect();
    let base_slice_ns = base_slice(&cfg);
    one(
        sink.as_mut(),
        HintOp::Clear {
            target,
            tids,
            restore: Some(Restore {
                owner,
                base_slice_ns,
                tasks: tasks.clone(),
            }),
        },
    )?;
    store.update(|st| -> Result<(), Error> {
        if let Some(e) = st.entries.iter_mut().find(|e| e.key() == owner) {
            e.tasks.retain(|t| !tasks.contains(t));
        }
        st.entries
            .retain(|e| e.key() != owner || !e.tasks.is_empty());
        Ok(())
    })?;
    outln!(
        "pid {}: restored what the tuner replaced on {} threads (backend {})",
        args.pid,
        tasks.len(),
        sink.kind().as_str()
    )?;
    Ok(())
}

/// The kernel's base slice, as the commonest slice of this process's neighbours.
fn base_slice(cfg: &Config) -> Option<u64> {
    let mut src = ProcfsSource::new(&cfg.observe.proc_root);
    let procs = src.scan(&ScanOptions::default()).ok()?;
    host_base_slice(&procs, &Default::default())
}
