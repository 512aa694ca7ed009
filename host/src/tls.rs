//! TLS termination for the main and the admin listener: rustls (its
//! aws-lc-rs provider, already the HTTP client's), HTTP/1.1 and HTTP/2 by
//! ALPN, TLS 1.2 and 1.3 only with the provider's default suites (AEAD,
//! forward-secret: no CBC, no RSA key exchange).
//!
//! - [`Certs`] is the certificate in force, behind an `ArcSwap`: a handshake
//!   reads it, a reload replaces it, connections already open keep theirs.
//!   The files are watched ([`watch_files`]); a pair that does not load is
//!   logged and the old one serves on.
//! - Client certificates (`client_ca`): verified against that CA, required
//!   or optional; the verified subject reaches the edge as [`ClientCert`]
//!   (and plugins as the attribute `tls.client-subject`).
//! - [`serve`] is the accept loop for TLS listeners (hyper's automatic
//!   HTTP/1.1-or-2 connection, with upgrades for WebSocket). Plain listeners
//!   keep `axum::serve`: nothing changes on their path.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{AcmeChallenge, CertSource, ClientAuth, TlsConfig};

pub mod acme;

/// How long a client may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The verified subject of the client's certificate (e.g. `CN=alice, O=Example`),
/// a request extension on TLS listeners with client certificates.
#[derive(Debug, Clone)]
pub struct ClientCert(pub Arc<str>);

/// The certificate in force (see the module docs), and the TLS-ALPN-01
/// answers of an ACME order in progress.
#[derive(Debug, Default)]
pub struct Certs {
    /// `None` only while ACME obtains the first certificate.
    current: ArcSwapOption<CertifiedKey>,
    /// Challenge certificates by domain (RFC 8737), served only to a
    /// handshake that offers nothing but `acme-tls/1`.
    challenges: std::sync::Mutex<HashMap<String, Arc<CertifiedKey>>>,
}

/// The ALPN protocol of TLS-ALPN-01 validation (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

impl Certs {
    pub fn new(first: Option<CertifiedKey>) -> Arc<Certs> {
        let certs = Certs::default();
        certs.current.store(first.map(Arc::new));
        Arc::new(certs)
    }

    /// Serves `next` from the next handshake on.
    pub fn replace(&self, next: CertifiedKey) {
        self.current.store(Some(Arc::new(next)));
    }

    /// The chain in force (DER, leaf first), if any.
    pub fn chain(&self) -> Option<Vec<CertificateDer<'static>>> {
        self.current.load().as_ref().map(|c| c.cert.clone())
    }

    /// Answers TLS-ALPN-01 validation for `domain` with `cert` until
    /// [`Certs::clear_challenge`].
    pub fn set_challenge(&self, domain: &str, cert: CertifiedKey) {
        self.challenges
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(domain.to_ascii_lowercase(), Arc::new(cert));
    }

    pub fn clear_challenge(&self, domain: &str) {
        self.challenges
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&domain.to_ascii_lowercase());
    }
}

impl ResolvesServerCert for Certs {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let mut offered = hello.alpn().into_iter().flatten();
        if offered.next() == Some(ACME_TLS_ALPN) && offered.next().is_none() {
            let name = hello.server_name()?.to_ascii_lowercase();
            return self
                .challenges
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(&name)
                .cloned();
        }
        self.current.load_full()
    }
}

/// Makes aws-lc-rs the process's rustls provider: the clients that ask
/// rustls for it (instant-acme's, WebSocket upstreams') then use the one
/// the listeners use. Idempotent (an error only says one is set).
pub fn install_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Reads a PEM chain and its PEM private key into a certified key (the key
/// must match the leaf).
pub fn load_pair(cert: &Path, key: &Path) -> Result<CertifiedKey, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate in it", cert.display()));
    }
    let key_der =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    pair_from_der(chain, key_der)
        .map_err(|e| format!("{} and {}: {e}", cert.display(), key.display()))
}

/// A certified key from DER parts (also what ACME hands over).
pub fn pair_from_der(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<CertifiedKey, String> {
    CertifiedKey::from_der(chain, key, &provider()).map_err(|e| e.to_string())
}

/// The rustls configuration of a listener: `certs` served, client
/// certificates per `settings`.
pub fn server_config(
    settings: &TlsConfig,
    certs: Arc<Certs>,
) -> Result<Arc<rustls::ServerConfig>, String> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?;
    let builder = match &settings.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            let pems =
                CertificateDer::pem_file_iter(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
            for c in pems {
                let c = c.map_err(|e| format!("{}: {e}", ca.display()))?;
                roots.add(c).map_err(|e| format!("{}: {e}", ca.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("{}: no certificate in it", ca.display()));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
            let verifier = match settings.client_auth {
                ClientAuth::Required => verifier,
                ClientAuth::Optional => verifier.allow_unauthenticated(),
            };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| e.to_string())?)
        }
    };
    let mut config = builder.with_cert_resolver(certs);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    if let CertSource::Acme(a) = &settings.source
        && a.challenge == AcmeChallenge::TlsAlpn01
    {
        config.alpn_protocols.push(ACME_TLS_ALPN.to_vec());
    }
    Ok(Arc::new(config))
}

/// Watches `cert` and `key` for as long as `stop` is not cancelled and
/// loads them again when either changes (a pair that does not load is
/// logged; the old one serves on).
pub fn watch_files(certs: Arc<Certs>, cert: PathBuf, key: PathBuf, stop: CancellationToken) {
    use notify::{RecursiveMode, Watcher};
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let files = [cert.clone(), key.clone()];
    let names: Vec<_> = files
        .iter()
        .filter_map(|f| f.file_name().map(ToOwned::to_owned))
        .collect();
    let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(event) = res
            && !event.kind.is_access()
            && event
                .paths
                .iter()
                .any(|p| p.file_name().is_some_and(|n| names.iter().any(|m| m == n)))
        {
            let _ = tx.send(());
        }
    });
    let mut watcher = match watcher {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "TLS: certificate files are not watched");
            return;
        }
    };
    let mut dirs: Vec<PathBuf> = files
        .iter()
        .map(|f| match f.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        })
        .collect();
    dirs.dedup();
    for d in &dirs {
        if let Err(e) = watcher.watch(d, RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %d.display(), error = %e, "TLS: certificate folder not watched");
        }
    }
    tokio::spawn(async move {
        let _watcher = watcher;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                got = rx.recv() => if got.is_none() { return },
            }
            // Settle: a certificate and its key are seldom written at once.
            tokio::time::sleep(Duration::from_millis(200)).await;
            while rx.try_recv().is_ok() {}
            match load_pair(&cert, &key) {
                Ok(next) => {
                    certs.replace(next);
                    tracing::info!(cert = %cert.display(), "TLS: certificate reloaded");
                }
                Err(e) => tracing::warn!(
                    error = %e,
                    "TLS: the changed certificate does not load; the previous one serves on"
                ),
            }
        }
    });
}

/// The subject of the verified client certificate of `conn`, if any.
fn client_subject(conn: &rustls::ServerConnection) -> Option<Arc<str>> {
    let leaf = conn.peer_certificates()?.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).ok()?;
    Some(Arc::from(cert.subject().to_string()))
}

/// Serves `app` on `listener` over TLS until `stop`, then waits for open
/// connections to finish (the caller bounds that with its grace period).
/// Each request carries `ConnectInfo<SocketAddr>` as with `axum::serve`,
/// and [`ClientCert`] when the client presented a verified certificate.
pub async fn serve<S>(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    app: S,
    stop: CancellationToken,
) -> std::io::Result<()>
where
    S: tower::Service<
            axum::extract::Request,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (tcp, peer) = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and the like: wait rather than spin.
                    tracing::warn!(error = %e, "TLS listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let subject = client_subject(tls.get_ref().1).map(ClientCert);
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let mut req = req.map(axum::body::Body::new);
                    req.extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                    if let Some(s) = &subject {
                        req.extensions_mut().insert(s.clone());
                    }
                    tower::ServiceExt::oneshot(app.clone(), req)
                });
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(%peer, error = %e, "TLS connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// What a listener's TLS needs at start: the certificate in force and the
/// rustls configuration serving it. Files are watched until `stop`; an
/// ACME certificate is loaded from its cache and kept fresh until `stop`
/// (`https_port` is where HTTP-01's listener redirects other requests to).
pub fn start(
    settings: &TlsConfig,
    https_port: u16,
    stop: CancellationToken,
) -> Result<(Arc<Certs>, Arc<rustls::ServerConfig>), String> {
    match &settings.source {
        CertSource::Files { cert, key } => {
            let certs = Certs::new(Some(load_pair(cert, key)?));
            let config = server_config(settings, Arc::clone(&certs))?;
            watch_files(Arc::clone(&certs), cert.clone(), key.clone(), stop);
            Ok((certs, config))
        }
        CertSource::Acme(acme) => {
            let certs = Certs::new(None);
            let config = server_config(settings, Arc::clone(&certs))?;
            acme::start(acme.clone(), Arc::clone(&certs), https_port, stop)?;
            Ok((certs, config))
        }
    }
}
