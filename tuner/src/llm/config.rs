//! What the classifier runs with: [`LlmConfig`], built from the validated `[llm]` section
//! ([`LlmSection`], parsed and range-checked by the config module) and `[external]` (switch,
//! endpoint, timeout, batch size).

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::Url;

use super::client::{ApiKey, ClientConfig};
use super::server_check::{loopback_addrs, CaCerts, ServerCheck};
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
    #[error("llm.ca_file {path}: {reason}")]
    CaFile { path: PathBuf, reason: String },
    #[error("llm.api_key_file {0} is empty")]
    KeyFileEmpty(PathBuf),
    #[error(
        "llm.api_key_file {path} is open to other users (owner uid {uid}, mode {mode:04o}); \
         make it root's and chmod 600"
    )]
    KeyFileOpen { path: PathBuf, uid: u32, mode: u32 },
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
            return Err(bad("want http://host:port or https://host:port".into()));
        }
        let mut server = server_check(&base_url, s).map_err(bad)?;
        if let Some(path) = &s.ca_file {
            let ServerCheck::Tls { ca_certs } = &mut server else {
                return Err(bad("llm.ca_file is only for an https:// endpoint".into()));
            };
            *ca_certs = Some(CaCerts(ca_file(path)?));
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
                server,
                max_response_bytes: (s.max_response_kib as usize).saturating_mul(1024),
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

/// How the server at `url` is recognised (`super::server_check`).
fn server_check(url: &Url, s: &LlmSection) -> Result<ServerCheck, String> {
    if url.scheme() == "https" {
        return Ok(ServerCheck::Tls { ca_certs: None });
    }
    let host = url.host_str().unwrap_or_default();
    let Some(addrs) = loopback_addrs(host) else {
        if s.plain_http_remote {
            return Ok(ServerCheck::Unverified);
        }
        return Err(
            "nothing can tell who answers plain http on another host; use https://, or set \
             llm.plain_http_remote = true"
                .into(),
        );
    };
    // Root, and the uid the tuner runs as (root in production; the test user in tests).
    let mut uids = vec![0, nix::unistd::geteuid().as_raw()];
    uids.extend(&s.server_uids);
    uids.sort_unstable();
    uids.dedup();
    Ok(ServerCheck::Loopback {
        port: url.port_or_known_default().unwrap_or(80),
        addrs,
        uids,
        proc_root: PathBuf::from("/proc"),
    })
}

/// The PEM certificates of `llm.ca_file`, checked: whoever can write the file can make the
/// tuner trust a server of their own, so it must be root's or the tuner's, writable by
/// nobody else, and hold at least one certificate.
/// Why a file the tuner trusts (a CA, an API key) was refused.
#[derive(Debug)]
enum GuardedFileError {
    Io(std::io::Error),
    NotRegular,
    /// Owned by another user, or open to others as the caller's mask says.
    Open {
        uid: u32,
        mode: u32,
    },
    TooLarge,
}

/// Reads `path` if it is a regular file owned by root or the tuner's uid, with none of
/// `forbidden_mode` set and at most `max_bytes` long. Checked and read through one
/// descriptor, so the file checked is the file read; opened without blocking and without
/// becoming a controlling terminal, so a FIFO or a tty put there is refused instead of
/// hanging the start.
fn read_guarded(
    path: &std::path::Path,
    forbidden_mode: u32,
    max_bytes: u64,
) -> Result<Vec<u8>, GuardedFileError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(GuardedFileError::Io)?;
    let md = file.metadata().map_err(GuardedFileError::Io)?;
    if !md.is_file() {
        return Err(GuardedFileError::NotRegular);
    }
    let own = nix::unistd::geteuid().as_raw();
    if md.mode() & forbidden_mode != 0 || (md.uid() != 0 && md.uid() != own) {
        return Err(GuardedFileError::Open {
            uid: md.uid(),
            mode: md.mode() & 0o7777,
        });
    }
    let mut bytes = Vec::new();
    (&mut file)
        .take(max_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(GuardedFileError::Io)?;
    if bytes.len() as u64 > max_bytes {
        return Err(GuardedFileError::TooLarge);
    }
    Ok(bytes)
}

/// The certificates of `llm.ca_file`, a PEM block each: whoever can write the file can make
/// the tuner trust a server of their own, so it must be root's or the tuner's and writable
/// by nobody else. Only certificates are kept (a combined PEM may hold a key too).
fn ca_file(path: &std::path::Path) -> Result<Vec<Vec<u8>>, LlmConfigError> {
    let err = |reason: String| LlmConfigError::CaFile {
        path: path.to_path_buf(),
        reason,
    };
    let pem = read_guarded(path, 0o022, MAX_CA_FILE_BYTES).map_err(|e| match e {
        GuardedFileError::Io(e) => err(e.to_string()),
        GuardedFileError::NotRegular => err("not a regular file".into()),
        GuardedFileError::Open { uid, mode } => err(format!(
            "others can change it (owner uid {uid}, mode {mode:04o}); make it root's (or the \
             tuner's user's) and chmod 644"
        )),
        GuardedFileError::TooLarge => err(format!(
            "larger than {} KiB; a CA bundle is a few hundred",
            MAX_CA_FILE_BYTES / 1024
        )),
    })?;
    let certs = super::client::ca_certs_from_pem(&pem).map_err(err)?;
    if certs.is_empty() {
        return Err(err("no PEM certificate in it".into()));
    }
    Ok(certs)
}

/// Debian's whole public bundle is about 220 KiB.
const MAX_CA_FILE_BYTES: u64 = 1024 * 1024;

/// An API key file holds one line.
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

fn api_key(s: &LlmSection) -> Result<Option<ApiKey>, LlmConfigError> {
    if let Some(path) = &s.api_key_file {
        // A key others can read or replace is no secret: whoever reads it can be the tuner
        // to the server, and whoever writes it chooses which server the tuner believes.
        let bytes = read_guarded(path, 0o077, MAX_KEY_FILE_BYTES).map_err(|e| match e {
            GuardedFileError::Open { uid, mode } => LlmConfigError::KeyFileOpen {
                path: path.clone(),
                uid,
                mode,
            },
            GuardedFileError::Io(source) => LlmConfigError::KeyFile {
                path: path.clone(),
                source,
            },
            GuardedFileError::NotRegular => LlmConfigError::KeyFile {
                path: path.clone(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not a regular file"),
            },
            GuardedFileError::TooLarge => LlmConfigError::KeyFile {
                path: path.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::FileTooLarge,
                    format!("larger than {} KiB", MAX_KEY_FILE_BYTES / 1024),
                ),
            },
        })?;
        let text = String::from_utf8_lossy(&bytes);
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
    fn the_server_is_recognised_by_tls_or_its_listener() {
        let s = LlmSection::default();
        let c = LlmConfig::new("https://llm.example:8443/v1", 1000, 8, &s).unwrap();
        assert_eq!(c.client.server, ServerCheck::Tls { ca_certs: None });
        let c = LlmConfig::new("http://127.0.0.1:8080", 1000, 8, &s).unwrap();
        assert!(matches!(
            &c.client.server,
            ServerCheck::Loopback { port: 8080, uids, .. } if uids.contains(&0)
        ));
        let e = LlmConfig::new("http://10.0.2.100:8080", 1000, 8, &s).unwrap_err();
        assert!(e.to_string().contains("plain http"), "{e}");
        let opted = LlmSection {
            plain_http_remote: true,
            ..Default::default()
        };
        let c = LlmConfig::new("http://10.0.2.100:8080", 1000, 8, &opted).unwrap();
        assert_eq!(c.client.server, ServerCheck::Unverified);
        assert_eq!(c.client.max_response_bytes, 256 * 1024);
    }

    #[test]
    fn a_ca_file_is_closed_to_writers_holds_a_certificate_and_goes_with_https() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ca.pem");
        let ca = rcgen::generate_simple_self_signed(vec!["llm.lan".to_string()]).unwrap();
        // A combined file, as stunnel takes: only the certificate is kept.
        std::fs::write(&p, ca.signing_key.serialize_pem() + &ca.cert.pem()).unwrap();
        std::fs::set_permissions(&p, PermissionsExt::from_mode(0o644)).unwrap();
        let s = LlmSection {
            ca_file: Some(p.clone()),
            ..Default::default()
        };
        let c = LlmConfig::new("https://llm.lan:8443/v1", 1000, 8, &s).unwrap();
        assert!(matches!(
            &c.client.server,
            ServerCheck::Tls { ca_certs: Some(certs) } if certs.0.len() == 1
        ));
        super::super::client::ChatClient::new(c.client).unwrap();

        let e = LlmConfig::new("http://127.0.0.1:8080", 1000, 8, &s).unwrap_err();
        assert!(e.to_string().contains("only for an https://"), "{e}");
        std::fs::set_permissions(&p, PermissionsExt::from_mode(0o664)).unwrap();
        let e = LlmConfig::new("https://llm.lan:8443", 1000, 8, &s).unwrap_err();
        assert!(e.to_string().contains("mode 0664"), "{e}");
        std::fs::write(&p, "not a certificate\n").unwrap();
        std::fs::set_permissions(&p, PermissionsExt::from_mode(0o644)).unwrap();
        let e = LlmConfig::new("https://llm.lan:8443", 1000, 8, &s).unwrap_err();
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
        std::fs::write(
            &p,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let e = LlmConfig::new("https://llm.lan:8443", 1000, 8, &s).unwrap_err();
        assert!(e.to_string().contains("certificate 1:"), "{e}");
        let fifo = dir.path().join("fifo.pem");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let at_fifo = LlmSection {
            ca_file: Some(fifo),
            ..Default::default()
        };
        let e = LlmConfig::new("https://llm.lan:8443", 1000, 8, &at_fifo).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let gone = LlmSection {
            ca_file: Some(dir.path().join("missing.pem")),
            ..Default::default()
        };
        let e = LlmConfig::new("https://llm.lan:8443", 1000, 8, &gone).unwrap_err();
        assert!(e.to_string().contains("missing.pem"), "{e}");
    }

    #[test]
    fn a_key_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key");
        std::fs::write(&p, "sk-secret\n").unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
        let s = LlmSection {
            api_key_file: Some(p),
            ..Default::default()
        };
        let e = LlmConfig::new("http://127.0.0.1:1", 1, 1, &s).unwrap_err();
        assert!(e.to_string().contains("mode 0644"), "{e}");
    }

    #[test]
    fn api_key_from_file_or_env_is_redacted() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key");
        std::fs::write(&p, "sk-secret-123\nignored\n").unwrap();
        let private = std::os::unix::fs::PermissionsExt::from_mode(0o600);
        std::fs::set_permissions(&p, private).unwrap();
        let s = LlmSection {
            api_key_file: Some(p),
            ..Default::default()
        };
        let c = LlmConfig::new("http://127.0.0.1:1", 1000, 8, &s).unwrap();
        assert_eq!(c.client.api_key, Some(ApiKey::new("sk-secret-123")));
        assert!(!format!("{c:?}").contains("sk-secret"));

        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        std::fs::set_permissions(&empty, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let s = LlmSection {
            api_key_file: Some(empty),
            ..Default::default()
        };
        assert!(matches!(
            LlmConfig::new("http://127.0.0.1:1", 1, 1, &s),
            Err(LlmConfigError::KeyFileEmpty(_))
        ));

        let s = LlmSection {
            api_key_env: Some("SCHED_HINT_TEST_SURELY_UNSET".into()),
            ..Default::default()
        };
        let e = LlmConfig::new("http://127.0.0.1:1", 1, 1, &s).unwrap_err();
        assert_eq!(
            e.to_string(),
            "llm.api_key_env names SCHED_HINT_TEST_SURELY_UNSET, which is not set"
        );
    }
}
