//! `tuner hint set|get|clear`: one process by hand.

use std::path::Path;
use std::sync::Arc;

use crate::app;
use crate::apply::{self, HintOp, HintSink, Scope, Target};
use crate::cli::{HintClearArgs, HintSetArgs, HintTargetArgs};
use crate::config::{Backend, Config};
use crate::error::Error;
use crate::hint::{Hint, HintSource, KernelHint};
use crate::metrics::Metrics;
use crate::observe::procfs::ProcfsSource;
use crate::observe::sysfs::SysfsSource;
use crate::observe::{ObserveError, ProcSource, ScanOptions, SysSource};
use crate::output::outln;

fn sink(cfg: &Config, backend: Option<Backend>) -> Result<Box<dyn HintSink>, Error> {
    let choice = backend.unwrap_or(cfg.daemon.backend);
    let mut sink = apply::open_unchecked(choice, cfg, Metrics::new())?;
    if let Ok(topo) = SysfsSource::new(&cfg.observe.sys_root).topology() {
        sink.set_topology(&topo);
    }
    Ok(sink)
}

/// The target and the threads it covers now.
fn target(cfg: &Config, pid: i32, thread: bool) -> Result<(Target, Vec<i32>), Error> {
    if thread {
        return Ok((
            Target {
                pid,
                scope: Scope::Thread,
            },
            vec![pid],
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
    let (target, tids) = target(&cfg, args.pid, args.thread)?;
    let hint = Hint {
        class: args.class,
        node: args.node,
        strict: args.strict,
        inherit: !args.no_inherit,
        ttl_ms: args.ttl_ms,
        source: HintSource::Admin,
    };
    one(sink.as_mut(), HintOp::Set { target, hint, tids })?;
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
    let (target, tids) = target(&cfg, args.pid, args.thread)?;
    one(sink.as_mut(), HintOp::Clear { target, tids })?;
    outln!(
        "pid {}: cleared (backend {})",
        args.pid,
        sink.kind().as_str()
    )?;
    Ok(())
}
