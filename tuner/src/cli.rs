//! The command line (clap derive). Parsing only; `commands` does the work.

use std::path::PathBuf;

use clap::builder::TypedValueParser as _;
use clap::{Args, Parser, Subcommand};

use crate::config::Backend;
use crate::hint::HintClass;
use crate::uapi::SCHED_HINT_TTL_MAX_MS;

#[derive(Debug, Parser)]
#[command(
    name = "tuner",
    version,
    about = "Classify processes and give the scheduler sched_hint hints (class and NUMA node)",
    after_help = crate::error::exit_codes_help()
)]
pub struct Cli {
    /// Configuration file [default: /etc/sched_hint/tuner.toml when it exists]
    #[arg(short, long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// More log output (-v: debug, -vv: trace); RUST_LOG overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Only errors in the log
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: scan, classify, plan and apply every interval until SIGTERM
    Run(RunArgs),
    /// One pass: sample twice, classify, plan, apply, print what was decided
    Once(OnceArgs),
    /// Show every step of the decision for one process
    Explain(ExplainArgs),
    /// Set, read or clear the hint of one process by hand (source: admin)
    #[command(subcommand)]
    Hint(HintCommand),
    /// Show the backend, the device, /sys/kernel/sched_hint and the topology
    Status(StatusArgs),
    /// Print the annotated example configuration, or check a file
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print the effective rules
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Time a scan-classify-plan pass over a synthetic host, and the daemon's steady cost
    Bench(BenchArgs),
    /// (internal) a process with idle threads for `tuner bench` to observe; exits when its
    /// stdin closes
    #[command(hide = true)]
    BenchChild {
        /// Idle threads besides the main one
        #[arg(long, default_value_t = 1)]
        threads: u32,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// How hints reach the kernel; overrides `daemon.backend` (auto: the device when it
    /// exists, else stock)
    #[arg(long, value_enum)]
    pub backend: Option<Backend>,
}

#[derive(Debug, Args)]
pub struct OnceArgs {
    /// Decide and print, write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// JSON instead of a table
    #[arg(long)]
    pub json: bool,
    /// How hints reach the kernel; overrides `daemon.backend` (auto: the device when it
    /// exists, else stock)
    #[arg(long, value_enum, conflicts_with = "dry_run")]
    pub backend: Option<Backend>,
    /// Also list excluded and idle processes
    #[arg(long)]
    pub all: bool,
    /// Time between the two samples that give rates
    #[arg(long, default_value_t = 1000, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    pub sample_ms: u64,
    /// Lifetime of the hints written [default: daemon.ttl_scans x daemon.interval_ms]; 0: no
    /// expiry. The kernel drops an ioctl hint when it lapses; the next `tuner run` or `tuner
    /// once` puts back a lapsed stock hint, unless it hints the process the same way again
    #[arg(long, value_name = "MS", value_parser = parse_ttl_ms, conflicts_with = "dry_run")]
    pub ttl_ms: Option<u64>,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The process to explain
    pub pid: i32,
    /// Time between the two samples that give rates
    #[arg(long, default_value_t = 1000, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    pub sample_ms: u64,
}

#[derive(Debug, Subcommand)]
pub enum HintCommand {
    /// Set a hint (source admin; the daemon leaves admin hints alone)
    Set(HintSetArgs),
    /// Read the hint the kernel holds
    Get(HintTargetArgs),
    /// Clear the hint
    Clear(HintClearArgs),
}

#[derive(Debug, Args)]
pub struct HintSetArgs {
    /// The process (or, with --thread, the thread) to hint
    pub pid: i32,
    /// What the process is for: latency (audio, input), interactive (shells, editors),
    /// throughput (servers, inference), batch (compilers, builds), background (backups,
    /// indexers)
    #[arg(long, value_parser = class_parser())]
    pub class: HintClass,
    /// Preferred NUMA node; it must exist (see `tuner status`)
    #[arg(long)]
    pub node: Option<u32>,
    /// Keep the task on its node
    #[arg(long, requires = "node")]
    pub strict: bool,
    /// Children do not inherit the hint
    #[arg(long)]
    pub no_inherit: bool,
    /// Lifetime in the kernel; 0: no expiry. The stock backend has no expiry and refuses one
    #[arg(long, default_value_t = 0, value_name = "MS", value_parser = parse_ttl_ms)]
    pub ttl_ms: u64,
    /// Only this thread, not its whole process
    #[arg(long)]
    pub thread: bool,
    /// How the hint reaches the kernel; overrides `daemon.backend`
    #[arg(long, value_enum)]
    pub backend: Option<Backend>,
}

#[derive(Debug, Args)]
pub struct HintTargetArgs {
    /// The process (or, with --thread, the thread) to read
    pub pid: i32,
    /// Only this thread, not its whole process
    #[arg(long)]
    pub thread: bool,
    /// JSON instead of a line of text
    #[arg(long)]
    pub json: bool,
    /// Where the hint is read from; overrides `daemon.backend`
    #[arg(long, value_enum)]
    pub backend: Option<Backend>,
}

/// No `--json`: clearing prints one line and its exit code says the rest.
#[derive(Debug, Args)]
pub struct HintClearArgs {
    /// The process (or, with --thread, the thread) to clear
    pub pid: i32,
    /// Only this thread, not its whole process
    #[arg(long)]
    pub thread: bool,
    /// Where the hint is cleared; overrides `daemon.backend`
    #[arg(long, value_enum)]
    pub backend: Option<Backend>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the annotated default configuration
    Example,
    /// Validate a configuration file and the rule files it names
    Check {
        /// The file to check; `-` reads standard input [default: --config, else
        /// /etc/sched_hint/tuner.toml]
        file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Print the effective rules ([[manual]], user rules, embedded catalog) as TOML
    Export {
        /// Print rules drafted from the LLM classifier's cached answers ([llm] cache_path) instead
        #[arg(long)]
        llm_cache: bool,
    },
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Processes in the synthetic host
    #[arg(long, default_value_t = 1000)]
    pub procs: usize,
    /// Timed passes (the median is reported)
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..).map(|v| v as usize))]
    pub passes: usize,
    /// NUMA nodes of the synthetic host
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::uapi::SCHED_HINT_MAX_NODES)))]
    pub nodes: u32,
    /// Real processes (with 1 to 4 threads each) to start and time a pass over this host's
    /// /proc with; 0 skips it
    #[arg(long, default_value_t = 1000)]
    pub live_procs: usize,
    /// Seconds of steady-state daemon measurement on this host; 0 skips it
    #[arg(long, default_value_t = 20)]
    pub steady_s: u64,
    /// Scan interval of the measured daemon
    #[arg(long, default_value_t = 5000, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    pub interval_ms: u64,
}

/// A parse error as one line: clap's first paragraph (the error and, where it lists them, the
/// missing arguments or the possible values), without its `error:` prefix, and, where clap
/// names it, the command whose `--help` says more. Scripts and logs get one line per failure.
pub fn one_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let first: Vec<&str> = text
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let msg = first.join(" ");
    let msg = msg.strip_prefix("error: ").unwrap_or(&msg);
    let command: Vec<&str> = text
        .lines()
        .find_map(|l| l.strip_prefix("Usage: "))
        .map(|u| {
            u.split_whitespace()
                .take_while(|w| !w.starts_with(['[', '<', '-']))
                .collect()
        })
        .unwrap_or_default();
    if command.is_empty() {
        msg.to_owned()
    } else {
        format!("{msg} (see '{} --help')", command.join(" "))
    }
}

/// A TTL the kernel accepts: it refuses one above `SCHED_HINT_TTL_MAX_MS` (seven days).
fn parse_ttl_ms(s: &str) -> Result<u64, String> {
    let max = u64::from(SCHED_HINT_TTL_MAX_MS);
    match s.parse::<u64>() {
        Ok(v) if v <= max => Ok(v),
        Ok(v) => Err(format!(
            "{v} ms is above the kernel's limit of {max} ms (seven days)"
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// The classes a hint can carry, listed in `--help` and in the error for any other word.
fn class_parser() -> impl clap::builder::TypedValueParser<Value = HintClass> {
    clap::builder::PossibleValuesParser::new(HintClass::HINTED.map(HintClass::as_str))
        .map(|s| s.parse::<HintClass>().expect("a listed class parses"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn strict_requires_a_node() {
        assert!(
            Cli::try_parse_from(["tuner", "hint", "set", "1", "--class", "batch", "--strict"])
                .is_err()
        );
        let ok = Cli::try_parse_from([
            "tuner", "hint", "set", "1", "--class", "batch", "--strict", "--node", "0",
        ]);
        assert!(ok.is_ok());
        assert!(Cli::try_parse_from(["tuner", "hint", "set", "1", "--class", "fast"]).is_err());
    }

    /// Every visible flag and argument of every visible subcommand says what it is for.
    #[test]
    fn every_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in cmd.get_arguments() {
                let auto = matches!(a.get_id().as_str(), "help" | "version");
                if !auto && !a.is_hide_set() && a.get_help().is_none() {
                    missing.push(format!("{path} {}", a.get_id()));
                }
            }
            for sub in cmd.get_subcommands().filter(|c| !c.is_hide_set()) {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "tuner", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:?}");
    }

    #[test]
    fn class_help_lists_every_class() {
        let mut cmd = Cli::command();
        let help = cmd
            .find_subcommand_mut("hint")
            .and_then(|h| h.find_subcommand_mut("set"))
            .unwrap()
            .render_long_help()
            .to_string();
        for class in HintClass::HINTED {
            assert!(help.contains(class.as_str()), "{class} missing in\n{help}");
        }
        let e = Cli::try_parse_from(["tuner", "hint", "set", "1", "--class", "fast"]).unwrap_err();
        assert_eq!(
            one_line(&e),
            "invalid value 'fast' for '--class <CLASS>' [possible values: latency, interactive, throughput, batch, background]"
        );
    }

    #[test]
    fn nonsense_combinations_are_refused_in_one_line() {
        let refused = [
            &["tuner", "-q", "-v", "status"][..],
            &["tuner", "once", "--dry-run", "--ttl-ms", "1000"],
            &["tuner", "once", "--sample-ms", "0"],
            &["tuner", "explain", "1", "--sample-ms", "0"],
            &["tuner", "hint", "clear", "1", "--json"],
            &["tuner", "hint", "set", "1", "--class", "batch", "--strict"],
            &["tuner", "bench", "--passes", "0"],
            &["tuner", "bench", "--nodes", "0"],
        ];
        for argv in refused {
            let e = Cli::try_parse_from(argv).expect_err(&argv.join(" "));
            let line = one_line(&e);
            assert!(!line.contains('\n'), "{line}");
            assert!(!line.is_empty() && !line.starts_with("error"), "{line}");
        }
        let e = Cli::try_parse_from(["tuner", "hint", "set", "1"]).unwrap_err();
        assert_eq!(
            one_line(&e),
            "the following required arguments were not provided: --class <CLASS> (see 'tuner hint set --help')"
        );
    }

    #[test]
    fn ttl_above_the_kernels_bound_is_refused() {
        let set = |ttl: &str| {
            Cli::try_parse_from([
                "tuner", "hint", "set", "1", "--class", "batch", "--ttl-ms", ttl,
            ])
        };
        assert!(set("604800000").is_ok());
        let e = set("604800001").unwrap_err().to_string();
        assert!(
            e.contains("above the kernel's limit of 604800000 ms"),
            "{e}"
        );
        assert!(set("4294967296").is_err());
        assert!(Cli::try_parse_from(["tuner", "once", "--ttl-ms", "604800001"]).is_err());
        assert!(Cli::try_parse_from(["tuner", "once", "--ttl-ms", "30000"]).is_ok());
    }
}
