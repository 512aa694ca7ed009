//! Certificates from an ACME CA (`[server.tls.acme]`, RFC 8555) with
//! instant-acme as the protocol client; this module is the gateway's part:
//! when to order, how challenges are answered, where things are kept.
//!
//! - **Cache** (`cache` folder): `account-<dir>.json` (the account key and
//!   URL per directory) and `cert-<dir>.pem` / `key-<dir>.pem` (the chain
//!   and its key), all 0600. At start a cached certificate is served before
//!   the listener accepts, so a restart orders nothing while it is fresh.
//! - **Schedule**: a certificate is renewed `renew_before` its expiry (if
//!   that is longer than its whole lifetime, at two thirds of it, so a
//!   short-lived certificate is not renewed in a loop), and at once when it
//!   does not name every configured domain. The old certificate serves
//!   until the new one is in hand.
//! - **Challenges**: TLS-ALPN-01 on the TLS listener itself (a handshake
//!   offering only `acme-tls/1` gets the challenge certificate, see
//!   [`super::Certs`]); HTTP-01 on `http_listen`, which answers
//!   `/.well-known/acme-challenge/` and redirects everything else to HTTPS.
//! - **Failures** are logged with the CA's problem document and retried
//!   with backoff (5 s doubling to an hour); the gateway serves on. An
//!   account the CA no longer knows is registered again.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::Digest as _;
use tokio_util::sync::CancellationToken;

use super::Certs;
use crate::config::{AcmeChallenge, AcmeConfig};
use crate::secrets::write_private;

/// The first retry after a failed order; doubled up to [`MAX_RETRY`].
const MIN_RETRY: Duration = Duration::from_secs(5);
const MAX_RETRY: Duration = Duration::from_secs(3600);
/// How long an order may take from the first request to the certificate.
const ORDER_TIMEOUT: Duration = Duration::from_secs(120);

/// HTTP-01 answers by token, while an order is open.
type Answers = Arc<Mutex<HashMap<String, String>>>;

/// Loads the cached certificate into `certs` (so the first handshake has
/// it), binds the HTTP-01 listener if there is one, and spawns the task
/// that orders and renews until `stop`.
pub fn start(
    cfg: AcmeConfig,
    certs: Arc<Certs>,
    https_port: u16,
    stop: CancellationToken,
) -> Result<(), String> {
    std::fs::create_dir_all(&cfg.cache)
        .map_err(|e| format!("acme.cache {}: {e}", cfg.cache.display()))?;
    super::install_provider();
    let files = Files::new(&cfg);
    match files.load_certificate() {
        Ok(Some(pair)) => {
            let until = leaf_info(&pair.cert[0]).map(|i| humantime::format_rfc3339(i.not_after));
            tracing::info!(
                cert = %files.cert.display(),
                valid_until = %until.map(|u| u.to_string()).unwrap_or_default(),
                "ACME: certificate from the cache"
            );
            certs.replace(pair);
        }
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(error = %e, "ACME: the cached certificate does not load; ordering a new one")
        }
    }
    let answers = Answers::default();
    if let Some(addr) = cfg.http_listen {
        let std = std::net::TcpListener::bind(addr)
            .map_err(|e| format!("acme.http_listen {addr}: {e}"))?;
        std.set_nonblocking(true)
            .map_err(|e| format!("acme.http_listen {addr}: {e}"))?;
        let listener = tokio::net::TcpListener::from_std(std)
            .map_err(|e| format!("acme.http_listen {addr}: {e}"))?;
        tracing::info!(listen = %addr, "ACME: HTTP-01 listener");
        tokio::spawn(serve_http01(
            listener,
            Arc::clone(&answers),
            https_port,
            stop.clone(),
        ));
    }
    tokio::spawn(
        Manager {
            cfg,
            certs,
            files,
            answers,
            account: None,
        }
        .run(stop),
    );
    Ok(())
}

/// Where the cache keeps what belongs to one directory.
struct Files {
    account: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Files {
    fn new(cfg: &AcmeConfig) -> Files {
        // One set of files per directory: staging and production, or two
        // private CAs, do not overwrite each other's account.
        let digest = sha2::Sha256::digest(cfg.directory.as_bytes());
        let tag: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
        let at = |name: &str| cfg.cache.join(format!("{name}-{tag}"));
        Files {
            account: at("account").with_extension("json"),
            cert: at("cert").with_extension("pem"),
            key: at("key").with_extension("pem"),
        }
    }

    fn load_certificate(&self) -> Result<Option<CertifiedKey>, String> {
        if !self.cert.exists() || !self.key.exists() {
            return Ok(None);
        }
        super::load_pair(&self.cert, &self.key).map(Some)
    }

    fn save_certificate(&self, chain_pem: &str, key_pem: &str) -> std::io::Result<()> {
        // Key first: a crash between the two leaves a new key beside the
        // old chain, which does not load, and a new order follows.
        write_private(&self.key, key_pem.as_bytes())?;
        write_private(&self.cert, chain_pem.as_bytes())
    }
}

/// What the schedule needs of a certificate.
struct LeafInfo {
    not_before: SystemTime,
    not_after: SystemTime,
    names: Vec<String>,
}

fn leaf_info(der: &CertificateDer<'_>) -> Option<LeafInfo> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let at = |t: x509_parser::time::ASN1Time| {
        SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(t.timestamp()).unwrap_or(0))
    };
    let names = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => {
                        Some(d.to_ascii_lowercase())
                    }
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Some(LeafInfo {
        not_before: at(cert.validity().not_before),
        not_after: at(cert.validity().not_after),
        names,
    })
}

/// When the certificate `info` should be replaced (see the module docs).
fn renew_at(info: &LeafInfo, cfg: &AcmeConfig) -> SystemTime {
    let covers = cfg
        .domains
        .iter()
        .all(|d| info.names.contains(&d.to_ascii_lowercase()));
    if !covers {
        return SystemTime::UNIX_EPOCH;
    }
    let lifetime = info
        .not_after
        .duration_since(info.not_before)
        .unwrap_or_default();
    if cfg.renew_before >= lifetime {
        info.not_before + lifetime * 2 / 3
    } else {
        info.not_after - cfg.renew_before
    }
}

/// Why an order did not end in a certificate.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("{0}")]
    Acme(#[from] instant_acme::Error),
    #[error("{0}")]
    Other(String),
}

impl Failure {
    /// The CA says the account is gone (e.g. a test CA restarted).
    fn account_gone(&self) -> bool {
        matches!(self, Failure::Acme(instant_acme::Error::Api(p))
            if p.r#type.as_deref() == Some("urn:ietf:params:acme:error:accountDoesNotExist"))
    }
}

struct Manager {
    cfg: AcmeConfig,
    certs: Arc<Certs>,
    files: Files,
    answers: Answers,
    account: Option<Account>,
}

impl Manager {
    async fn run(mut self, stop: CancellationToken) {
        let mut retry = MIN_RETRY;
        loop {
            let due = self
                .certs
                .chain()
                .and_then(|c| leaf_info(&c[0]))
                .map(|info| renew_at(&info, &self.cfg));
            if let Some(due) = due {
                let wait = due.duration_since(SystemTime::now()).unwrap_or_default();
                if !wait.is_zero() {
                    tracing::info!(
                        renew_at = %humantime::format_rfc3339_seconds(due),
                        "ACME: certificate in force; renewal scheduled"
                    );
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(wait) => {}
                    }
                }
            }
            let renewing = due.is_some();
            tracing::info!(domains = ?self.cfg.domains, directory = %self.cfg.directory, renewing, "ACME: ordering a certificate");
            let outcome = tokio::select! {
                () = stop.cancelled() => return,
                o = self.order() => o,
            };
            match outcome {
                Ok(pair) => {
                    let info = leaf_info(&pair.cert[0]);
                    self.certs.replace(pair);
                    retry = MIN_RETRY;
                    if let Some(info) = info {
                        let lifetime = info
                            .not_after
                            .duration_since(info.not_before)
                            .unwrap_or_default();
                        if self.cfg.renew_before >= lifetime {
                            tracing::warn!(
                                lifetime = %humantime::format_duration(lifetime),
                                renew_before = %humantime::format_duration(self.cfg.renew_before),
                                "ACME: the CA's certificates live shorter than renew_before; renewing at two thirds of their lifetime"
                            );
                        }
                        tracing::info!(
                            valid_until = %humantime::format_rfc3339_seconds(info.not_after),
                            "ACME: certificate obtained and serving"
                        );
                    }
                }
                Err(e) => {
                    if e.account_gone() {
                        tracing::warn!(problem = %e, "ACME: the CA does not know the account; registering again");
                        self.account = None;
                        let _ = std::fs::remove_file(&self.files.account);
                    }
                    tracing::warn!(
                        problem = %e,
                        retry_in = %humantime::format_duration(retry),
                        serving = if self.certs.chain().is_some() { "the previous certificate" } else { "no certificate yet" },
                        "ACME: order failed"
                    );
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(retry) => {}
                    }
                    retry = (retry * 2).min(MAX_RETRY);
                }
            }
        }
    }

    /// The account: from memory, from the cache, or registered now.
    async fn account(&mut self) -> Result<Account, Failure> {
        if let Some(a) = &self.account {
            return Ok(a.clone());
        }
        let builder = || match &self.cfg.directory_ca {
            Some(ca) => Account::builder_with_root(ca),
            None => Account::builder(),
        };
        if let Ok(text) = std::fs::read_to_string(&self.files.account) {
            match serde_json::from_str::<AccountCredentials>(&text) {
                Ok(creds) => {
                    let account = builder()?.from_credentials(creds).await?;
                    self.account = Some(account.clone());
                    return Ok(account);
                }
                Err(e) => tracing::warn!(
                    file = %self.files.account.display(),
                    error = %e,
                    "ACME: the cached account does not parse; registering a new one"
                ),
            }
        }
        let contact: Vec<&str> = self.cfg.contact.iter().map(String::as_str).collect();
        let (account, creds) = builder()?
            .create(
                &NewAccount {
                    contact: &contact,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                self.cfg.directory.clone(),
                None,
            )
            .await?;
        let text = serde_json::to_string(&creds).map_err(|e| Failure::Other(e.to_string()))?;
        if let Err(e) = write_private(&self.files.account, text.as_bytes()) {
            tracing::warn!(file = %self.files.account.display(), error = %e, "ACME: account not cached");
        }
        tracing::info!(id = %account.id(), "ACME: account registered");
        self.account = Some(account.clone());
        Ok(account)
    }

    /// One order, from new-order to the certificate in the cache.
    async fn order(&mut self) -> Result<CertifiedKey, Failure> {
        let account = self.account().await?;
        let ids: Vec<Identifier> = self
            .cfg
            .domains
            .iter()
            .map(|d| Identifier::Dns(d.clone()))
            .collect();
        let mut order = account.new_order(&NewOrder::new(&ids)).await?;
        let kind = match self.cfg.challenge {
            AcmeChallenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
            AcmeChallenge::Http01 => ChallengeType::Http01,
        };
        let mut placed = Placed {
            certs: &self.certs,
            answers: &self.answers,
            domains: Vec::new(),
            tokens: Vec::new(),
        };
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz?;
            match authz.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => {
                    return Err(Failure::Other(format!(
                        "the authorization for {} is {other:?}",
                        authz.identifier()
                    )));
                }
            }
            let domain = authz.identifier().to_string();
            let mut challenge = authz.challenge(kind.clone()).ok_or_else(|| {
                Failure::Other(format!("the CA offers no {kind:?} challenge for {domain}"))
            })?;
            let key_auth = challenge.key_authorization();
            match self.cfg.challenge {
                AcmeChallenge::TlsAlpn01 => {
                    self.certs.set_challenge(
                        &domain,
                        alpn_certificate(&domain, key_auth.digest().as_ref())?,
                    );
                    placed.domains.push(domain);
                }
                AcmeChallenge::Http01 => {
                    let token = challenge.token.clone();
                    self.answers
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(token.clone(), key_auth.as_str().to_owned());
                    placed.tokens.push(token);
                }
            }
            challenge.set_ready().await?;
        }
        let polling = RetryPolicy::new()
            .initial_delay(Duration::from_millis(250))
            .timeout(ORDER_TIMEOUT);
        let status = order.poll_ready(&polling).await?;
        if status != OrderStatus::Ready {
            return Err(Failure::Other(why_invalid(&mut order, status).await));
        }
        drop(placed);
        let key_pem = order.finalize().await?;
        let chain_pem = order.poll_certificate(&polling).await?;
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(chain_pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| Failure::Other(format!("the CA's certificate does not parse: {e}")))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| Failure::Other(format!("the generated key does not parse: {e}")))?;
        let pair = super::pair_from_der(chain, key).map_err(Failure::Other)?;
        if let Err(e) = self.files.save_certificate(&chain_pem, &key_pem) {
            tracing::warn!(cert = %self.files.cert.display(), error = %e, "ACME: certificate not cached; a restart will order again");
        }
        Ok(pair)
    }
}

/// The challenge answers of one order, withdrawn when it ends however it ends.
struct Placed<'a> {
    certs: &'a Certs,
    answers: &'a Answers,
    domains: Vec<String>,
    tokens: Vec<String>,
}

impl Drop for Placed<'_> {
    fn drop(&mut self) {
        for d in &self.domains {
            self.certs.clear_challenge(d);
        }
        let mut answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        for t in &self.tokens {
            answers.remove(t);
        }
    }
}

/// The CA's words for an order that did not become ready: the order's own
/// problem, else each failed challenge's.
async fn why_invalid(order: &mut instant_acme::Order, status: OrderStatus) -> String {
    let mut parts = Vec::new();
    if let Some(p) = &order.state().error {
        parts.push(p.to_string());
    }
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authz)) = authorizations.next().await {
        if authz.refresh().await.is_err() {
            continue;
        }
        for c in &authz.challenges {
            if let Some(p) = &c.error {
                parts.push(format!("{}: {p}", authz.identifier()));
            }
        }
    }
    if parts.is_empty() {
        format!("the order ended {status:?}")
    } else {
        format!("the order ended {status:?}: {}", parts.join("; "))
    }
}

/// The self-signed certificate that answers TLS-ALPN-01 for `domain`: its
/// only name the domain, and the `acmeIdentifier` extension holding the
/// SHA-256 of the key authorization (RFC 8737 §3).
fn alpn_certificate(domain: &str, digest: &[u8]) -> Result<CertifiedKey, Failure> {
    let fail = |e: rcgen::Error| Failure::Other(format!("challenge certificate: {e}"));
    let mut params = rcgen::CertificateParams::new(vec![domain.to_owned()]).map_err(fail)?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let key = rcgen::KeyPair::generate().map_err(fail)?;
    let cert = params.self_signed(&key).map_err(fail)?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    // Not `pair_from_der`: its key check parses the certificate with
    // webpki, which refuses the critical `acmeIdentifier` extension. The
    // key was made beside the certificate, so there is nothing to check.
    let signer = super::provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| Failure::Other(format!("challenge key: {e}")))?;
    Ok(CertifiedKey::new(vec![cert.der().clone()], signer))
}

/// The HTTP-01 listener: challenge answers, and a redirect to HTTPS for
/// anything else (a browser that typed `http://` lands on the gateway).
async fn serve_http01(
    listener: tokio::net::TcpListener,
    answers: Answers,
    https_port: u16,
    stop: CancellationToken,
) {
    use axum::extract::{Path as UrlPath, State};
    use axum::http::{HeaderMap, StatusCode, Uri, header};
    use axum::response::{IntoResponse, Response};

    async fn answer(
        State((answers, _)): State<(Answers, u16)>,
        UrlPath(token): UrlPath<String>,
    ) -> Response {
        let found = answers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&token)
            .cloned();
        match found {
            Some(key_auth) => (
                [(header::CONTENT_TYPE, "application/octet-stream")],
                key_auth,
            )
                .into_response(),
            None => (StatusCode::NOT_FOUND, "no such challenge\n").into_response(),
        }
    }

    async fn redirect(
        State((_, port)): State<(Answers, u16)>,
        headers: HeaderMap,
        uri: Uri,
    ) -> Response {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(|h| h.rsplit_once(':').map_or(h, |(name, _)| name))
            .filter(|h| !h.is_empty());
        let Some(host) = host else {
            return (StatusCode::BAD_REQUEST, "a Host header is needed\n").into_response();
        };
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let location = if port == 443 {
            format!("https://{host}{path}")
        } else {
            format!("https://{host}:{port}{path}")
        };
        (
            StatusCode::PERMANENT_REDIRECT,
            [(header::LOCATION, location)],
        )
            .into_response()
    }

    let app = axum::Router::new()
        .route(
            "/.well-known/acme-challenge/{token}",
            axum::routing::get(answer),
        )
        .fallback(redirect)
        .with_state((answers, https_port));
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
    {
        tracing::warn!(error = %e, "ACME: the HTTP-01 listener stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(renew_before: Duration, domains: &[&str]) -> AcmeConfig {
        AcmeConfig {
            domains: domains.iter().map(|d| (*d).to_owned()).collect(),
            contact: Vec::new(),
            directory: "https://ca.test/dir".into(),
            directory_ca: None,
            cache: PathBuf::from("/nonexistent"),
            renew_before,
            challenge: AcmeChallenge::TlsAlpn01,
            http_listen: None,
        }
    }

    fn info(lifetime_s: u64, names: &[&str]) -> LeafInfo {
        let not_before = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        LeafInfo {
            not_before,
            not_after: not_before + Duration::from_secs(lifetime_s),
            names: names.iter().map(|n| (*n).to_owned()).collect(),
        }
    }

    #[test]
    fn renewal_comes_renew_before_expiry_or_at_two_thirds_of_a_short_life() {
        let leaf = info(90 * 86400, &["gw.test"]);
        let day = Duration::from_secs(86400);
        assert_eq!(
            renew_at(&leaf, &cfg(30 * day, &["gw.test"])),
            leaf.not_after - 30 * day
        );
        // Longer than the lifetime: two thirds in, not at once forever.
        assert_eq!(
            renew_at(&leaf, &cfg(100 * day, &["gw.test"])),
            leaf.not_before + 60 * day
        );
        // A domain the certificate does not name: now.
        assert_eq!(
            renew_at(&leaf, &cfg(30 * day, &["gw.test", "api.gw.test"])),
            SystemTime::UNIX_EPOCH
        );
        // Names compare without case.
        assert_eq!(
            renew_at(&leaf, &cfg(30 * day, &["GW.test"])),
            leaf.not_after - 30 * day
        );
    }

    #[test]
    fn the_challenge_certificate_names_the_domain_and_carries_the_digest() {
        let digest = [7u8; 32];
        let pair = alpn_certificate("gw.test", &digest).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&pair.cert[0]).unwrap();
        let ext = cert
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .expect("the acmeIdentifier extension");
        assert!(ext.critical, "RFC 8737: the extension is critical");
        // An OCTET STRING of the 32-byte digest.
        assert_eq!(&ext.value[..2], &[0x04, 32]);
        assert_eq!(&ext.value[2..], &digest);
        let names = leaf_info(&pair.cert[0]).unwrap().names;
        assert_eq!(names, vec!["gw.test".to_owned()]);
    }

    #[test]
    fn cache_files_are_per_directory() {
        let a = Files::new(&cfg(Duration::from_secs(1), &["gw.test"]));
        let mut other = cfg(Duration::from_secs(1), &["gw.test"]);
        other.directory = "https://other.test/dir".into();
        let b = Files::new(&other);
        assert_ne!(a.account, b.account);
        assert_ne!(a.cert, b.cert);
        assert!(a.account.to_string_lossy().ends_with(".json"));
    }
}
