//! The local-LLM classifier: asks an OpenAI-compatible server (llama.cpp's `llama-server`,
//! Ollama, LM Studio, vLLM) for the class of processes that exclusions, rules and heuristics
//! leave open.
//!
//! It runs beside the pipeline, never in it: [`LlmClassifier::classify`] returns a future that
//! the daemon spawns, and the answers update hints when they arrive. Each binary is asked about
//! once; its answer is cached on disk ([`cache`]) and clamped to the ceiling of every process it
//! is used for ([`crate::config::ceiling`]). The model chooses a class only; the NUMA node comes from the
//! planner. See Documentation/tuner-llm.md.

pub mod cache;
pub mod client;
pub mod config;
pub mod export;
pub mod metrics;
pub mod prompt;
pub mod schema;
pub mod server_check;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::classify::external::{
    ExternalClassifier, ExternalError, ExternalFuture, ExternalVerdict, ProcFacts,
};
use crate::config::ceiling::Ceilings;
use crate::hint::HintClass;

use cache::{AnswerCache, BinaryKey};
use client::{ChatClient, ClientError};
use metrics::{LlmMetrics, LlmMetricsSnapshot};
use schema::FormatLevel;

pub use config::{LlmConfig, LlmConfigError};

/// The confidence reported with every model verdict, just above `[external] min_confidence`'s
/// default so answers count unless the admin raises it. The model is not asked for one: a
/// small model's self-assessment is noise, and the tokens are better spent elsewhere.
pub const MODEL_CONFIDENCE: f32 = 0.7;

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// The classifier. Cheap to clone; clones share the cache, metrics and server state.
#[derive(Clone)]
pub struct LlmClassifier {
    inner: Arc<Inner>,
}

struct Inner {
    client: ChatClient,
    model: String,
    batch_size: usize,
    health_wait: Duration,
    retry_down: Duration,
    ceilings: Ceilings,
    cache: Mutex<AnswerCache>,
    /// Serialises cache writes so an older snapshot never lands after a newer one.
    save_lock: tokio::sync::Mutex<()>,
    /// The `FormatLevel` the server last accepted; moves down the fallback chain when the
    /// server rejects a format, and back to the top `retry_down` after the last move down:
    /// one 400 (a prompt too long, a server restarting with other flags) must not leave the
    /// tuner on the looser formats for good.
    level: AtomicU8,
    /// When `level` last moved down.
    level_lowered_at: Mutex<Option<Instant>>,
    /// Binaries being asked about right now, so overlapping calls do not ask twice.
    in_flight: Mutex<HashSet<BinaryKey>>,
    /// Set when the server failed; until then only the cache answers.
    down_until: Mutex<Option<Instant>>,
    metrics: LlmMetrics,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves consistent data behind.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl std::fmt::Debug for LlmClassifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmClassifier")
            .field("base_url", &self.inner.client.base_url().as_str())
            .field("model", &self.inner.model)
            .finish()
    }
}

impl LlmClassifier {
    /// Builds the client and loads the cache. An unreadable or corrupt cache file is reported
    /// and replaced: the classifier starts empty rather than not at all.
    pub fn new(cfg: &LlmConfig) -> Result<Self, LlmError> {
        let client = ChatClient::new(cfg.client.clone())?;
        let cache = match &cfg.cache_path {
            None => AnswerCache::in_memory(),
            Some(p) => AnswerCache::load(p).unwrap_or_else(|e| {
                tracing::warn!("{e}; starting with an empty llm cache");
                AnswerCache::fresh_at(p)
            }),
        };
        Ok(LlmClassifier {
            inner: Arc::new(Inner {
                client,
                model: cfg.model.clone(),
                batch_size: cfg.batch_size.max(1),
                health_wait: cfg.health_wait,
                retry_down: cfg.retry_down,
                ceilings: cfg.ceilings.clone(),
                cache: Mutex::new(cache),
                save_lock: tokio::sync::Mutex::new(()),
                level: AtomicU8::new(FormatLevel::PinnedSchema as u8),
                level_lowered_at: Mutex::new(None),
                in_flight: Mutex::new(HashSet::new()),
                down_until: Mutex::new(None),
                metrics: LlmMetrics::default(),
            }),
        })
    }

    pub fn metrics(&self) -> LlmMetricsSnapshot {
        LlmMetricsSnapshot {
            cached_binaries: self.cache_len() as u64,
            ..self.inner.metrics.snapshot()
        }
    }

    /// The response format the server last accepted.
    pub fn format_level(&self) -> FormatLevel {
        FormatLevel::from_index(self.inner.level.load(Ordering::Relaxed))
    }

    pub fn cache_len(&self) -> usize {
        lock(&self.inner.cache).len()
    }

    /// Answers from the cache only, at once, without a request: for a pipeline that wants to
    /// apply cached answers in the same pass. `classify` gives the same answers for these.
    pub fn cached(&self, facts: &[ProcFacts]) -> Vec<ExternalVerdict> {
        let cache = lock(&self.inner.cache);
        facts
            .iter()
            .filter_map(|f| {
                let class = cache::identify(f).and_then(|k| cache.get(&k))?;
                self.inner.verdict(f, class)
            })
            .collect()
    }
}

impl ExternalClassifier for LlmClassifier {
    fn name(&self) -> &'static str {
        "llm"
    }

    fn classify(&self, facts: Vec<ProcFacts>) -> ExternalFuture {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move { inner.run(facts).await })
    }

    fn cached(&self, facts: &[ProcFacts]) -> Vec<ExternalVerdict> {
        LlmClassifier::cached(self, facts)
    }
}

/// The processes of one binary: asked about once, through the first of them.
struct Group {
    key: BinaryKey,
    procs: Vec<ProcFacts>,
}

/// Releases the claimed in-flight keys however the request ends (answer, error, cancellation).
struct Claim<'a> {
    inner: &'a Inner,
    keys: Vec<BinaryKey>,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let mut set = lock(&self.inner.in_flight);
        for k in &self.keys {
            set.remove(k);
        }
    }
}

impl Inner {
    /// A verdict for `f` from the model's raw `class`, clamped to its ceiling; `None` when the
    /// ceiling allows nothing.
    fn verdict(&self, f: &ProcFacts, class: HintClass) -> Option<ExternalVerdict> {
        let c = self.ceilings.clamp(class, f.uid, &f.cgroup)?;
        if c != class {
            LlmMetrics::inc(&self.metrics.clamped);
            tracing::debug!(pid = f.pid, asked = ?class, granted = ?c, "llm answer clamped to ceiling");
        }
        Some(ExternalVerdict {
            pid: f.pid,
            class: c,
            confidence: MODEL_CONFIDENCE,
        })
    }

    async fn run(&self, facts: Vec<ProcFacts>) -> Result<Vec<ExternalVerdict>, ExternalError> {
        let m = &self.metrics;
        let mut out = Vec::new();
        let mut groups: Vec<Group> = Vec::new();
        // Identify first (a stat per process), then consult the cache under its lock.
        let keyed: Vec<(ProcFacts, BinaryKey)> = facts
            .into_iter()
            // Where nothing could be granted, a question is not worth a token.
            .filter(|f| self.ceilings.cap(f.uid, &f.cgroup) != HintClass::None)
            .filter_map(|f| match cache::identify(&f) {
                Some(key) => Some((f, key)),
                None => {
                    LlmMetrics::inc(&m.unidentified);
                    None
                }
            })
            .collect();
        {
            let cache = lock(&self.cache);
            let mut index: HashMap<BinaryKey, usize> = HashMap::new();
            for (f, key) in keyed {
                if let Some(class) = cache.get(&key) {
                    LlmMetrics::inc(&m.cache_hits);
                    if let Some(v) = self.verdict(&f, class) {
                        LlmMetrics::inc(&m.decisions_cache);
                        out.push(v);
                    }
                    continue;
                }
                LlmMetrics::inc(&m.cache_misses);
                match index.get(&key) {
                    Some(&i) => groups[i].procs.push(f),
                    None => {
                        index.insert(key.clone(), groups.len());
                        groups.push(Group {
                            key,
                            procs: vec![f],
                        });
                    }
                }
            }
        }
        if groups.is_empty() {
            return Ok(out);
        }
        if let Some(until) = *lock(&self.down_until) {
            let now = Instant::now();
            if now < until {
                let secs = (until - now).as_secs();
                let e = ExternalError::Unavailable(format!(
                    "llm server at {} failed recently; retrying in {secs} s",
                    self.client.base_url()
                ));
                if out.is_empty() {
                    return Err(e);
                }
                // The failure was reported when it happened; not again on every pass.
                tracing::debug!("{e}; cached answers used");
                return Ok(out);
            }
        }
        let claim = {
            let mut set = lock(&self.in_flight);
            groups.retain(|g| set.insert(g.key.clone()));
            Claim {
                inner: self,
                keys: groups.iter().map(|g| g.key.clone()).collect(),
            }
        };
        if groups.is_empty() {
            return Ok(out);
        }
        if let Err(e) = self.client.wait_healthy(self.health_wait).await {
            return self.finish(out, self.server_failed(e));
        }
        let started = Instant::now();
        let requests_before = m.requests.load(Ordering::Relaxed);
        let from_cache = out.len();
        let mut failure = None;
        for batch in groups.chunks(self.batch_size) {
            match self.ask(batch).await {
                Ok(answers) => {
                    let mut cache = lock(&self.cache);
                    for (g, class) in answers {
                        let rep = &g.procs[0];
                        cache.insert(g.key.clone(), class, &self.model, &rep.comm, &rep.cgroup);
                        for f in &g.procs {
                            if let Some(v) = self.verdict(f, class) {
                                LlmMetrics::inc(&m.decisions_model);
                                out.push(v);
                            }
                        }
                    }
                }
                Err(e @ ExternalError::BadAnswer(_)) => {
                    tracing::warn!("{e}; those processes are left to the rules");
                    failure = Some(e);
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        drop(claim);
        self.save_cache().await;
        tracing::info!(
            "llm classifier: asked about {} binaries ({} requests, {:.1} s): {} verdicts from the model, {} from the cache",
            groups.len(),
            m.requests.load(Ordering::Relaxed) - requests_before,
            started.elapsed().as_secs_f64(),
            out.len() - from_cache,
            from_cache
        );
        match failure {
            Some(e) => self.finish(out, e),
            None => Ok(out),
        }
    }

    /// Hands back what was answered; the error only when nothing was.
    fn finish(
        &self,
        out: Vec<ExternalVerdict>,
        e: ExternalError,
    ) -> Result<Vec<ExternalVerdict>, ExternalError> {
        if out.is_empty() {
            Err(e)
        } else {
            tracing::warn!("{e}; cached answers used, other processes left to the rules");
            Ok(out)
        }
    }

    /// Records a transport failure: the server is left alone for `retry_down`.
    fn server_failed(&self, e: ClientError) -> ExternalError {
        *lock(&self.down_until) = Some(Instant::now() + self.retry_down);
        match e {
            ClientError::Timeout(ms) => ExternalError::Timeout(ms),
            ClientError::Status { status, .. } if (400..500).contains(&status) && status != 429 => {
                ExternalError::BadAnswer(e.to_string())
            }
            e => ExternalError::Unavailable(e.to_string()),
        }
    }

    /// Asks about one batch, walking down the response-format chain while the server rejects
    /// the format. Returns the groups with an accepted answer.
    async fn ask<'g>(
        &self,
        batch: &'g [Group],
    ) -> Result<Vec<(&'g Group, HintClass)>, ExternalError> {
        let m = &self.metrics;
        let reps: Vec<&ProcFacts> = batch.iter().map(|g| &g.procs[0]).collect();
        let pids: Vec<i32> = reps.iter().map(|f| f.pid).collect();
        let user = prompt::user_message(&reps);
        let mut level = self.format_level();
        let reply = loop {
            let mut body = json!({
                "model": self.model,
                "messages": [
                    { "role": "system", "content": prompt::SYSTEM_PROMPT },
                    { "role": "user", "content": user },
                ],
                "temperature": 0,
                "max_tokens": schema::max_tokens(pids.len()),
                "stream": false,
            });
            if let Some(rf) = schema::response_format(level, &pids) {
                body["response_format"] = rf;
            }
            match self.client.chat(&body, m).await {
                Ok(r) => break r,
                Err(e) if e.is_rejected_request() => match level.next() {
                    Some(next) => {
                        tracing::warn!(
                            "llm server rejected response_format {} ({e}); trying {}",
                            level.name(),
                            next.name()
                        );
                        LlmMetrics::inc(&m.format_fallbacks);
                        self.level.fetch_max(next as u8, Ordering::Relaxed);
                        *lock(&self.level_lowered_at) = Some(Instant::now());
                        level = next;
                    }
                    None => return Err(self.server_failed(e)),
                },
                Err(ClientError::Body(b)) => {
                    LlmMetrics::inc(&m.dropped);
                    return Err(ExternalError::BadAnswer(b));
                }
                Err(e) => return Err(self.server_failed(e)),
            }
        };
        LlmMetrics::add(&m.prompt_tokens, reply.prompt_tokens);
        LlmMetrics::add(&m.completion_tokens, reply.completion_tokens);
        let checked = schema::check_answer(&reply.content, &pids).map_err(|e| {
            LlmMetrics::inc(&m.dropped);
            ExternalError::BadAnswer(e.to_string())
        })?;
        LlmMetrics::add(&m.dropped, checked.dropped as u64);
        if checked.dropped > 0 {
            tracing::debug!(
                dropped = checked.dropped,
                "llm answer entries dropped by validation"
            );
        }
        Ok(checked
            .verdicts
            .into_iter()
            .filter_map(|(pid, class)| {
                batch
                    .iter()
                    .find(|g| g.procs[0].pid == pid)
                    .map(|g| (g, class))
            })
            .collect())
    }

    /// The format to ask in: the one last accepted, or the best again once a fallback is
    /// `retry_down` old.
    fn format_level(&self) -> FormatLevel {
        let mut at = lock(&self.level_lowered_at);
        if at.is_some_and(|t| t.elapsed() >= self.retry_down) {
            *at = None;
            self.level
                .store(FormatLevel::PinnedSchema as u8, Ordering::Relaxed);
            tracing::debug!("llm response format fallback expired; trying the schema again");
        }
        FormatLevel::from_index(self.level.load(Ordering::Relaxed))
    }

    async fn save_cache(&self) {
        let _serial = self.save_lock.lock().await;
        let Some(pending) = lock(&self.cache).take_save() else {
            return;
        };
        match tokio::task::spawn_blocking(move || pending.write()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("{e}; answers kept in memory only"),
            Err(e) => tracing::warn!("llm cache write task failed: {e}"),
        }
    }
}

/// Loads the cache at `path` for `tuner rules export`.
pub fn load_cache(path: &Path) -> Result<AnswerCache, cache::CacheError> {
    AnswerCache::load(path)
}
