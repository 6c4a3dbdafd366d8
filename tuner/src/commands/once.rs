//! `tuner once` and `tuner explain`: one pass, printed.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::app::App;
use crate::apply::{self, dry_run::DryRunSink, Scope, Target};
use crate::classify::external::ExternalError;
use crate::cli::{ExplainArgs, OnceArgs};
use crate::config::Backend;
use crate::engine::{Action, Engine, Mode, PassReport, Row};
use crate::error::Error;
use crate::observe::snapshot::{NumaRead, Snapshot};
use crate::observe::ProcKey;
use crate::output;
use crate::output::{out, outln, term};
use crate::state::file::StateFile;
use crate::state::{unix_ms, Entry, Writer};

/// Two observations `sample_ms` apart, the second with rates (and numa_maps).
fn sample(app: &App, engine: &mut Engine, sample_ms: u64) -> Result<Snapshot, Error> {
    let mut observer = app.observer();
    let mut first = observer.observe(NumaRead::Skip)?;
    engine.prepare(&mut first);
    std::thread::sleep(Duration::from_millis(sample_ms.max(1)));
    let mut snap = observer.observe(NumaRead::Force)?;
    engine.prepare(&mut snap);
    Ok(snap)
}

/// Asks the external classifier about what is open, waiting at most its timeout.
fn ask_external(app: &App, engine: &mut Engine, snap: &Snapshot) -> Result<(), Error> {
    let Some(ext) = app.external()? else {
        return Ok(());
    };
    let cfg = &app.cfg;
    let mut open = engine.open_facts(snap);
    open.truncate(cfg.external.max_batch);
    if open.is_empty() {
        return Ok(());
    }
    let (keys, facts): (Vec<_>, Vec<_>) = open.into_iter().unzip();
    let timeout_ms = cfg.external.timeout_ms;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("cannot start the runtime", e))?;
    let answer = rt.block_on(async {
        tokio::time::timeout(Duration::from_millis(timeout_ms), ext.classify(facts))
            .await
            .unwrap_or(Err(ExternalError::Timeout(timeout_ms)))
    });
    engine.on_external(&keys, answer, snap.at_ms);
    Ok(())
}

pub fn once(path: Option<&Path>, args: OnceArgs) -> Result<(), Error> {
    let app = App::load(path)?;
    let choice = if args.dry_run {
        Backend::DryRun
    } else {
        args.backend.unwrap_or(app.cfg.daemon.backend)
    };
    // Opening the backend checks the device and privileges before anything is observed.
    let mut sink: Box<dyn apply::HintSink> = if choice == Backend::DryRun {
        // The table says what would be written; no log line per op.
        Box::new(DryRunSink::silent(app.cfg.daemon.device.exists()))
    } else {
        app.sink(choice)?
    };
    let mut engine = app.engine(Mode::Once);
    engine.set_ttl_ms(args.ttl_ms);
    if sink.kind() != Backend::DryRun {
        // The tuner's earlier writes are its own, not manual settings (reproduction 3).
        crate::app::keep_state(&app.cfg, &mut engine, sink.kind())?;
    }
    let snap = sample(&app, &mut engine, args.sample_ms)?;
    ask_external(&app, &mut engine, &snap)?;
    let report = engine.pass(&snap, sink.as_mut());
    if args.json {
        let rows: Vec<_> = report
            .rows
            .iter()
            .filter(|r| output::listed(r, args.all))
            .collect();
        super::print_json(&serde_json::json!({ "backend": sink.kind(), "rows": rows }))?;
    } else {
        let rows: Vec<_> = report
            .rows
            .iter()
            .filter(|r| output::listed(r, args.all))
            .collect();
        out!("{}", output::once_table(&rows))?;
        outln!("{}", summary(&report, sink.kind().as_str()))?;
    }
    let failed = report
        .rows
        .iter()
        .filter(|r| r.action == Action::Failed)
        .count();
    if failed > 0 {
        return Err(Error::Runtime(format!("{failed} hint writes failed")));
    }
    Ok(())
}

fn summary(report: &PassReport, backend: &str) -> String {
    let rows = &report.rows;
    let excluded = rows.iter().filter(|r| r.excluded).count();
    let hinted = rows.iter().filter(|r| r.hint.is_some()).count();
    let open = rows
        .iter()
        .filter(|r| !r.excluded && r.class.is_none())
        .count();
    let idle = rows.len() - excluded - hinted - open;
    format!(
        "{} processes: {hinted} hinted, {open} open, {idle} need no hint, {excluded} excluded; backend {backend}, {} writes",
        rows.len(),
        report.ops.len()
    )
}

/// What `pid` holds, in a line: the kernel's hint (ioctl backend, its GET) or the state
/// file's entry (what the tuner wrote), and the entries to start the decision from.
fn held(app: &App, key: ProcKey) -> (String, Vec<Entry>) {
    let backend = apply::resolve(app.cfg.daemon.backend, &app.cfg.daemon.device);
    let path = &app.cfg.daemon.state_file;
    let entries = match StateFile::new(path).load() {
        Ok(st) => st.entries,
        Err(e) => return (format!("unknown ({e})"), Vec::new()),
    };
    if backend == Backend::Ioctl {
        let got = apply::open_unchecked(Backend::Ioctl, &app.cfg, app.metrics.clone()).and_then(
            |mut sink| {
                sink.get(Target {
                    pid: key.0,
                    scope: Scope::Process,
                })
            },
        );
        let line = match got {
            Ok(Some(h)) => format!(
                "kernel: class {} node {} strict {} inherit {} source {} ttl {} ms",
                h.class,
                h.node.map_or("-".into(), |n| n.to_string()),
                h.strict,
                h.inherit,
                h.source.map_or("-".into(), |s| s.to_string()),
                h.ttl_ms
            ),
            Ok(None) => "kernel: none".into(),
            Err(e) => format!("kernel: unknown ({e})"),
        };
        return (line, entries);
    }
    let line = match entries.iter().find(|e| e.key() == key) {
        Some(e) => format!(
            "class {} by {} since {} s ago (written {} s ago, lifetime {}), backend {}, state file {}",
            e.hint.class,
            match e.by {
                Writer::Daemon => "the tuner",
                Writer::Admin => "tuner hint set",
            },
            unix_ms().saturating_sub(e.since_unix_ms) / 1000,
            unix_ms().saturating_sub(e.written_unix_ms) / 1000,
            if e.hint.ttl_ms == 0 {
                "none".to_owned()
            } else {
                format!("{} ms", e.hint.ttl_ms)
            },
            e.backend,
            path.display()
        ),
        None => format!("none (state file {})", path.display()),
    };
    (line, entries)
}

/// Most threads whose role `tuner explain` lists.
const MAX_ROLE_LINES: usize = 64;

/// Each thread's role, which matchers held and what was measured: a line per thread.
fn roles_section(out: &mut String, row: &Row, hold_scans: u32) {
    if row.roles.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "roles (rule {:?}: first matching role wins; the daemon holds a role {hold_scans} scans while it shows none)",
        term(&row.rule)
    );
    let width = row
        .roles
        .iter()
        .filter_map(|t| t.role.as_deref().map(str::len))
        .max()
        .unwrap_or(1);
    for t in row.roles.iter().take(MAX_ROLE_LINES) {
        let (role, class, why) = match (&t.role, t.class) {
            (Some(r), Some(c)) => (
                term(r).into_owned(),
                format!("-> {c}"),
                match &t.matched {
                    Some(m) => format!("({})", term(m)),
                    None => format!("(held, not shown for {} scans)", t.missed_scans),
                },
            ),
            _ => (
                "-".to_owned(),
                "-> process class".to_owned(),
                "(no role)".to_owned(),
            ),
        };
        let _ = writeln!(
            out,
            "  tid {:<7} {role:<width$} {class:<16} {why}; {}",
            t.tid,
            term(&t.measured)
        );
    }
    if row.roles.len() > MAX_ROLE_LINES {
        let _ = writeln!(
            out,
            "  ... {} more threads",
            row.roles.len() - MAX_ROLE_LINES
        );
    }
}

pub fn explain(path: Option<&Path>, args: ExplainArgs) -> Result<(), Error> {
    let app = App::load(path)?;
    let mut engine = app.engine(Mode::Once);
    let backend = apply::resolve(app.cfg.daemon.backend, &app.cfg.daemon.device);
    let snap = sample(&app, &mut engine, args.sample_ms)?;
    let Some(p) = snap.procs.iter().find(|p| p.pid == args.pid) else {
        return Err(Error::Runtime(format!("no such process: {}", args.pid)));
    };
    // Start from what is held: the hint (its settings are the tuner's own, not manual ones)
    // and the model's cached answer.
    let (held_line, entries) = held(&app, p.key());
    engine.hold(backend.as_str(), entries);
    match app.external() {
        Ok(Some(ext)) => engine.take_cached(&snap, &[args.pid], ext.as_ref()),
        Ok(None) => {}
        // Explaining needs no classifier: the steps before it still show.
        Err(e) => tracing::warn!("the external classifier's cache is not read: {e}"),
    }
    let report = engine.pass(
        &snap,
        &mut DryRunSink::silent(app.cfg.daemon.device.exists()),
    );
    let trace = engine.trace(&snap, args.pid).unwrap_or_default();
    let row = report
        .rows
        .iter()
        .find(|r| r.pid == args.pid)
        .expect("a row per process");

    let mut out = String::new();
    let _ = writeln!(
        out,
        "pid {} ({}), uid {}, {} threads",
        p.pid,
        term(&p.comm),
        p.uid,
        p.nr_threads
    );
    let _ = writeln!(
        out,
        "  exe      {}",
        p.exe
            .as_ref()
            .map_or("-".into(), |e| term(&e.to_string_lossy()).into_owned())
    );
    let _ = writeln!(
        out,
        "  cmdline  {}",
        if p.cmdline.is_empty() {
            "-".into()
        } else {
            term(&p.cmdline.join(" ")).into_owned()
        }
    );
    let _ = writeln!(out, "  cgroup   {}", term(&p.cgroup));
    let _ = writeln!(out, "  rss      {} MiB", p.rss_kib / 1024);
    if let Some(r) = &p.rates {
        let _ = writeln!(
            out,
            "  rates    cpu {:.1}%, {:.0} voluntary + {:.0} involuntary switches/s, {:.0} us per wakeup, run delay {:.1}%",
            r.cpu_pct, r.voluntary_per_s, r.involuntary_per_s, r.avg_burst_us, r.run_delay_pct
        );
    }
    if let Some(numa) = &p.numa_kib {
        let per: Vec<String> = numa
            .iter()
            .enumerate()
            .map(|(n, k)| format!("node{n} {} MiB", k / 1024))
            .collect();
        let _ = writeln!(out, "  numa     {}", per.join(", "));
    }
    for t in p.tasks.iter().take(16) {
        let _ = writeln!(
            out,
            "  tid {:<7} policy {} nice {:>3} slice {} cpus {}",
            t.tid,
            t.policy,
            t.nice,
            t.slice_ns
                .map_or("-".into(), |s| format!("{} us", s / 1000)),
            t.cpus_allowed
                .as_ref()
                .map_or("-".into(), ToString::to_string)
        );
    }
    if p.tasks.len() > 16 {
        let _ = writeln!(out, "  ... {} more threads", p.tasks.len() - 16);
    }
    let _ = writeln!(out, "  held     {}", term(&held_line));
    out.push_str("decision\n");
    for line in &trace {
        let _ = writeln!(out, "  {}", term(line));
    }
    let _ = writeln!(
        out,
        "  result: {} by {}:{} (confidence {:.2}); node {} ({})",
        row.class.map_or_else(
            || if row.excluded {
                "excluded".into()
            } else {
                "open".into()
            },
            |c| c.to_string()
        ),
        row.step.as_str(),
        term(&row.rule),
        row.confidence,
        row.node.map_or("-".into(), |n| n.to_string()),
        if row.node_reason.is_empty() {
            "not placed".into()
        } else {
            term(&row.node_reason)
        },
    );
    match &row.hint {
        Some(h) => {
            let _ = writeln!(
                out,
                "  hint: class {} node {} strict {} inherit {} source {}",
                h.class,
                h.node.map_or("-".into(), |n| n.to_string()),
                h.strict,
                h.inherit,
                h.source
            );
        }
        None => out.push_str("  hint: none\n"),
    }
    let _ = writeln!(out, "  action: {}", row.action);
    roles_section(&mut out, row, app.cfg.rules.role_hold_scans);
    out!("{out}")?;
    Ok(())
}
