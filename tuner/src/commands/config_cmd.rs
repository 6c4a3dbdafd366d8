//! `tuner config check` and `tuner rules export` (also of the LLM classifier's cache).

use std::path::Path;

use crate::app;
use crate::config::rules::{export_toml, DEFAULT_ORIGIN};
use crate::config::{Config, ConfigError, DEFAULT_PATH, STDIN_PATH};
use crate::error::Error;
use crate::output::{out, outln};

pub fn check(path: Option<&Path>) -> Result<(), Error> {
    let shown = match path {
        None => format!("{DEFAULT_PATH} (or built-in defaults)"),
        Some(p) if p == Path::new(STDIN_PATH) => "<stdin>".to_owned(),
        Some(p) => p.display().to_string(),
    };
    if let Some(p) = path.filter(|p| *p != Path::new(STDIN_PATH)) {
        if !p.exists() {
            return Err(ConfigError::file(p, "no such file").into());
        }
    }
    let cfg = Config::load(path)?;
    let rules = cfg.load_rules()?;
    let embedded = rules
        .rules
        .iter()
        .filter(|r| r.origin.starts_with(DEFAULT_ORIGIN))
        .count();
    let manual = cfg.manual.len();
    outln!(
        "ok: {shown}: {manual} manual entries, {} user rules, {embedded} embedded rules",
        rules.len() - embedded - manual
    )?;
    Ok(())
}

pub fn export_rules(path: Option<&Path>, llm_cache: bool) -> Result<(), Error> {
    if llm_cache {
        let cfg = Config::load(path)?;
        let Some(cache_path) = &cfg.llm.cache_path else {
            return Err(Error::Usage(
                "llm.cache_path is empty: answers live in memory only, nothing to export".into(),
            ));
        };
        let cache =
            crate::llm::load_cache(cache_path).map_err(|e| Error::Runtime(e.to_string()))?;
        let limits = crate::llm::export::ExportLimits {
            llm: &cfg.llm.ceilings,
            trust: &cfg.trust.ceilings,
            root: Path::new("/"),
        };
        out!(
            "{}",
            crate::llm::export::export_cache(&cache, cache_path, &limits)
        )?;
        return Ok(());
    }
    let (_, rules) = app::load(path)?;
    out!("{}", export_toml(&rules.rules))?;
    Ok(())
}
