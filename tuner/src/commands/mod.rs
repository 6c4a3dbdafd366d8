//! The subcommands, each a function from parsed arguments to a result.

mod bench;
mod config_cmd;
mod hint_cmd;
mod once;
mod run;
mod status;

use crate::cli::{Cli, Command, ConfigCommand, HintCommand, RulesCommand};
use crate::error::Error;
use crate::output::{out, outln};

pub fn dispatch(cli: Cli) -> Result<(), Error> {
    let path = cli.config.as_deref();
    match cli.command {
        Command::Run(args) => run::run(path, args),
        Command::Once(args) => once::once(path, args),
        Command::Explain(args) => once::explain(path, args),
        Command::Hint(HintCommand::Set(args)) => hint_cmd::set(path, args),
        Command::Hint(HintCommand::Get(args)) => hint_cmd::get(path, args),
        Command::Hint(HintCommand::Clear(args)) => hint_cmd::clear(path, args),
        Command::Status(args) => status::status(path, args),
        Command::Config(ConfigCommand::Example) => {
            out!("{}", crate::config::EXAMPLE)?;
            Ok(())
        }
        Command::Config(ConfigCommand::Check { file }) => {
            config_cmd::check(file.as_deref().or(path))
        }
        Command::Rules(RulesCommand::Export { llm_cache }) => {
            config_cmd::export_rules(path, llm_cache)
        }
        Command::Bench(args) => bench::bench(args),
        Command::BenchChild { threads } => bench::child(threads),
    }
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::Runtime(format!("cannot encode json: {e}")))?;
    outln!("{text}")?;
    Ok(())
}
