//! The edge beyond plain HTTP on loopback: HTTPS from PEM files (the
//! official Python SDK over it, a certificate switched without a restart,
//! HTTP/2 by ALPN, client certificates required and their subject reaching
//! plugins) and MCP over WebSocket (the Python SDK's WebSocket transport on
//! the `websockets` library; Origin, token and size refusals with
//! tokio-tungstenite), and a WebSocket upstream: the Python SDK's
//! WebSocket server on `wss://` behind the gateway.

use std::path::Path;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::harness::{BIN, Gateway, LEGACY, MODERN, demo_config, eventually, modern_body, scratch};
use crate::peers::{Sdk, client};

/// A CA that signs what the tests need.
pub(crate) struct Ca {
    cert: rcgen::Certificate,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl Ca {
    pub(crate) fn new(name: &str) -> Ca {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca {
            cert,
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    pub(crate) fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A leaf for `127.0.0.1` and `localhost` (server) or named `cn`
    /// (client): (certificate PEM, key PEM).
    pub(crate) fn leaf(&self, cn: &str, client: bool) -> (String, String) {
        let names = if client {
            vec![]
        } else {
            vec!["localhost".to_owned(), "127.0.0.1".to_owned()]
        };
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.extended_key_usages = vec![if client {
            rcgen::ExtendedKeyUsagePurpose::ClientAuth
        } else {
            rcgen::ExtendedKeyUsagePurpose::ServerAuth
        }];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// A client trusting only `ca_pem`, with `identity` (cert + key PEM) when given.
fn https_client(ca_pem: &str, identity: Option<&(String, String)>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap()])
        .timeout(Duration::from_secs(10));
    if let Some((cert, key)) = identity {
        b = b.identity(reqwest::Identity::from_pem(format!("{cert}\n{key}").as_bytes()).unwrap());
    }
    b.build().unwrap()
}

fn write_pair(dir: &Path, (cert, key): &(String, String)) {
    std::fs::write(dir.join("cert.pem"), cert).unwrap();
    std::fs::write(dir.join("key.pem"), key).unwrap();
}

#[tokio::test]
async fn https_from_files_serves_sdks_and_switches_certificates_live() {
    let dir = scratch("tls-files");
    let first = Ca::new("Switchyard test CA one");
    write_pair(&dir, &first.leaf("gateway", false));
    std::fs::write(dir.join("ca1.pem"), first.pem()).unwrap();
    let toml = format!(
        "{}\n[server.tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n",
        demo_config(&[("demo", "")])
    );
    let gw = Gateway::start_file(&dir.join("gw.toml"), &toml).await;
    let base = format!("https://127.0.0.1:{}", gw.addr.port());

    // The official Python SDK completes a session over HTTPS.
    let summary = client(
        Sdk::Py,
        &format!("{base}/mcp"),
        &[
            "--cafile",
            dir.join("ca1.pem").to_str().unwrap(),
            "--tool",
            "echo",
            "--args",
            r#"{"message":"over tls"}"#,
            "--expect-text",
            "Echo: over tls",
        ],
    )
    .await;
    assert!(summary.contains("tools/call:echo"), "{summary}");

    // HTTP/2 by ALPN; plain HTTP on the TLS port is not served.
    let one = https_client(&first.pem(), None);
    let resp = one.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert!(
        reqwest::get(format!("http://127.0.0.1:{}/healthz", gw.addr.port()))
            .await
            .is_err()
    );

    // New files, signed by another CA: served from the next handshake on.
    let second = Ca::new("Switchyard test CA two");
    write_pair(&dir, &second.leaf("gateway-renewed", false));
    let two = https_client(&second.pem(), None);
    assert!(
        eventually(Duration::from_secs(10), async || two
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok())
        .await,
        "the replaced certificate was not served"
    );
    // A fresh client trusting only the first CA is now refused.
    assert!(
        https_client(&first.pem(), None)
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_err()
    );
    // A broken replacement changes nothing.
    std::fs::write(dir.join("cert.pem"), "not a certificate").unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        https_client(&second.pem(), None)
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn client_certificates_are_required_and_their_subject_reaches_plugins() {
    let dir = scratch("tls-clients");
    let server_ca = Ca::new("server CA");
    write_pair(&dir, &server_ca.leaf("gateway", false));
    let clients = Ca::new("client CA");
    std::fs::write(dir.join("clients.pem"), clients.pem()).unwrap();
    let toml = format!(
        r#"{}
[server.tls]
cert = "cert.pem"
key = "key.pem"
client_ca = "clients.pem"
client_auth = "required"

[plugins.probe]
component = "{{plugins}}/probe.wasm"
config = {{ request = "context", only_target = "echo" }}

[[routes]]
path = "/mcp"
upstreams = ["demo"]
plugins = ["probe"]
"#,
        demo_config(&[("demo", "")])
    );
    let alice = clients.leaf("alice", true);
    let gw = Gateway::start_file_probed(
        &dir.join("gw.toml"),
        &toml,
        https_client(&server_ca.pem(), Some(&alice)),
    )
    .await;
    let url = format!("https://127.0.0.1:{}/mcp", gw.addr.port());
    let call = modern_body(
        json!(1),
        "tools/call",
        json!({"name": "echo", "arguments": {"message": "x"}}),
    );
    let post = |c: reqwest::Client| {
        let call = call.clone();
        let url = url.clone();
        async move {
            c.post(url)
                .header("accept", "application/json, text/event-stream")
                .header("mcp-protocol-version", MODERN)
                .header("mcp-method", "tools/call")
                .header("mcp-name", "echo")
                .json(&call)
                .send()
                .await
        }
    };
    // No certificate, or one from another CA: the handshake fails.
    assert!(post(https_client(&server_ca.pem(), None)).await.is_err());
    let stranger = Ca::new("some other CA").leaf("mallory", true);
    assert!(
        post(https_client(&server_ca.pem(), Some(&stranger)))
            .await
            .is_err()
    );
    // The right CA: served, and the plugin sees the subject.
    let resp = post(https_client(&server_ca.pem(), Some(&alice)))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let attributes = body["result"]["context"]["attributes"].to_string();
    assert!(
        attributes.contains("tls.client-subject") && attributes.contains("CN=alice"),
        "{body}"
    );
    gw.shutdown().await;
}

/// `ws://` for the gateway's `path` + `/ws`.
fn ws_url(gw: &Gateway, path: &str) -> String {
    format!("ws://{}{path}/ws", gw.addr)
}

#[tokio::test]
async fn python_sdk_over_websocket_calls_with_progress_and_answers_sampling() {
    let gw = Gateway::start(&demo_config(&[("demo", "")])).await;
    let url = ws_url(&gw, "/mcp");
    let summary = client(
        Sdk::Py,
        &url,
        &[
            "--transport",
            "websocket",
            "--expect-tool",
            "slow",
            "--tool",
            "slow",
            "--args",
            r#"{"ms":300,"steps":3}"#,
            "--progress",
            "--expect-text",
            "done",
        ],
    )
    .await;
    assert!(
        summary.contains("initialize") && summary.contains("progress("),
        "{summary}"
    );
    let summary = client(
        Sdk::Py,
        &url,
        &[
            "--transport",
            "websocket",
            "--tool",
            "test_sampling",
            "--args",
            r#"{"prompt":"What is 2+2?"}"#,
            "--sampling",
            "--sampling-text",
            "four, over a socket",
            "--expect-text",
            "LLM response: four, over a socket",
        ],
    )
    .await;
    assert!(summary.contains("sampling(1)"), "{summary}");
    gw.shutdown().await;
}

/// Opens a socket with `headers`; the HTTP status of a refused upgrade.
async fn open(
    url: &str,
    headers: &[(&str, &str)],
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    u16,
> {
    let mut req = url.into_client_request().unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(
            tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, resp)) => {
            assert_eq!(resp.headers()["sec-websocket-protocol"], "mcp");
            Ok(ws)
        }
        Err(tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("{e}"),
    }
}

/// The next text frame as JSON (pings skipped).
async fn next_json(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame within 10 s")
            .expect("the socket is open")
            .unwrap();
        if let Message::Text(t) = frame {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

#[tokio::test]
async fn websocket_refuses_foreign_origins_wrong_tokens_and_huge_messages() {
    let key = "ws-client-key-0123456789";
    let out = std::process::Command::new(BIN)
        .args(["hash-key", key])
        .output()
        .unwrap();
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let toml = format!(
        r#"{}
[plugins.keys]
component = "builtin:auth"
config = {{ api_keys = [{{ principal = "bot", key_hash = "{hash}" }}] }}

[[routes]]
path = "/mcp"
upstreams = ["demo"]
plugins = ["keys"]
"#,
        demo_config(&[("demo", "")])
    );
    let gw = Gateway::start(&toml).await;
    let url = ws_url(&gw, "/mcp");
    let proto = ("sec-websocket-protocol", "mcp");
    let bearer = format!("Bearer {key}");
    let auth = ("authorization", bearer.as_str());

    assert_eq!(
        open(&url, &[proto, auth, ("origin", "https://evil.example")])
            .await
            .err(),
        Some(403)
    );
    assert_eq!(open(&url, &[proto]).await.err(), Some(401));
    assert_eq!(
        open(
            &url,
            &[proto, ("authorization", "Bearer wrong-key-0123456789")]
        )
        .await
        .err(),
        Some(401)
    );
    // A browser's way: the token as a subprotocol.
    let browser_protocols = format!("mcp, bearer.{key}");
    let mut ws = open(&url, &[("sec-websocket-protocol", &browser_protocols)])
        .await
        .unwrap();
    ws.send(Message::text(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
        .to_string(),
    ))
    .await
    .unwrap();
    let init = next_json(&mut ws).await;
    assert_eq!(init["result"]["protocolVersion"], LEGACY, "{init}");
    ws.send(Message::text(
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string(),
    ))
    .await
    .unwrap();
    ws.send(Message::text(
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "ws"}}})
            .to_string(),
    ))
    .await
    .unwrap();
    let echoed = next_json(&mut ws).await;
    assert_eq!(
        echoed["result"]["content"][0]["text"], "Echo: ws",
        "{echoed}"
    );
    // Bad JSON is answered, not fatal.
    ws.send(Message::text("{not json")).await.unwrap();
    assert_eq!(next_json(&mut ws).await["error"]["code"], -32700);

    // 20 MiB: closed with 1009 (message too big); the gateway lives on.
    let huge = format!(
        r#"{{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{{"name":"echo","arguments":{{"message":"{}"}}}}}}"#,
        "x".repeat(20 << 20)
    );
    let _ = ws.send(Message::text(huge)).await;
    assert_eq!(next_close(&mut ws).await, Some(1009));
    assert_eq!(gw.health().await["status"], "ok");
    let mut again = open(&url, &[proto, auth]).await.unwrap();
    again
        .send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    let closed = next_close(&mut again).await;
    assert_eq!(closed, Some(1003));
    gw.shutdown().await;
}

/// The close code the socket ends with (None: ended without one).
async fn next_close(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Option<u16> {
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(frame) = ws.next().await {
            match frame {
                Ok(Message::Close(Some(f))) => return Some(u16::from(f.code)),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    })
    .await
    .expect("the socket closes within 10 s")
}

/// The official Python SDK's WebSocket server (`tests/peers/py_ws_server.py`)
/// on `wss://` with a certificate from `ca`, requiring `token`; its port.
async fn python_ws_server(dir: &Path, token: &str) -> (tokio::process::Child, u16) {
    let port_file = dir.join("ws-port");
    let server =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/peers/py_ws_server.py");
    let child = tokio::process::Command::new(crate::peers::peers().get("PEERS_PYTHON"))
        .arg(server)
        .arg("--port-file")
        .arg(&port_file)
        .arg("--certfile")
        .arg(dir.join("cert.pem"))
        .arg("--keyfile")
        .arg(dir.join("key.pem"))
        .args(["--token", token])
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let listening = eventually(Duration::from_secs(30), async || {
        std::fs::read_to_string(&port_file).is_ok_and(|p| !p.is_empty())
    })
    .await;
    assert!(listening, "the Python WebSocket server did not start");
    let port = std::fs::read_to_string(&port_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (child, port)
}

#[tokio::test]
async fn a_websocket_upstream_over_wss_serves_tools_progress_and_sampling() {
    let dir = scratch("ws-upstream");
    let ca = Ca::new("ws upstream test ca");
    write_pair(&dir, &ca.leaf("py ws server", false));
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    let token = "ws-upstream-token-5e1f";
    let (_server, port) = python_ws_server(&dir, token).await;
    let cfg = dir.join("gw.toml");
    let config = |token: &str| {
        format!(
            r#"
[server]
listen = "127.0.0.1:0"

[upstreams.py]
url = "wss://localhost:{port}/ws"
transport = "websocket"
headers = {{ Authorization = "Bearer {token}" }}
timeout = "10s"
"#
        )
    };
    std::fs::write(&cfg, config(token)).unwrap();
    // The test CA is trusted the way an operator adds a private CA: the
    // system roots plus SSL_CERT_FILE.
    let ca_file = dir.join("ca.pem");
    let env = [("SSL_CERT_FILE", ca_file.to_str().unwrap())];
    let gw = crate::harness::Served::start(&cfg, &env, false).await;
    let url = format!("http://{}/mcp", gw.main);
    let ready = eventually(Duration::from_secs(20), async || {
        let h: Value = reqwest::get(format!("http://{}/healthz", gw.main))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        h["upstreams"][0]["state"] == "ready"
    })
    .await;
    assert!(ready, "the WebSocket upstream is not ready:\n{}", gw.log());
    let h: Value = reqwest::get(format!("http://{}/healthz", gw.main))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h["upstreams"][0]["transport"], "websocket", "{h}");

    let summary = client(
        Sdk::Py,
        &url,
        &[
            "--expect-tool",
            "echo",
            "--tool",
            "count",
            "--args",
            r#"{"n":3}"#,
            "--progress",
            "--expect-text",
            "counted 3",
        ],
    )
    .await;
    assert!(summary.contains("progress("), "{summary}");
    let summary = client(
        Sdk::Py,
        &url,
        &[
            "--tool",
            "ask",
            "--args",
            r#"{"question":"2+2?"}"#,
            "--sampling",
            "--sampling-text",
            "four, through a wss upstream",
            "--expect-text",
            "the model said: four, through a wss upstream",
        ],
    )
    .await;
    assert!(summary.contains("sampling(1)"), "{summary}");
    gw.stop().await;

    // A wrong token: the upgrade is refused, and health says so.
    std::fs::write(&cfg, config("wrong")).unwrap();
    let gw = crate::harness::Served::start(&cfg, &env, false).await;
    let refused = eventually(Duration::from_secs(20), async || {
        gw.log().contains("403 Forbidden")
    })
    .await;
    assert!(refused, "the refused upgrade is logged:\n{}", gw.log());
    let h: Value = reqwest::get(format!("http://{}/healthz", gw.main))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(h["upstreams"][0]["state"], "ready", "{h}");
    gw.stop().await;
}
