//! `edge`: what HTTPS and WebSocket cost beside plain HTTP, in one run.
//!
//! ```text
//! cargo bench -p switchyard --bench edge
//! cargo bench -p switchyard --bench edge -- --seconds 10 --idle 1000
//! ```
//!
//! Two `switchyard serve` processes relay one stdio demo server each: one
//! plain, one with `[server.tls]` (a certificate from a CA made here). Each
//! path is warmed up (200 calls), then loaded with `tools/call echo
//! {"message":"hello"}` at concurrency 1 and 64 for `--seconds` (default 5),
//! every worker in its own legacy session:
//!
//! | path | what the client does |
//! |---|---|
//! | `http` | HTTP/1.1 keep-alive, one connection per worker (reqwest) |
//! | `https` | the same over TLS 1.3 (HTTP/1.1 by ALPN) |
//! | `https-h2` | TLS, HTTP/2 by ALPN: every worker's requests multiplexed on one connection |
//! | `ws` | `GET /mcp/ws`, one socket per worker (tokio-tungstenite), a call waits for its reply |
//!
//! Then `--idle` (default 1000) WebSocket clients connect to the plain
//! gateway, `initialize`, and stay idle; the gateway's resident memory
//! (`VmRSS`) before and after is the cost of idle sockets.
//! Every reply must carry "Echo: hello". Loopback only.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");
const LEGACY: &str = "2025-11-25";
const EXPECT: &str = "Echo: hello";
const WARMUP: usize = 200;

struct Opts {
    seconds: u64,
    idle: usize,
}

fn parse_opts() -> Result<Opts, String> {
    let mut opts = Opts {
        seconds: 5,
        idle: 1000,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |name: &str| -> Result<u64, String> {
            args.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a number"))
        };
        match a.as_str() {
            "--seconds" => opts.seconds = num("--seconds")?,
            "--idle" => opts.idle = num("--idle")? as usize,
            // cargo bench passes --bench to every bench binary.
            "--bench" => {}
            other => {
                return Err(format!(
                    "unknown argument {other:?} (--seconds N, --idle N)"
                ));
            }
        }
    }
    Ok(opts)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A gateway process and its address.
struct Gateway {
    child: Child,
    addr: SocketAddr,
}

impl Gateway {
    async fn start(dir: &Path, name: &str, tls: bool, probe: &reqwest::Client) -> Gateway {
        let port = free_port();
        let tls_table = if tls {
            format!(
                "[server.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
                dir.join("cert.pem").display(),
                dir.join("key.pem").display()
            )
        } else {
            String::new()
        };
        let config = format!(
            r#"
[server]
listen = "127.0.0.1:{port}"
{tls_table}
[upstreams.demo]
command = "{BIN}"
args = ["demo", "--era", "legacy"]
"#
        );
        let file = dir.join(format!("{name}.toml"));
        std::fs::write(&file, config).unwrap();
        let child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&file)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let scheme = if tls { "https" } else { "http" };
        for _ in 0..300 {
            if let Ok(r) = probe
                .get(format!("{scheme}://localhost:{port}/healthz"))
                .send()
                .await
                && let Ok(h) = r.json::<Value>().await
                && h["upstreams"][0]["state"] == "ready"
            {
                return Gateway { child, addr };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{name}: the gateway was not ready within 30 s");
    }

    fn rss_kib(&self) -> u64 {
        let pid = self.child.id().unwrap();
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }
}

fn initialize_body() -> Value {
    json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": LEGACY,
        "capabilities": {},
        "clientInfo": {"name": "edge-bench", "version": "1"},
    }})
}

fn call_body(id: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"message": "hello"}}})
}

/// One worker's way of making calls.
enum Session {
    Http {
        client: reqwest::Client,
        url: String,
        session: String,
    },
    Ws {
        socket: Box<
            tokio_tungstenite::WebSocketStream<
                tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
            >,
        >,
    },
}

impl Session {
    async fn http(client: reqwest::Client, url: String) -> Result<Session, String> {
        let resp = client
            .post(&url)
            .header("accept", "application/json, text/event-stream")
            .json(&initialize_body())
            .send()
            .await
            .map_err(|e| format!("initialize: {e}"))?;
        let session = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .ok_or("no Mcp-Session-Id")?
            .to_owned();
        resp.bytes().await.map_err(|e| e.to_string())?;
        client
            .post(&url)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &session)
            .header("mcp-protocol-version", LEGACY)
            .json(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .send()
            .await
            .map_err(|e| format!("initialized: {e}"))?;
        Ok(Session::Http {
            client,
            url,
            session,
        })
    }

    async fn ws(addr: SocketAddr) -> Result<Session, String> {
        let mut req = format!("ws://{addr}/mcp/ws")
            .into_client_request()
            .map_err(|e| e.to_string())?;
        req.headers_mut()
            .insert("sec-websocket-protocol", "mcp".parse().unwrap());
        let (socket, _) = tokio_tungstenite::connect_async(req)
            .await
            .map_err(|e| format!("upgrade: {e}"))?;
        let mut s = Session::Ws {
            socket: Box::new(socket),
        };
        s.ws_round(&initialize_body(), 0).await?;
        if let Session::Ws { socket } = &mut s {
            socket
                .send(Message::text(
                    json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string(),
                ))
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(s)
    }

    /// Sends `msg` and reads frames until the reply with `id`.
    async fn ws_round(&mut self, msg: &Value, id: u64) -> Result<String, String> {
        let Session::Ws { socket } = self else {
            unreachable!()
        };
        socket
            .send(Message::text(msg.to_string()))
            .await
            .map_err(|e| e.to_string())?;
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).map_err(|e| e.to_string())?;
                    if v["id"] == id {
                        return Ok(t.to_string());
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("the socket closed".into()),
            }
        }
    }

    async fn call(&mut self, id: u64) -> Result<(), String> {
        let text = match self {
            Session::Http {
                client,
                url,
                session,
            } => client
                .post(url.as_str())
                .header("accept", "application/json, text/event-stream")
                .header("mcp-session-id", session.as_str())
                .header("mcp-protocol-version", LEGACY)
                .json(&call_body(id))
                .send()
                .await
                .map_err(|e| e.to_string())?
                .text()
                .await
                .map_err(|e| e.to_string())?,
            Session::Ws { .. } => self.ws_round(&call_body(id), id).await?,
        };
        if text.contains(EXPECT) {
            Ok(())
        } else {
            Err(format!("unexpected reply: {text}"))
        }
    }
}

#[derive(Clone, Copy)]
enum Leg {
    Http,
    Https,
    HttpsH2,
    Ws,
}

impl Leg {
    fn name(self) -> &'static str {
        match self {
            Leg::Http => "http",
            Leg::Https => "https",
            Leg::HttpsH2 => "https-h2",
            Leg::Ws => "ws",
        }
    }
}

struct Setup {
    plain: SocketAddr,
    tls: SocketAddr,
    ca: reqwest::Certificate,
}

impl Setup {
    fn client(&self, h2: bool) -> reqwest::Client {
        let b = reqwest::Client::builder()
            .tls_certs_only([self.ca.clone()])
            .pool_max_idle_per_host(256)
            .timeout(Duration::from_secs(30));
        if h2 { b } else { b.http1_only() }.build().unwrap()
    }

    async fn session(&self, path: Leg, shared: &reqwest::Client) -> Result<Session, String> {
        match path {
            Leg::Http => {
                Session::http(self.client(false), format!("http://{}/mcp", self.plain)).await
            }
            Leg::Https => {
                Session::http(
                    self.client(false),
                    format!("https://localhost:{}/mcp", self.tls.port()),
                )
                .await
            }
            Leg::HttpsH2 => {
                Session::http(
                    shared.clone(),
                    format!("https://localhost:{}/mcp", self.tls.port()),
                )
                .await
            }
            Leg::Ws => Session::ws(self.plain).await,
        }
    }
}

struct Figures {
    calls: usize,
    errors: usize,
    rate: f64,
    p50: f64,
    p99: f64,
}

async fn load(setup: &Setup, path: Leg, concurrency: usize, seconds: u64) -> Figures {
    let shared = setup.client(true);
    let mut sessions = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        sessions.push(setup.session(path, &shared).await.expect("a session"));
    }
    // Warm-up, spread over the sessions.
    for i in 0..WARMUP {
        let n = sessions.len();
        sessions[i % n]
            .call(1_000_000 + i as u64)
            .await
            .expect("warm-up call");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (w, mut s) in sessions.into_iter().enumerate() {
        let stop = Arc::clone(&stop);
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut errors) = (Vec::new(), 0usize);
            let mut id = (w as u64) << 32;
            while !stop.load(Ordering::Relaxed) {
                id += 1;
                let t = Instant::now();
                match s.call(id).await {
                    Ok(()) => lat.push(t.elapsed().as_secs_f64() * 1000.0),
                    Err(_) => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut all, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (lat, e) = t.await.unwrap();
        all.extend(lat);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        if all.is_empty() {
            f64::NAN
        } else {
            all[((all.len() - 1) as f64 * p).round() as usize]
        }
    };
    Figures {
        calls: all.len(),
        errors,
        rate: all.len() as f64 / elapsed,
        p50: pct(0.50),
        p99: pct(0.99),
    }
}

/// Opens `n` idle WebSocket sessions; the gateway's RSS before and after.
async fn idle_sockets(gw: &Gateway, n: usize) -> (u64, u64, usize) {
    let before = gw.rss_kib();
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        match Session::ws(gw.addr).await {
            Ok(s) => held.push(s),
            Err(e) => {
                eprintln!("idle socket {} failed: {e}", held.len());
                break;
            }
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = gw.rss_kib();
    let opened = held.len();
    drop(held);
    (before, after, opened)
}

fn certificates(dir: &Path) -> reqwest::Certificate {
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "edge bench ca");
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    reqwest::Certificate::from_pem(ca_cert.pem().as_bytes()).unwrap()
}

#[tokio::main]
async fn main() {
    let opts = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("edge bench: {e}");
            std::process::exit(2);
        }
    };
    let dir = std::env::temp_dir().join(format!("switchyard-edge-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = certificates(&dir);
    let probe = reqwest::Client::builder()
        .tls_certs_only([ca.clone()])
        .build()
        .unwrap();
    let plain = Gateway::start(&dir, "plain", false, &probe).await;
    let tls = Gateway::start(&dir, "tls", true, &probe).await;
    let setup = Setup {
        plain: plain.addr,
        tls: tls.addr,
        ca,
    };

    println!(
        "\n## edge: {}s per phase, tools/call echo, one legacy session per worker\n",
        opts.seconds
    );
    println!("| path | concurrency | calls | errors | calls/s | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|---|---|");
    let mut rows = Vec::new();
    for c in [1usize, 64] {
        for path in [Leg::Http, Leg::Https, Leg::HttpsH2, Leg::Ws] {
            let f = load(&setup, path, c, opts.seconds).await;
            println!(
                "| {} | {c} | {} | {} | {:.0} | {:.3} | {:.3} |",
                path.name(),
                f.calls,
                f.errors,
                f.rate,
                f.p50,
                f.p99
            );
            rows.push((path.name(), c, f));
        }
    }
    let find = |name: &str, c: usize| {
        rows.iter()
            .find(|(n, cc, _)| *n == name && *cc == c)
            .map(|(_, _, f)| f)
            .unwrap()
    };
    println!();
    for c in [1, 64] {
        let (h, s, w) = (find("http", c), find("https", c), find("ws", c));
        println!(
            "c={c}: https adds {:+.3} ms p50 and {:+.1}% calls/s; ws {:+.3} ms p50 and {:+.1}% calls/s against http",
            s.p50 - h.p50,
            (s.rate / h.rate - 1.0) * 100.0,
            w.p50 - h.p50,
            (w.rate / h.rate - 1.0) * 100.0
        );
    }

    let (before, after, opened) = idle_sockets(&plain, opts.idle).await;
    println!(
        "\nidle WebSocket sessions: {opened} opened; gateway RSS {before} KiB -> {after} KiB: {:.1} KiB per socket",
        (after.saturating_sub(before)) as f64 / opened.max(1) as f64
    );
    drop(plain);
    drop(tls);
    let _ = std::fs::remove_dir_all(&dir);
}
