//! The command line (clap derive). Parsing only; `commands` does the work.

use std::path::PathBuf;

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
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
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
        #[arg(long, default_value_t = 1)]
        threads: u32,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Override `daemon.backend`
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
    /// Override `daemon.backend`
    #[arg(long, value_enum, conflicts_with = "dry_run")]
    pub backend: Option<Backend>,
    /// Also list excluded and idle processes
    #[arg(long)]
    pub all: bool,
    /// Time between the two samples that give rates
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub sample_ms: u64,
    /// Lifetime of the hints written [default: daemon.ttl_scans x daemon.interval_ms]; 0: no expiry
    #[arg(long, value_name = "MS", value_parser = parse_ttl_ms)]
    pub ttl_ms: Option<u64>,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    pub pid: i32,
    /// Time between the two samples that give rates
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub sample_ms: u64,
}

#[derive(Debug, Subcommand)]
pub enum HintCommand {
    /// Set a hint (source admin; the daemon leaves admin hints alone)
    Set(HintSetArgs),
    /// Read the hint the kernel holds
    Get(HintTargetArgs),
    /// Clear the hint
    Clear(HintTargetArgs),
}

#[derive(Debug, Args)]
pub struct HintSetArgs {
    pub pid: i32,
    #[arg(long, value_parser = parse_class)]
    pub class: HintClass,
    /// Preferred NUMA node
    #[arg(long)]
    pub node: Option<u32>,
    /// Keep the task on its node
    #[arg(long, requires = "node")]
    pub strict: bool,
    /// Children do not inherit the hint
    #[arg(long)]
    pub no_inherit: bool,
    /// Lifetime in the kernel; 0: no expiry
    #[arg(long, default_value_t = 0, value_name = "MS", value_parser = parse_ttl_ms)]
    pub ttl_ms: u64,
    /// Only this thread, not its whole process
    #[arg(long)]
    pub thread: bool,
    #[arg(long, value_enum)]
    pub backend: Option<Backend>,
}

#[derive(Debug, Args)]
pub struct HintTargetArgs {
    pub pid: i32,
    /// Only this thread, not its whole process
    #[arg(long)]
    pub thread: bool,
    #[arg(long)]
    pub json: bool,
    #[arg(long, value_enum)]
    pub backend: Option<Backend>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the annotated default configuration
    Example,
    /// Validate a configuration file and the rule files it names [default: --config]
    Check { file: Option<PathBuf> },
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
    #[arg(long, default_value_t = 30)]
    pub passes: usize,
    /// NUMA nodes of the synthetic host
    #[arg(long, default_value_t = 2)]
    pub nodes: u32,
    /// Real processes (with 1 to 4 threads each) to start and time a pass over this host's
    /// /proc with; 0 skips it
    #[arg(long, default_value_t = 1000)]
    pub live_procs: usize,
    /// Seconds of steady-state daemon measurement on this host; 0 skips it
    #[arg(long, default_value_t = 20)]
    pub steady_s: u64,
    /// Scan interval of the measured daemon
    #[arg(long, default_value_t = 5000)]
    pub interval_ms: u64,
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

fn parse_class(s: &str) -> Result<HintClass, String> {
    s.parse()
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
