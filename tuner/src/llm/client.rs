//! HTTP client for an OpenAI-compatible server: `POST /v1/chat/completions` and `GET /health`.
//!
//! Request and connect timeouts come from the configuration (the request timeout covers the
//! whole body too); a 429 or 503 is retried with exponential backoff (honouring
//! `Retry-After`, capped). Before every request the server is recognised
//! ([`super::server_check`]); redirects are not followed, and a body larger than
//! `max_response_bytes` is dropped unread. The API key goes in the `Authorization` header
//! only and never into a log, an error message or `Debug` output.

use std::fmt;
use std::time::{Duration, Instant};

use reqwest::{header, StatusCode, Url};
use serde::Deserialize;
use serde_json::Value;

use super::metrics::LlmMetrics;
use super::prompt::sanitise;
use super::server_check::{ServerCheck, ServerCheckError};

/// A bearer token. `Debug` and `Display` print a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(s: impl Into<String>) -> Self {
        ApiKey(s.into())
    }

    fn header(&self) -> Result<header::HeaderValue, ClientError> {
        let mut v = header::HeaderValue::from_str(&format!("Bearer {}", self.0)).map_err(|_| {
            ClientError::Config("api key has characters not allowed in a header".into())
        })?;
        v.set_sensitive(true);
        Ok(v)
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `http://host:port`; a trailing `/v1` is accepted and ignored.
    pub base_url: Url,
    pub api_key: Option<ApiKey>,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Retries after a 429 or 503, on top of the first attempt.
    pub max_retries: u32,
    /// First backoff; doubles on each retry.
    pub backoff: Duration,
    /// Longest single backoff, `Retry-After` included.
    pub max_backoff: Duration,
    /// How the server is recognised before each request.
    pub server: ServerCheck,
    /// Longest response body read; a longer one fails the request.
    pub max_response_bytes: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("llm client setup: {0}")]
    Config(String),
    #[error("cannot reach llm server at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("llm server timed out after {0} ms")]
    Timeout(u64),
    #[error("llm server answered http {status}: {body}")]
    Status { status: u16, body: String },
    #[error("llm server sent a response that is not a chat completion: {0}")]
    Body(String),
    #[error("llm server at {url} is not trusted: {reason}")]
    Untrusted { url: String, reason: String },
    #[error("llm server sent more than {0} bytes; response dropped")]
    TooLarge(usize),
}

impl ClientError {
    /// A 400 or 422: the server refused the request as written (typically the response_format).
    pub fn is_rejected_request(&self) -> bool {
        matches!(
            self,
            ClientError::Status {
                status: 400 | 422,
                ..
            }
        )
    }
}

/// What `/health` said.
#[derive(Debug, Clone, PartialEq)]
pub enum Health {
    Ok,
    /// The server is up but not ready (llama.cpp: 503 while the model loads).
    Loading,
}

/// The part of a chat completion the classifier uses.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatReply {
    pub content: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

#[derive(Deserialize)]
struct Completion {
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    message: Message,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize, Default)]
struct Usage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

pub struct ChatClient {
    http: reqwest::Client,
    chat_url: Url,
    health_url: Url,
    cfg: ClientConfig,
}

impl fmt::Debug for ChatClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatClient")
            .field("chat_url", &self.chat_url.as_str())
            .finish()
    }
}

/// `http://h:p`, `http://h:p/`, `http://h:p/v1/` → `http://h:p/` joined with `path`.
fn endpoint(base: &Url, path: &str) -> Result<Url, ClientError> {
    let mut b = base.clone();
    let trimmed = b
        .path()
        .trim_end_matches('/')
        .trim_end_matches("/v1")
        .to_string();
    b.set_path(&format!("{trimmed}/"));
    b.join(path)
        .map_err(|e| ClientError::Config(format!("bad base url: {e}")))
}

/// The innermost cause of a reqwest error, which says what happened ("Connection refused
/// (os error 111)", "invalid peer certificate: UnknownIssuer"); reqwest's own message is
/// "error sending request" or "builder error".
fn innermost(e: &reqwest::Error) -> String {
    let mut reason = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        reason = c.to_string();
        cause = c.source();
    }
    reason
}

/// The CERTIFICATE blocks of a PEM file, each checked by building a TLS client that trusts
/// it; other blocks (a private key in a combined file) are left out. Errors name the block.
pub fn ca_certs_from_pem(pem: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let text = String::from_utf8_lossy(pem);
    let mut certs = Vec::new();
    let mut rest = text.as_ref();
    while let Some(start) = rest.find(BEGIN) {
        let Some(len) = rest[start..].find(END) else {
            return Err(format!("certificate {} has no END line", certs.len() + 1));
        };
        let block = &rest[start..start + len + END.len()];
        let bad = |e: reqwest::Error| format!("certificate {}: {}", certs.len() + 1, innermost(&e));
        let cert = reqwest::Certificate::from_pem(block.as_bytes()).map_err(bad)?;
        reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(cert)
            .build()
            .map_err(bad)?;
        certs.push(block.as_bytes().to_vec());
        rest = &rest[start + len + END.len()..];
    }
    Ok(certs)
}

impl ChatClient {
    pub fn new(cfg: ClientConfig) -> Result<Self, ClientError> {
        if !matches!(cfg.base_url.scheme(), "http" | "https") {
            return Err(ClientError::Config(format!(
                "base url must be http or https: {}",
                cfg.base_url
            )));
        }
        let mut headers = header::HeaderMap::new();
        if let Some(k) = &cfg.api_key {
            headers.insert(header::AUTHORIZATION, k.header()?);
        }
        let mut builder = reqwest::Client::builder();
        if let ServerCheck::Tls {
            ca_certs: Some(certs),
        } = &cfg.server
        {
            // A private CA replaces the public roots (as curl's --cacert does): anyone with
            // a publicly trusted certificate for the server's name could stand in for it.
            builder = builder.tls_built_in_root_certs(false);
            for pem in &certs.0 {
                let cert = reqwest::Certificate::from_pem(pem)
                    .map_err(|e| ClientError::Config(format!("llm.ca_file: {e}")))?;
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .default_headers(headers)
            .timeout(cfg.timeout)
            .connect_timeout(cfg.connect_timeout)
            // A redirect would lead past the server check to anyone.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("sched_hint-tuner/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Config(e.to_string()))?;
        Ok(ChatClient {
            http,
            chat_url: endpoint(&cfg.base_url, "v1/chat/completions")?,
            health_url: endpoint(&cfg.base_url, "health")?,
            cfg,
        })
    }

    pub fn base_url(&self) -> &Url {
        &self.cfg.base_url
    }

    fn verify_server(&self, url: &Url) -> Result<(), ClientError> {
        self.cfg.server.verify().map_err(|e| match e {
            // A server that is down, as a refused connection would have said.
            ServerCheckError::NotListening(_) => ClientError::Connect {
                url: url.to_string(),
                reason: e.to_string(),
            },
            e => ClientError::Untrusted {
                url: url.to_string(),
                reason: e.to_string(),
            },
        })
    }

    /// The body, up to `max_response_bytes`: a server that sends more is cut off there, so
    /// the tuner's memory does not grow with what a server chooses to send.
    async fn read_body(&self, mut resp: reqwest::Response) -> Result<String, ClientError> {
        let max = self.cfg.max_response_bytes;
        if resp.content_length().is_some_and(|n| n > max as u64) {
            return Err(ClientError::TooLarge(max));
        }
        let mut buf = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| self.transport_error(&self.chat_url, e))?
        {
            if buf.len() + chunk.len() > max {
                return Err(ClientError::TooLarge(max));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    fn transport_error(&self, url: &Url, e: reqwest::Error) -> ClientError {
        if e.is_timeout() {
            ClientError::Timeout(self.cfg.timeout.as_millis() as u64)
        } else if e.is_connect() || e.is_request() {
            // reqwest's own message names the URL only, and the key lives in a header.
            ClientError::Connect {
                url: url.to_string(),
                reason: sanitise(&innermost(&e), 200),
            }
        } else {
            ClientError::Body(sanitise(&e.to_string(), 200))
        }
    }

    /// One look at `/health`. A server without that endpoint (404; Ollama, LM Studio) counts as
    /// ready once it answers at all.
    pub async fn health(&self) -> Result<Health, ClientError> {
        self.verify_server(&self.health_url)?;
        // A health check answers at once or not at all: no need to wait a whole request timeout.
        let limit = self
            .cfg
            .connect_timeout
            .max(Duration::from_secs(2))
            .min(self.cfg.timeout);
        match self
            .http
            .get(self.health_url.clone())
            .timeout(limit)
            .send()
            .await
        {
            Ok(r) if r.status().is_success() || r.status() == StatusCode::NOT_FOUND => {
                Ok(Health::Ok)
            }
            Ok(r) if r.status() == StatusCode::SERVICE_UNAVAILABLE => Ok(Health::Loading),
            Ok(r) => Err(ClientError::Status {
                status: r.status().as_u16(),
                body: "from /health".into(),
            }),
            Err(e) => Err(self.transport_error(&self.health_url, e)),
        }
    }

    /// Polls `/health` until it is ok, for at most `max_wait`. Gives up at once on a server
    /// that is down (connection refused): only a loading server is worth waiting for.
    pub async fn wait_healthy(&self, max_wait: Duration) -> Result<(), ClientError> {
        let start = Instant::now();
        loop {
            match self.health().await? {
                Health::Ok => return Ok(()),
                Health::Loading if start.elapsed() >= max_wait => {
                    return Err(ClientError::Status {
                        status: 503,
                        body: "server still loading its model".into(),
                    })
                }
                Health::Loading => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }

    /// Sends one chat completion request, retrying 429 and 503.
    pub async fn chat(&self, body: &Value, metrics: &LlmMetrics) -> Result<ChatReply, ClientError> {
        let mut attempt = 0u32;
        loop {
            // Before every attempt: the server may have gone and its port been taken.
            self.verify_server(&self.chat_url)?;
            LlmMetrics::inc(&metrics.requests);
            let start = Instant::now();
            let res = self
                .http
                .post(self.chat_url.clone())
                .json(body)
                .send()
                .await;
            let resp = match res {
                Ok(r) => r,
                Err(e) => {
                    metrics.latency(start.elapsed());
                    LlmMetrics::inc(&metrics.request_errors);
                    let err = self.transport_error(&self.chat_url, e);
                    if matches!(err, ClientError::Timeout(_)) {
                        LlmMetrics::inc(&metrics.timeouts);
                    }
                    return Err(err);
                }
            };
            let status = resp.status();
            let retry_after = resp
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|s| s.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let text = self.read_body(resp).await;
            metrics.latency(start.elapsed());
            let text = match text {
                Ok(t) => t,
                Err(err) => {
                    LlmMetrics::inc(&metrics.request_errors);
                    if matches!(err, ClientError::Timeout(_)) {
                        LlmMetrics::inc(&metrics.timeouts);
                    }
                    return Err(err);
                }
            };
            if status.is_success() {
                return parse_completion(&text);
            }
            LlmMetrics::inc(&metrics.request_errors);
            let retryable = matches!(
                status,
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
            );
            if !retryable || attempt >= self.cfg.max_retries {
                return Err(ClientError::Status {
                    status: status.as_u16(),
                    body: error_text(&text),
                });
            }
            let backoff = retry_after
                .unwrap_or_else(|| self.cfg.backoff.saturating_mul(1 << attempt.min(16)))
                .min(self.cfg.max_backoff);
            tracing::debug!(
                status = status.as_u16(),
                backoff_ms = backoff.as_millis() as u64,
                "llm server busy, retrying"
            );
            attempt += 1;
            LlmMetrics::inc(&metrics.retries);
            tokio::time::sleep(backoff).await;
        }
    }
}

fn parse_completion(text: &str) -> Result<ChatReply, ClientError> {
    let c: Completion = serde_json::from_str(text).map_err(|e| ClientError::Body(e.to_string()))?;
    let content = c
        .choices
        .into_iter()
        .next()
        .and_then(|ch| ch.message.content)
        .ok_or_else(|| ClientError::Body("no choices[0].message.content".into()))?;
    let u = c.usage.unwrap_or_default();
    Ok(ChatReply {
        content,
        prompt_tokens: u.prompt_tokens,
        completion_tokens: u.completion_tokens,
    })
}

/// The server's error message, short and printable: `{"error":{"message":...}}` when present.
fn error_text(body: &str) -> String {
    let msg = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| body.to_string());
    sanitise(&msg, 200)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_accept_v1_suffix() {
        for base in [
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080/",
            "http://127.0.0.1:8080/v1",
            "http://127.0.0.1:8080/v1/",
        ] {
            let b = Url::parse(base).unwrap();
            assert_eq!(
                endpoint(&b, "v1/chat/completions").unwrap().as_str(),
                "http://127.0.0.1:8080/v1/chat/completions",
                "{base}"
            );
            assert_eq!(
                endpoint(&b, "health").unwrap().as_str(),
                "http://127.0.0.1:8080/health"
            );
        }
        let b = Url::parse("http://gw.example/llm/v1").unwrap();
        assert_eq!(
            endpoint(&b, "health").unwrap().as_str(),
            "http://gw.example/llm/health"
        );
    }

    #[test]
    fn api_key_is_never_printed() {
        let k = ApiKey::new("sk-very-secret");
        assert!(!format!("{k:?} {k}").contains("secret"));
        let cfg = ClientConfig {
            base_url: Url::parse("http://127.0.0.1:1").unwrap(),
            api_key: Some(k),
            timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            max_retries: 0,
            backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(1),
            server: ServerCheck::Tls { ca_certs: None },
            max_response_bytes: 1024,
        };
        assert!(!format!("{cfg:?}").contains("secret"));
        let c = ChatClient::new(cfg).unwrap();
        assert!(!format!("{c:?}").contains("secret"));
        assert!(ApiKey::new("bad\nkey").header().is_err());
    }

    #[test]
    fn completion_parsing() {
        let ok = r#"{"choices":[{"message":{"role":"assistant","content":"{}"}}],"usage":{"prompt_tokens":5,"completion_tokens":2}}"#;
        assert_eq!(
            parse_completion(ok).unwrap(),
            ChatReply {
                content: "{}".into(),
                prompt_tokens: 5,
                completion_tokens: 2
            }
        );
        assert!(parse_completion(r#"{"choices":[]}"#).is_err());
        assert!(parse_completion(r#"{"choices":[{"message":{"content":null}}]}"#).is_err());
        assert!(parse_completion("<html>").is_err());
        assert_eq!(
            error_text(r#"{"error":{"code":400,"message":"bad\nschema"}}"#),
            "bad schema"
        );
    }
}
