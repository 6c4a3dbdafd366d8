//! What the classifier runs with: [`LlmConfig`], built from the validated `[llm]` section
//! ([`LlmSection`], parsed and range-checked by the config module) and `[external]` (switch,
//! endpoint, timeout, batch size).

use std::path::PathBuf;
use std::time::Duration;

use reqwest::Url;

use super::client::{ApiKey, ClientConfig};
use crate::config::ceiling::Ceilings;
use crate::config::llm::LlmSection;

#[derive(Debug, thiserror::Error)]
pub enum LlmConfigError {
    #[error("llm endpoint {url:?}: {reason}")]
    BaseUrl { url: String, reason: String },
    #[error("llm.api_key_env names {0}, which is not set")]
    KeyEnv(String),
    #[error("cannot read llm.api_key_file {path}: {source}")]
    KeyFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("llm.api_key_file {0} is empty")]
    KeyFileEmpty(PathBuf),
}

/// Everything the classifier runs with.
#[derive(Debug, Clone)]
pub struct LlmConfig {
    pub client: ClientConfig,
    pub model: String,
    pub batch_size: usize,
    pub cache_path: Option<PathBuf>,
    pub health_wait: Duration,
    pub retry_down: Duration,
    pub ceilings: Ceilings,
}

impl LlmConfig {
    /// From `[external]`'s endpoint, request timeout and batch size and the `[llm]` section.
    /// Reads the API key, so it runs when the classifier starts, not when the file is checked.
    pub fn new(
        endpoint: &str,
        timeout_ms: u64,
        batch_size: usize,
        s: &LlmSection,
    ) -> Result<LlmConfig, LlmConfigError> {
        let bad = |reason: String| LlmConfigError::BaseUrl {
            url: endpoint.to_string(),
            reason,
        };
        let base_url = Url::parse(endpoint).map_err(|e| bad(e.to_string()))?;
        if !matches!(base_url.scheme(), "http" | "https") || base_url.host().is_none() {
            return Err(bad("want http://host:port".into()));
        }
        Ok(LlmConfig {
            client: ClientConfig {
                base_url,
                api_key: api_key(s)?,
                timeout: Duration::from_millis(timeout_ms.max(1)),
                connect_timeout: Duration::from_millis(s.connect_timeout_ms.max(1)),
                max_retries: s.max_retries,
                backoff: Duration::from_millis(s.backoff_ms),
                max_backoff: Duration::from_millis(s.backoff_ms.saturating_mul(16).max(1_000)),
            },
            model: s.model.clone(),
            batch_size: batch_size.max(1),
            cache_path: s.cache_path.clone(),
            health_wait: Duration::from_millis(s.health_wait_ms),
            retry_down: Duration::from_millis(s.retry_down_ms),
            ceilings: s.ceilings.clone(),
        })
    }
}

fn api_key(s: &LlmSection) -> Result<Option<ApiKey>, LlmConfigError> {
    if let Some(path) = &s.api_key_file {
        let text = std::fs::read_to_string(path).map_err(|source| LlmConfigError::KeyFile {
            path: path.clone(),
            source,
        })?;
        let key = text.lines().next().unwrap_or("").trim();
        if key.is_empty() {
            return Err(LlmConfigError::KeyFileEmpty(path.clone()));
        }
        return Ok(Some(ApiKey::new(key)));
    }
    if let Some(var) = &s.api_key_env {
        let key = std::env::var(var).map_err(|_| LlmConfigError::KeyEnv(var.clone()))?;
        if key.trim().is_empty() {
            return Err(LlmConfigError::KeyEnv(var.clone()));
        }
        return Ok(Some(ApiKey::new(key.trim())));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::Config;
    use crate::hint::HintClass;

    #[test]
    fn llm_section_parses_with_the_config() {
        let cfg = Config::parse(
            "[llm]\nmodel = \"qwen\"\ncache_path = \"\"\napi_key_env = \"K\"\nmax_retries = 0\n\
             [llm.ceilings]\ndefault = \"batch\"\n[llm.ceilings.uid]\n\"0\" = \"latency\"\n\
             [llm.ceilings.cgroup]\n\"/quarantine.slice\" = \"none\"\n",
            "t",
        )
        .unwrap();
        let l = &cfg.llm;
        assert_eq!(
            (l.model.as_str(), l.cache_path.as_ref(), l.max_retries),
            ("qwen", None, 0)
        );
        assert_eq!(l.api_key_env.as_deref(), Some("K"));
        assert_eq!(l.ceilings.cap(0, "/"), HintClass::Latency);
        assert_eq!(l.ceilings.cap(7, "/"), HintClass::Batch);
        assert_eq!(l.ceilings.cap(0, "/quarantine.slice/x"), HintClass::None);
        assert_eq!(Config::default().llm, LlmSection::default());
    }

    #[test]
    fn llm_section_errors_point_at_the_value() {
        let cases = [
            (
                "[llm.ceilings]\ndefault = \"rt\"\n",
                "llm.ceilings.default: unknown class \"rt\"",
            ),
            (
                "[llm.ceilings.uid]\nroot = \"batch\"\n",
                "\"root\" is not a uid",
            ),
            (
                "[llm.ceilings.cgroup]\n\"user.slice\" = \"batch\"\n",
                "absolute cgroup path",
            ),
            (
                "[llm]\nconnect_timeout_ms = 0\n",
                "llm.connect_timeout_ms must be within",
            ),
            (
                "[llm]\ncache_path = \"rel/c.json\"\n",
                "llm.cache_path must be an absolute path",
            ),
            ("[llm]\nbase_url = \"http://h:1\"\n", "unknown field"),
        ];
        for (src, want) in cases {
            let e = Config::parse(src, "t").unwrap_err().to_string();
            assert!(e.contains(want), "{src:?}: {e}");
            assert!(e.starts_with("t:"), "{e}");
        }
    }

    #[test]
    fn endpoint_is_checked() {
        let s = LlmSection::default();
        assert!(LlmConfig::new("http://127.0.0.1:8080", 1000, 8, &s).is_ok());
        assert!(LlmConfig::new("https://llm.example:8443/v1", 1000, 8, &s).is_ok());
        for bad in ["localhost:8080", "ftp://h/", "http://", ""] {
            let e = LlmConfig::new(bad, 1000, 8, &s).unwrap_err();
            assert!(e.to_string().starts_with("llm endpoint"), "{bad}: {e}");
        }
    }

    #[test]
    fn api_key_from_file_or_env_is_redacted() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key");
        std::fs::write(&p, "sk-secret-123\nignored\n").unwrap();
        let s = LlmSection {
            api_key_file: Some(p),
            ..Default::default()
        };
        let c = LlmConfig::new("http://127.0.0.1:1", 1000, 8, &s).unwrap();
        assert_eq!(c.client.api_key, Some(ApiKey::new("sk-secret-123")));
        assert!(!format!("{c:?}").contains("sk-secret"));

        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let s = LlmSection {
            api_key_file: Some(empty),
            ..Default::default()
        };
        assert!(matches!(
            LlmConfig::new("http://h:1", 1, 1, &s),
            Err(LlmConfigError::KeyFileEmpty(_))
        ));

        let s = LlmSection {
            api_key_env: Some("SCHED_HINT_TEST_SURELY_UNSET".into()),
            ..Default::default()
        };
        let e = LlmConfig::new("http://h:1", 1, 1, &s).unwrap_err();
        assert_eq!(
            e.to_string(),
            "llm.api_key_env names SCHED_HINT_TEST_SURELY_UNSET, which is not set"
        );
    }
}
