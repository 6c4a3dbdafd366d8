//! Counters for the LLM classifier: requests, tokens, latency, cache use and where each
//! decision came from. Lock-free; read with [`LlmMetrics::snapshot`].

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde::Serialize;

#[derive(Debug, Default)]
pub struct LlmMetrics {
    pub(crate) requests: AtomicU64,
    pub(crate) request_errors: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) format_fallbacks: AtomicU64,
    pub(crate) prompt_tokens: AtomicU64,
    pub(crate) completion_tokens: AtomicU64,
    pub(crate) latency_us_total: AtomicU64,
    pub(crate) latency_us_max: AtomicU64,
    pub(crate) cache_hits: AtomicU64,
    pub(crate) cache_misses: AtomicU64,
    pub(crate) decisions_cache: AtomicU64,
    pub(crate) decisions_model: AtomicU64,
    pub(crate) clamped: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) unidentified: AtomicU64,
}

/// A consistent-enough copy of the counters, for `--stats` and logs.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LlmMetricsSnapshot {
    /// HTTP requests to /v1/chat/completions, retries included.
    pub requests: u64,
    /// Requests that failed: transport error, timeout or an error status.
    pub request_errors: u64,
    /// Requests repeated after a 429 or 503.
    pub retries: u64,
    pub timeouts: u64,
    /// Times a server rejected a response_format and the next one was tried.
    pub format_fallbacks: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub latency_ms_avg: f64,
    pub latency_ms_max: f64,
    /// Processes answered from the cache / sent to the model.
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub cache_hit_ratio: f64,
    /// Verdicts handed to the pipeline, by source.
    pub decisions_cache: u64,
    pub decisions_model: u64,
    /// Verdicts lowered to the process's ceiling.
    pub clamped: u64,
    /// Answer entries dropped by validation (unknown pid, repeated pid, unknown class), and
    /// answers dropped whole (not JSON, no verdicts).
    pub dropped: u64,
    /// Processes not asked about because their binary could not be identified.
    pub unidentified: u64,
    /// Binaries with an answer in the cache: `requests / cached_binaries` is what one binary
    /// costs in model requests. Filled by the classifier, which owns the cache.
    pub cached_binaries: u64,
}

impl LlmMetrics {
    pub(crate) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Relaxed);
    }

    pub(crate) fn inc(c: &AtomicU64) {
        c.fetch_add(1, Relaxed);
    }

    pub(crate) fn latency(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.latency_us_total.fetch_add(us, Relaxed);
        self.latency_us_max.fetch_max(us, Relaxed);
    }

    pub fn snapshot(&self) -> LlmMetricsSnapshot {
        let requests = self.requests.load(Relaxed);
        let hits = self.cache_hits.load(Relaxed);
        let misses = self.cache_misses.load(Relaxed);
        let ratio = |a: u64, b: u64| {
            if a + b == 0 {
                0.0
            } else {
                a as f64 / (a + b) as f64
            }
        };
        LlmMetricsSnapshot {
            requests,
            request_errors: self.request_errors.load(Relaxed),
            retries: self.retries.load(Relaxed),
            timeouts: self.timeouts.load(Relaxed),
            format_fallbacks: self.format_fallbacks.load(Relaxed),
            prompt_tokens: self.prompt_tokens.load(Relaxed),
            completion_tokens: self.completion_tokens.load(Relaxed),
            latency_ms_avg: if requests == 0 {
                0.0
            } else {
                self.latency_us_total.load(Relaxed) as f64 / requests as f64 / 1000.0
            },
            latency_ms_max: self.latency_us_max.load(Relaxed) as f64 / 1000.0,
            cache_hits: hits,
            cache_misses: misses,
            cache_hit_ratio: ratio(hits, misses),
            decisions_cache: self.decisions_cache.load(Relaxed),
            decisions_model: self.decisions_model.load(Relaxed),
            clamped: self.clamped.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            unidentified: self.unidentified.load(Relaxed),
            cached_binaries: 0,
        }
    }
}

impl LlmMetricsSnapshot {
    /// The counters in the Prometheus text format, `tuner_llm_*`.
    pub fn render(&self, out: &mut String) {
        let mut one = |name: &str, kind: &str, help: &str, v: String| {
            let _ = writeln!(out, "# HELP tuner_llm_{name} {help}\n# TYPE tuner_llm_{name} {kind}\ntuner_llm_{name} {v}");
        };
        one(
            "requests_total",
            "counter",
            "Chat completion requests sent, retries included.",
            self.requests.to_string(),
        );
        one(
            "request_errors_total",
            "counter",
            "Requests that failed: transport error, timeout or error status.",
            self.request_errors.to_string(),
        );
        one(
            "retries_total",
            "counter",
            "Requests repeated after a 429 or 503.",
            self.retries.to_string(),
        );
        one(
            "timeouts_total",
            "counter",
            "Requests that timed out.",
            self.timeouts.to_string(),
        );
        one(
            "format_fallbacks_total",
            "counter",
            "Times a server rejected a response_format.",
            self.format_fallbacks.to_string(),
        );
        one(
            "request_latency_ms_avg",
            "gauge",
            "Mean request latency in milliseconds.",
            format!("{:.1}", self.latency_ms_avg),
        );
        one(
            "request_latency_ms_max",
            "gauge",
            "Longest request latency in milliseconds.",
            format!("{:.1}", self.latency_ms_max),
        );
        one(
            "cache_hit_ratio",
            "gauge",
            "Share of processes answered from the cache.",
            format!("{:.3}", self.cache_hit_ratio),
        );
        one(
            "clamped_total",
            "counter",
            "Verdicts lowered to their ceiling.",
            self.clamped.to_string(),
        );
        one(
            "dropped_total",
            "counter",
            "Answer entries or whole answers dropped by validation.",
            self.dropped.to_string(),
        );
        one(
            "unidentified_total",
            "counter",
            "Processes not asked about: binary not identifiable.",
            self.unidentified.to_string(),
        );
        one(
            "cached_binaries",
            "gauge",
            "Binaries with a model answer in the cache.",
            self.cached_binaries.to_string(),
        );
        let mut labelled = |name: &str, help: &str, label: &str, values: &[(&str, u64)]| {
            let _ = writeln!(
                out,
                "# HELP tuner_llm_{name} {help}\n# TYPE tuner_llm_{name} counter"
            );
            for (l, v) in values {
                let _ = writeln!(out, "tuner_llm_{name}{{{label}=\"{l}\"}} {v}");
            }
        };
        labelled(
            "tokens_total",
            "Tokens the server reported.",
            "kind",
            &[
                ("prompt", self.prompt_tokens),
                ("completion", self.completion_tokens),
            ],
        );
        labelled(
            "cache_lookups_total",
            "Processes looked up in the answer cache.",
            "result",
            &[("hit", self.cache_hits), ("miss", self.cache_misses)],
        );
        labelled(
            "decisions_total",
            "Verdicts handed to the pipeline, by source.",
            "source",
            &[
                ("cache", self.decisions_cache),
                ("model", self.decisions_model),
            ],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_derives_ratios() {
        let m = LlmMetrics::default();
        assert_eq!(m.snapshot().cache_hit_ratio, 0.0);
        LlmMetrics::add(&m.cache_hits, 3);
        LlmMetrics::inc(&m.cache_misses);
        LlmMetrics::add(&m.requests, 2);
        m.latency(Duration::from_millis(10));
        m.latency(Duration::from_millis(30));
        let s = m.snapshot();
        assert_eq!(s.cache_hit_ratio, 0.75);
        assert_eq!(s.latency_ms_avg, 20.0);
        assert_eq!(s.latency_ms_max, 30.0);
        let mut text = String::new();
        s.render(&mut text);
        assert!(text.contains("tuner_llm_cache_hit_ratio 0.750\n"), "{text}");
        let mut text = String::new();
        LlmMetricsSnapshot {
            cached_binaries: 4,
            ..s
        }
        .render(&mut text);
        assert!(text.contains("tuner_llm_cached_binaries 4\n"), "{text}");
        assert!(
            text.contains("tuner_llm_cache_lookups_total{result=\"hit\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE tuner_llm_requests_total counter\ntuner_llm_requests_total 2\n")
        );
    }
}
