use std::process::ExitCode;

use clap::Parser;
use wakebench::{Args, Config, Error};

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wakebench: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn run(args: Args) -> Result<(), Error> {
    let cfg = Config::try_from(args)?;
    let report = wakebench::run(&cfg)?;
    if cfg.json {
        println!("{}", report.to_json());
        eprintln!("{}", report.summary_line());
    } else {
        println!("{}", report.summary_line());
    }
    Ok(())
}
