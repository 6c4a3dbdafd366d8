//! `tuner`: parse the command line, set up logging, run, map errors to exit codes (see
//! `tuner --help`).

use std::io::IsTerminal as _;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use tracing_subscriber::EnvFilter;

use tuner::cli::Cli;

fn init_tracing(verbose: u8, quiet: bool) -> anyhow::Result<()> {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(default))
        .context("bad log filter")?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init()
        .map_err(|e| anyhow::anyhow!(e))
        .context("cannot set up logging")
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Help and version go to stdout; `tuner hint` alone prints the subcommands.
        Err(e)
            if !e.use_stderr()
                || e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand =>
        {
            e.exit()
        }
        Err(e) => {
            eprintln!("tuner: error: {}", tuner::cli::one_line(&e));
            return ExitCode::from(tuner::error::EXIT_USAGE);
        }
    };
    if let Err(e) = init_tracing(cli.verbose, cli.quiet) {
        eprintln!("tuner: error: {e:#}");
        return ExitCode::from(tuner::error::EXIT_RUNTIME);
    }
    match tuner::commands::dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tuner: error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
