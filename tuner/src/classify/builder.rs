//! Builds the external classifier that `[external]` configures. Implementations register
//! here: the LLM classifier (`crate::llm`) adds its `kind` to the match.

use std::sync::Arc;

use super::external::ExternalClassifier;
use crate::config::Config;
use crate::error::Error;
use crate::llm::{LlmClassifier, LlmConfig};
use crate::metrics::Metrics;

/// `Ok(None)` when the external classifier is disabled or not built into this binary.
/// Its own counters join `metrics`' rendering.
pub fn build(
    cfg: &Config,
    metrics: &Metrics,
) -> Result<Option<Arc<dyn ExternalClassifier>>, Error> {
    let ext = &cfg.external;
    if !ext.enabled {
        return Ok(None);
    }
    match ext.kind.as_str() {
        "llm" => {
            let llm = LlmConfig::new(&ext.endpoint, ext.timeout_ms, ext.max_batch, &cfg.llm)
                .map_err(|e| Error::Usage(e.to_string()))?;
            let classifier = LlmClassifier::new(&llm).map_err(|e| Error::Usage(e.to_string()))?;
            let seen = classifier.clone();
            metrics.add_renderer(move |out| seen.metrics().render(out));
            Ok(Some(Arc::new(classifier)))
        }
        other => Err(Error::Usage(format!(
            "unknown external classifier kind {other:?}"
        ))),
    }
}
