//! An `https://` endpoint, live: the real llama.cpp server behind a TLS front in this process
//! (rustls, as nginx or stunnel would put in front of a model server on the LAN), with a
//! certificate for `localhost` from a private CA made here. The tuner must complete the
//! handshake and get answers when `[llm] ca_file` names that CA (which then replaces the
//! public roots), and refuse the server when it does not or when the name does not match.

// Each test holds the real-server guard (a std mutex) for its whole body, awaits included, on
// purpose: see llm_real.rs.
#![allow(clippy::await_holding_lock)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;
use tuner::classify::external::ExternalClassifier;

use crate::llm_support::{classifier, config, pids_of, write_private, Procs, RealServer};

const BASE: i32 = 6_100_000;

/// A TLS front on 127.0.0.1 that forwards each connection to the real server's port.
struct TlsFront {
    port: u16,
    /// PEM of the CA that signed the front's certificate.
    ca_pem: String,
    /// Handshakes the front completed.
    handshakes: Arc<AtomicUsize>,
}

impl TlsFront {
    async fn start(backend_port: u16) -> TlsFront {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let tls = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone()], key)
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(tls));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let handshakes = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&handshakes);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, count) = (acceptor.clone(), Arc::clone(&count));
                tokio::spawn(async move {
                    // A client that refuses the certificate ends the handshake: nothing to do.
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    count.fetch_add(1, Ordering::SeqCst);
                    let mut backend = TcpStream::connect(("127.0.0.1", backend_port))
                        .await
                        .unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut backend).await;
                });
            }
        });
        TlsFront {
            port,
            ca_pem: ca.pem(),
            handshakes,
        }
    }
}

#[tokio::test]
async fn https_with_a_private_ca_answers_and_without_it_is_refused() {
    let Some((srv, _serial)) = RealServer::get() else {
        return;
    };
    let front = TlsFront::start(srv.port).await;
    let procs = Procs::new();
    let facts = procs.ordinary(BASE, 1);
    // Mode 0600 whatever the umask: the tuner refuses a CA file others can write.
    let ca = procs.dir.path().join("llm-ca.pem");
    write_private(&ca, &front.ca_pem);
    let https = |host: &str| format!("https://{host}:{}", front.port);

    // The CA named: the handshake completes and the model answers through it.
    let trusted = classifier(&config(
        &https("localhost"),
        &procs.dir.path().join("a.json"),
        |t| {
            t.timeout_ms = 60_000;
            t.llm.api_key_file = Some(srv.key_file.clone());
            t.llm.ca_file = Some(ca.clone());
        },
    ));
    let v = trusted.classify(facts.clone()).await.unwrap();
    assert_eq!(pids_of(&v), vec![BASE]);
    let done = front.handshakes.load(Ordering::SeqCst);
    eprintln!(
        "https via a private CA: {} verdict, {done} handshakes",
        v.len()
    );
    assert!(done >= 1, "the answer came through TLS");

    // No CA: the public roots do not know it, so no request goes out.
    let unknown = classifier(&config(
        &https("localhost"),
        &procs.dir.path().join("b.json"),
        |t| t.llm.api_key_file = Some(srv.key_file.clone()),
    ));
    let e = unknown.classify(facts.clone()).await.unwrap_err();
    eprintln!("https without the CA: {e}");
    assert!(e.to_string().contains("certificate"), "{e}");

    // The CA named, but the endpoint's name is not the certificate's.
    let wrong_name = classifier(&config(
        &https("127.0.0.1"),
        &procs.dir.path().join("c.json"),
        |t| {
            t.llm.api_key_file = Some(srv.key_file.clone());
            t.llm.ca_file = Some(ca.clone());
        },
    ));
    let e = wrong_name.classify(facts).await.unwrap_err();
    eprintln!("https to a name the certificate lacks: {e}");
    assert!(e.to_string().contains("certificate"), "{e}");
    assert_eq!(
        front.handshakes.load(Ordering::SeqCst),
        done,
        "a refused server completes no handshake"
    );
}
