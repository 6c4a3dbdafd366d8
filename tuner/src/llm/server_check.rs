//! Who answers at the endpoint. The model's answers set other users' priorities and every
//! request carries their processes' facts (and the API key), so the tuner talks only to a
//! server it can tell apart from an impostor (Documentation/tuner-trust-model.md):
//!
//! - `https://`: the server's certificate, checked by TLS against the public roots, or
//!   against the CA of `[llm] ca_file` alone (a private one, for a server on the LAN);
//! - `http://` on a loopback address: the listening socket, owned by a uid the admin trusts
//!   (root, the tuner's own uid, or one named in `[llm] server_uids`). Any user can bind a
//!   free port above 1023, so a server that is down leaves its port to whoever takes it;
//!   the owner is read from `/proc/net/tcp` and `tcp6` before every request.
//! - plain `http://` to another host only where the admin said so (`plain_http_remote`):
//!   nothing on the path can be checked.
//!
//! ```text
//! $ cat /proc/net/tcp    (uid 65534 listening on 127.0.0.1:8080, state 0A = LISTEN)
//!   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 65534 0 4242 ...
//! -> "llm server 127.0.0.1:8080 is not trusted: port 8080 is held by uid 65534"
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use crate::config::llm::loopback_addrs;
use std::path::{Path, PathBuf};

/// The certificates of `llm.ca_file`, one PEM block each (nothing else of the file is
/// kept); `Debug` shows how many.
#[derive(Clone, PartialEq)]
pub struct CaCerts(pub Vec<Vec<u8>>);

impl std::fmt::Debug for CaCerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CaCerts({} certificates)", self.0.len())
    }
}

/// How the server behind an endpoint is recognised.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerCheck {
    /// `https://`: TLS verifies the certificate against the public roots or, where
    /// `llm.ca_file` names a private CA, against that CA alone (read and checked at start).
    Tls { ca_certs: Option<CaCerts> },
    /// `http://` to this host: the listener on `port` must belong to one of `uids`.
    Loopback {
        port: u16,
        /// The addresses the endpoint's host names (127.0.0.1, ::1 for `localhost`).
        addrs: Vec<IpAddr>,
        uids: Vec<u32>,
        /// Where `net/tcp` and `net/tcp6` are read (`/proc`; a fixture in tests).
        proc_root: PathBuf,
    },
    /// Plain `http://` to another host, allowed by `plain_http_remote`.
    Unverified,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ServerCheckError {
    #[error("nothing listens on port {0}")]
    NotListening(u16),
    #[error("port {port} is held by uid {uid}, which [llm] server_uids does not trust")]
    Untrusted { port: u16, uid: u32 },
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
}

impl ServerCheck {
    /// Whether the server may be sent a request now.
    pub fn verify(&self) -> Result<(), ServerCheckError> {
        let ServerCheck::Loopback {
            port,
            addrs,
            uids,
            proc_root,
        } = self
        else {
            return Ok(());
        };
        let owners = listeners(proc_root, *port, addrs)?;
        if owners.is_empty() {
            return Err(ServerCheckError::NotListening(*port));
        }
        // Every socket that could take the connection must be trusted: with SO_REUSEPORT the
        // kernel spreads connections over all of them.
        match owners.into_iter().find(|u| !uids.contains(u)) {
            Some(uid) => Err(ServerCheckError::Untrusted { port: *port, uid }),
            None => Ok(()),
        }
    }
}

/// The uids owning listening TCP sockets on `port` that a connection to one of `addrs` can
/// reach: bound to that address, to the wildcard, or (IPv6) to the IPv4 address it maps.
fn listeners(proc_root: &Path, port: u16, addrs: &[IpAddr]) -> Result<Vec<u32>, ServerCheckError> {
    let mut uids = Vec::new();
    for name in ["net/tcp", "net/tcp6"] {
        let path = proc_root.join(name);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            // A kernel without IPv6 has no tcp6.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && name == "net/tcp6" => continue,
            Err(e) => {
                return Err(ServerCheckError::Read {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })
            }
        };
        for line in text.lines().skip(1) {
            if let Some((addr, p, uid)) = parse_listener(line) {
                if p == port && reaches(addr, addrs) {
                    uids.push(uid);
                }
            }
        }
    }
    Ok(uids)
}

fn reaches(bound: IpAddr, addrs: &[IpAddr]) -> bool {
    if bound.is_unspecified() {
        return true;
    }
    let bound = match bound {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(bound, IpAddr::V4),
        v4 => v4,
    };
    addrs.contains(&bound)
}

const TCP_LISTEN: &str = "0A";

/// `(local address, port, uid)` of a `/proc/net/tcp{,6}` line in state LISTEN.
fn parse_listener(line: &str) -> Option<(IpAddr, u16, u32)> {
    let f: Vec<&str> = line.split_whitespace().collect();
    // sl local rem st tx:rx tr:when retrnsmt uid ...
    if f.len() < 8 || f[3] != TCP_LISTEN {
        return None;
    }
    let (addr, port) = f[1].split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let uid = f[7].parse().ok()?;
    Some((parse_addr(addr)?, port, uid))
}

/// The kernel prints each 32-bit word of the address in host byte order.
fn parse_addr(hex: &str) -> Option<IpAddr> {
    let word = |i: usize| -> Option<[u8; 4]> {
        let w = u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok()?;
        Some(w.to_ne_bytes())
    };
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(word(0)?))),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            Some(IpAddr::V6(Ipv6Addr::from(b)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex4(a: Ipv4Addr) -> String {
        format!("{:08X}", u32::from_ne_bytes(a.octets()))
    }

    fn hex6(a: Ipv6Addr) -> String {
        a.octets()
            .chunks(4)
            .map(|c| format!("{:08X}", u32::from_ne_bytes([c[0], c[1], c[2], c[3]])))
            .collect()
    }

    fn line(addr: &str, port: u16, state: &str, uid: u32) -> String {
        format!(
            "   0: {addr}:{port:04X} 00000000:0000 {state} 00000000:00000000 00:00000000 00000000 {uid:>5}        0 4242 1 0 100 0 0 10 0"
        )
    }

    const HEAD: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode";

    fn proc_with(tcp: &[String], tcp6: &[String]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("net")).unwrap();
        let text = |ls: &[String]| format!("{HEAD}\n{}\n", ls.join("\n"));
        std::fs::write(d.path().join("net/tcp"), text(tcp)).unwrap();
        std::fs::write(d.path().join("net/tcp6"), text(tcp6)).unwrap();
        d
    }

    fn check(root: &Path, port: u16, addrs: Vec<IpAddr>) -> ServerCheck {
        ServerCheck::Loopback {
            port,
            addrs,
            uids: vec![0, 998],
            proc_root: root.to_path_buf(),
        }
    }

    const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[test]
    fn the_listener_owner_decides() {
        let lo = hex4(Ipv4Addr::LOCALHOST);
        let any = hex4(Ipv4Addr::UNSPECIFIED);
        // root on 127.0.0.1:8080, a connection (state 01) of nobody's on the same port
        let ok = proc_with(
            &[line(&lo, 8080, "0A", 0), line(&lo, 8080, "01", 65534)],
            &[],
        );
        assert_eq!(check(ok.path(), 8080, vec![LO]).verify(), Ok(()));
        assert_eq!(
            check(ok.path(), 8081, vec![LO]).verify(),
            Err(ServerCheckError::NotListening(8081))
        );
        // nobody on the wildcard, the dedicated server user on the port too
        let squat = proc_with(&[line(&any, 8080, "0A", 65534)], &[]);
        assert_eq!(
            check(squat.path(), 8080, vec![LO]).verify(),
            Err(ServerCheckError::Untrusted {
                port: 8080,
                uid: 65534
            })
        );
        // a listener on another loopback address cannot take the connection
        let other = proc_with(
            &[
                line(&hex4(Ipv4Addr::new(127, 0, 0, 2)), 8080, "0A", 65534),
                line(&lo, 8080, "0A", 998),
            ],
            &[],
        );
        assert_eq!(check(other.path(), 8080, vec![LO]).verify(), Ok(()));
    }

    #[test]
    fn ipv6_listeners_count_for_their_mapped_and_wildcard_addresses() {
        let mapped = Ipv4Addr::LOCALHOST.to_ipv6_mapped();
        let p = proc_with(&[], &[line(&hex6(mapped), 9000, "0A", 1000)]);
        assert!(matches!(
            check(p.path(), 9000, vec![LO]).verify(),
            Err(ServerCheckError::Untrusted { uid: 1000, .. })
        ));
        let p = proc_with(&[], &[line(&hex6(Ipv6Addr::UNSPECIFIED), 9000, "0A", 0)]);
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert_eq!(check(p.path(), 9000, vec![v6]).verify(), Ok(()));
        let p = proc_with(&[], &[line(&hex6(Ipv6Addr::LOCALHOST), 9000, "0A", 7)]);
        assert!(check(p.path(), 9000, vec![v6]).verify().is_err());
        assert_eq!(
            check(p.path(), 9000, vec![LO]).verify(),
            Err(ServerCheckError::NotListening(9000))
        );
    }

    #[test]
    fn hosts_that_are_this_one() {
        let lo = |s: &str| loopback_addrs(reqwest::Url::parse(s).unwrap().host_str().unwrap());
        assert_eq!(lo("http://127.0.0.1:1"), Some(vec![LO]));
        assert_eq!(lo("http://127.9.9.9:1").map(|v| v.len()), Some(1));
        assert_eq!(lo("http://[::1]:1").map(|v| v.len()), Some(1));
        assert_eq!(lo("http://LocalHost:1").map(|v| v.len()), Some(2));
        assert_eq!(lo("http://10.0.2.100:8080"), None);
        assert_eq!(lo("http://llm.example"), None);
    }

    #[test]
    fn the_live_table_parses() {
        // This host's own table: whatever is there must parse without error.
        let c = check(Path::new("/proc"), 1, vec![LO]);
        assert!(matches!(
            c.verify(),
            Ok(()) | Err(ServerCheckError::NotListening(1) | ServerCheckError::Untrusted { .. })
        ));
    }
}
