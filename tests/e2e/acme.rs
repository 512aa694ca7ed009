//! ACME as an operator meets it, against Let's Encrypt's test CA: Pebble
//! (Debian's `pebble`, installed by the test setup) with its challenge test
//! server as the DNS that resolves the test domains to 127.0.0.1. Real
//! gateway processes obtain a certificate (TLS-ALPN-01 on the listener
//! itself, and HTTP-01 on a plain listener), serve HTTPS with it to a client
//! that trusts only Pebble's root, restart from their cache without a new
//! order, renew when the renewal window is moved in, and keep serving when
//! Pebble refuses an order.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::edge::Ca;
use crate::harness::{BIN, LEGACY, Served, eventually, free_port, scratch};

const DOMAIN: &str = "gw.switchyard.test";
/// In Pebble's `domainBlocklist`: an order naming it is refused.
const BLOCKED: &str = "blocked.switchyard.test";

/// Pebble and its challenge test server, their output kept.
struct Pebble {
    _children: Vec<Child>,
    log: Arc<Mutex<String>>,
    directory: String,
    /// The CA of Pebble's own HTTPS (what `directory_ca` names).
    https_ca: std::path::PathBuf,
    management: String,
}

impl Pebble {
    /// Validates TLS-ALPN-01 on `tls_port` and HTTP-01 on `http_port` of
    /// 127.0.0.1 (the challenge server answers every name with it); issues
    /// certificates valid for an hour.
    async fn start(dir: &Path, tls_port: u16, http_port: u16) -> Pebble {
        let ca = Ca::new("pebble https test ca");
        let (cert, key) = ca.leaf("localhost", false);
        let https_ca = dir.join("pebble-https-ca.pem");
        std::fs::write(&https_ca, ca.pem()).unwrap();
        std::fs::write(dir.join("pebble-cert.pem"), cert).unwrap();
        std::fs::write(dir.join("pebble-key.pem"), key).unwrap();
        let (dns, dns_mgmt, listen, management) =
            (free_port(), free_port(), free_port(), free_port());
        let challtestsrv = Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-management", &format!("127.0.0.1:{dns_mgmt}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("pebble-challtestsrv (Debian's pebble; tests/system-packages.sh installs it)");
        let config = json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{listen}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": dir.join("pebble-cert.pem"),
            "privateKey": dir.join("pebble-key.pem"),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
            "domainBlocklist": [BLOCKED],
            "certificateValidityPeriod": 3600,
        }});
        let config_file = dir.join("pebble.json");
        std::fs::write(&config_file, config.to_string()).unwrap();
        let mut pebble = Command::new("pebble")
            .arg("-config")
            .arg(&config_file)
            .args(["-dnsserver", &format!("127.0.0.1:{dns}"), "-strict=false"])
            // No random validation sleeps, no rejected nonces, and a fresh
            // authorization per order (so every order is validated).
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("pebble (Debian's pebble; tests/system-packages.sh installs it)");
        let log = Arc::new(Mutex::new(String::new()));
        for out in [
            Box::new(pebble.stdout.take().unwrap()) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
            Box::new(pebble.stderr.take().unwrap()),
        ] {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let mut lines = BufReader::new(out).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        let up = eventually(Duration::from_secs(20), async || {
            log.lock().unwrap().contains("ACME directory available")
        })
        .await;
        assert!(up, "Pebble did not start:\n{}", log.lock().unwrap());
        Pebble {
            _children: vec![challtestsrv, pebble],
            log,
            directory: format!("https://localhost:{listen}/dir"),
            https_ca,
            management: format!("https://localhost:{management}"),
        }
    }

    /// The root Pebble issues under (made at its start).
    async fn root(&self) -> String {
        let ca = std::fs::read(&self.https_ca).unwrap();
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
            .build()
            .unwrap()
            .get(format!("{}/roots/0", self.management))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// New orders Pebble has received (its request log).
    fn orders(&self) -> usize {
        self.log
            .lock()
            .unwrap()
            .lines()
            .filter(|l| l.contains("POST /order-plz"))
            .count()
    }
}

/// A gateway config on `port` with ACME from `pebble`; `acme` adds keys to
/// `[server.tls.acme]`.
fn config(pebble: &Pebble, port: u16, acme: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:{port}"

[server.tls.acme]
contact = "mailto:ops@switchyard.test"
directory = "{directory}"
directory_ca = "{ca}"
{acme}

[upstreams.demo]
command = "{BIN}"
args = ["demo"]
"#,
        directory = pebble.directory,
        ca = pebble.https_ca.display(),
    )
}

/// A client that trusts only `root`, finds `DOMAIN` at 127.0.0.1 and
/// keeps no connection.
fn trusting(root: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(root.as_bytes()).unwrap()])
        .resolve(DOMAIN, "127.0.0.1:0".parse().unwrap())
        .tls_info(true)
        // A handshake per request: what each one is served is the point.
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// `initialize` over HTTPS to `DOMAIN:port`: the serial number of the
/// certificate the gateway served (verified against the client's roots),
/// and the reply.
async fn initialize(client: &reqwest::Client, port: u16) -> Result<(String, Value), String> {
    let resp = client
        .post(format!("https://{DOMAIN}:{port}/mcp"))
        .header("accept", "application/json, text/event-stream")
        .json(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": LEGACY,
                "capabilities": {},
                "clientInfo": {"name": "acme-test", "version": "1"},
            }}),
        )
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    let leaf = resp
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|t| t.peer_certificate())
        .expect("TLS info on an HTTPS response")
        .to_vec();
    let (_, cert) = x509_parser::parse_x509_certificate(&leaf).unwrap();
    assert!(
        cert.issuer().to_string().contains("Pebble Intermediate"),
        "issued by Pebble: {}",
        cert.issuer()
    );
    let serial = cert.raw_serial_as_string();
    let body: Value =
        serde_json::from_str(&resp.text().await.unwrap()).map_err(|_| "not JSON".to_owned())?;
    Ok((serial, body))
}

/// The serial number of the certificate in the ACME cache folder.
fn cached_serial(cache: &Path) -> String {
    let file = std::fs::read_dir(cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("cert-")
        })
        .expect("a cached certificate");
    let pem = std::fs::read(file).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    pem.parse_x509().unwrap().raw_serial_as_string()
}

/// Asks until a handshake verifies (the first certificate is being ordered).
async fn first_serial(client: &reqwest::Client, port: u16, gw: &Served) -> String {
    for _ in 0..300 {
        if let Ok((serial, body)) = initialize(client, port).await {
            assert!(body["result"]["serverInfo"].is_object(), "{body}");
            return serial;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("no verified HTTPS within 60 s:\n{}", gw.log());
}

#[tokio::test]
async fn acme_obtains_renews_restarts_from_cache_and_survives_a_refusal() {
    let dir = scratch("acme");
    let port = free_port();
    let pebble = Pebble::start(&dir, port, free_port()).await;
    let root = pebble.root().await;
    let client = trusting(&root);
    let cfg = dir.join("gw.toml");
    let acme = |extra: &str| {
        format!(
            "domains = [\"{DOMAIN}\"]\ncache = \"{}\"\n{extra}",
            dir.join("cache").display()
        )
    };
    let log_env = [("RUST_LOG", "info")];

    // Obtained by TLS-ALPN-01 on the listener itself; a client that trusts
    // only Pebble's root verifies it; one that does not, fails.
    std::fs::write(&cfg, config(&pebble, port, &acme("renew_before = \"5m\""))).unwrap();
    let gw = Served::start(&cfg, &log_env, false).await;
    let first = first_serial(&client, port, &gw).await;
    assert_eq!(pebble.orders(), 1, "{}", pebble.log.lock().unwrap());
    let stranger = trusting(&Ca::new("someone else").pem());
    let refused = initialize(&stranger, port).await;
    assert!(
        refused.is_err(),
        "a client without Pebble's root verifies nothing"
    );
    let cached: Vec<_> = std::fs::read_dir(dir.join("cache"))
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    for entry in &cached {
        let mode =
            std::os::unix::fs::PermissionsExt::mode(&entry.metadata().unwrap().permissions());
        assert_eq!(mode & 0o077, 0, "{:?} is private", entry.path());
    }
    assert_eq!(cached.len(), 3, "account, certificate and key: {cached:?}");
    gw.stop().await;

    // A restart serves the cached certificate from its first handshake and
    // orders nothing.
    let gw = Served::start(&cfg, &log_env, false).await;
    let (serial, _) = initialize(&client, port)
        .await
        .expect("the cached certificate serves at once");
    assert_eq!(serial, first);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        pebble.orders(),
        1,
        "a restart within the window orders nothing"
    );
    assert!(
        gw.log().contains("ACME: certificate from the cache"),
        "{}",
        gw.log()
    );
    gw.stop().await;

    // The renewal window moved in (renew when less than 59m50s of the
    // hour is left): renewed within seconds, every handshake meanwhile
    // verified (the old certificate serves until the new one is ready).
    std::fs::write(
        &cfg,
        config(&pebble, port, &acme("renew_before = \"59m50s\"")),
    )
    .unwrap();
    let gw = Served::start(&cfg, &log_env, false).await;
    let mut renewed: Option<String> = None;
    for _ in 0..300 {
        // A new client each time: one would resume its TLS session, and a
        // resumed session shows the certificate of the first handshake.
        let (serial, _) = initialize(&trusting(&root), port)
            .await
            .unwrap_or_else(|e| panic!("a handshake failed during renewal: {e}\n{}", gw.log()));
        if serial != first {
            renewed = Some(serial);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    renewed.unwrap_or_else(|| panic!("not renewed within 30 s:\n{}", gw.log()));
    assert!(pebble.orders() >= 2);
    assert!(
        gw.log().contains("ACME: certificate obtained and serving"),
        "{}",
        gw.log()
    );
    gw.stop().await;

    // Pebble refuses an order naming a blocked domain: the problem is
    // logged with the CA's words, the cached certificate serves on, and the
    // gateway lives.
    let both = format!(
        "domains = [\"{DOMAIN}\", \"{BLOCKED}\"]\ncache = \"{}\"\nrenew_before = \"5m\"",
        dir.join("cache").display()
    );
    std::fs::write(&cfg, config(&pebble, port, &both)).unwrap();
    let in_cache = cached_serial(&dir.join("cache"));
    assert_ne!(in_cache, first, "the renewed certificate is the one cached");
    let mut gw = Served::start(&cfg, &log_env, false).await;
    let logged = eventually(Duration::from_secs(30), async || {
        gw.log().contains("ACME: order failed")
    })
    .await;
    assert!(logged, "{}", gw.log());
    let log = gw.log();
    assert!(
        log.contains("rejectedIdentifier"),
        "the CA's problem type is in the log:\n{log}"
    );
    let (serial, body) = initialize(&client, port).await.expect("still serving");
    assert_eq!(serial, in_cache, "the cached certificate serves on");
    assert!(body["result"]["serverInfo"].is_object());
    assert!(gw.child.try_wait().unwrap().is_none(), "the gateway lives");
    gw.stop().await;
}

#[tokio::test]
async fn acme_http_01_on_a_plain_listener_that_redirects_the_rest() {
    let dir = scratch("acme-http01");
    let (port, http_port) = (free_port(), free_port());
    let pebble = Pebble::start(&dir, port, http_port).await;
    let client = trusting(&pebble.root().await);
    let cfg = dir.join("gw.toml");
    let acme = format!(
        "domains = [\"{DOMAIN}\"]\ncache = \"{}\"\nchallenge = \"http-01\"\nhttp_listen = \"127.0.0.1:{http_port}\"",
        dir.join("cache").display()
    );
    std::fs::write(&cfg, config(&pebble, port, &acme)).unwrap();
    let gw = Served::start(&cfg, &[("RUST_LOG", "info")], false).await;
    first_serial(&client, port, &gw).await;
    assert_eq!(pebble.orders(), 1);

    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = plain
        .get(format!("http://127.0.0.1:{http_port}/mcp?x=1"))
        .header("host", format!("{DOMAIN}:{http_port}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 308);
    assert_eq!(
        resp.headers()["location"],
        format!("https://{DOMAIN}:{port}/mcp?x=1").as_str()
    );
    let resp = plain
        .get(format!(
            "http://127.0.0.1:{http_port}/.well-known/acme-challenge/no-such-token"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404, "no answer outside an order");
    gw.stop().await;
}
