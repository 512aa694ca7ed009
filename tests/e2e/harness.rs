//! The shared harness: starts a real gateway (`switchyard::run` on
//! `127.0.0.1:0`) from a TOML string, whose upstreams are real child
//! processes, and offers raw HTTP clients of both protocol eras.
//!
//! In TOML given to [`Gateway::start`], `{bin}` stands for the `switchyard`
//! binary built for this test run (its `demo` subcommand is the demo/fixture
//! MCP server), and `{plugins}` for the folder of the test plugins
//! (`tests/plugins/*`), built for `wasm32-wasip2` on first use.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::oneshot;

pub const BIN: &str = env!("CARGO_BIN_EXE_switchyard");
pub const MODERN: &str = "2026-07-28";
pub const LEGACY: &str = "2025-11-25";

/// A running gateway.
pub struct Gateway {
    pub addr: SocketAddr,
    /// The admin API's address, when the config has `[admin]`.
    pub admin: Option<SocketAddr>,
    /// Whether the main listener serves HTTPS (`[server.tls]`).
    pub https: bool,
    /// What asks `/healthz` (over HTTPS: any server certificate).
    probe: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Gateway {
    /// Starts a gateway on `127.0.0.1:0` from `toml` (with `{bin}` replaced)
    /// and waits until every upstream has finished starting.
    pub async fn start(toml: &str) -> Gateway {
        let toml = expand(toml);
        let vars: HashMap<String, String> = HashMap::from([("SWITCHYARD_BIN".into(), BIN.into())]);
        let config = switchyard::config::from_toml_str(&toml, Path::new("test.toml"), &vars)
            .unwrap_or_else(|e| panic!("test config is invalid: {e}\n{toml}"));
        Self::run(config).await
    }

    /// Serves `config` on `127.0.0.1:0` until dropped or shut down, and
    /// waits until every upstream has finished starting.
    async fn run(config: switchyard::config::Config) -> Gateway {
        let probe = reqwest::Client::builder()
            .tls_danger_accept_invalid_certs(true)
            .build()
            .unwrap();
        Self::run_probed(config, probe).await
    }

    async fn run_probed(config: switchyard::config::Config, probe: reqwest::Client) -> Gateway {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // The admin API on another port of the test's own choosing.
        let admin_listener = match &config.admin {
            Some(_) => Some(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()),
            None => None,
        };
        let admin = admin_listener.as_ref().map(|l| l.local_addr().unwrap());
        let https = config.server.tls.is_some();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(async move {
            let plugins = switchyard::plugin::Plugins::load(&config.plugins).await?;
            switchyard::run_with_admin(config, plugins, listener, admin_listener, async move {
                let _ = rx.await;
            })
            .await
        });
        let gw = Gateway {
            addr,
            admin,
            https,
            probe,
            stop: Some(tx),
            task: Some(task),
        };
        gw.wait_ready().await;
        gw
    }

    /// Starts a gateway from a config *file* (so it watches it for hot
    /// swaps); `toml` is expanded as in [`Gateway::start`].
    pub async fn start_file(path: &Path, toml: &str) -> Gateway {
        std::fs::write(path, expand(toml)).unwrap();
        // `config::load` reads the process environment; the test configs
        // need no variable (`{bin}` and `{plugins}` are expanded above).
        let config = switchyard::config::load(Some(path))
            .unwrap_or_else(|e| panic!("test config is invalid: {e}"));
        Self::run(config).await
    }

    /// [`Gateway::start_file`] probed by `probe` (a gateway that requires
    /// client certificates needs a client that has one).
    pub async fn start_file_probed(path: &Path, toml: &str, probe: reqwest::Client) -> Gateway {
        std::fs::write(path, expand(toml)).unwrap();
        let config = switchyard::config::load(Some(path))
            .unwrap_or_else(|e| panic!("test config is invalid: {e}"));
        Self::run_probed(config, probe).await
    }

    /// Polls `/healthz` until no upstream is still starting.
    pub async fn wait_ready(&self) {
        for _ in 0..200 {
            let h = self.health().await;
            let starting = h["upstreams"]
                .as_array()
                .unwrap_or_else(|| panic!("not a health report: {h}"))
                .iter()
                .any(|u| u["state"] == "starting");
            if !starting {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("upstreams did not start: {}", self.health().await);
    }

    pub async fn health(&self) -> Value {
        self.probe
            .get(self.url("/healthz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The pid of a stdio upstream's child, from `/healthz`.
    pub async fn pid_of(&self, upstream: &str) -> Option<u32> {
        let h = self.health().await;
        h["upstreams"]
            .as_array()?
            .iter()
            .find(|u| u["name"] == upstream)?["pid"]
            .as_u64()
            .map(|p| p as u32)
    }

    pub fn url(&self, path: &str) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}{}", self.addr, path)
    }

    /// Sends the shutdown signal and waits for `run` to return.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("gateway stops within 30 s")
                .unwrap()
                .unwrap();
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// A fresh folder under the system's temp dir.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("switchyard-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A gateway *process* (`switchyard serve --config FILE`), its log kept in
/// memory; its main (and admin) address from the log lines that name them.
/// For what only a process shows: its log, its exit, a restart.
pub struct Served {
    pub child: tokio::process::Child,
    log: std::sync::Arc<std::sync::Mutex<String>>,
    pub main: String,
    pub admin: Option<String>,
}

impl Served {
    /// Starts the process with `env` added (and `SWITCHYARD_SECRET_KEY`
    /// removed) and waits until it listens (and its admin API does, when
    /// `admin`). It is killed when dropped.
    pub async fn start(config: &Path, env: &[(&str, &str)], admin: bool) -> Served {
        use tokio::io::{AsyncBufReadExt, BufReader};
        let mut child = tokio::process::Command::new(BIN)
            .args(["serve", "--config"])
            .arg(config)
            .envs(env.iter().copied())
            .env("SWITCHYARD_LOG_FORMAT", "text")
            .env_remove("SWITCHYARD_SECRET_KEY")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (mut main, mut admin_at) = (None, None);
        tokio::time::timeout(Duration::from_secs(30), async {
            while main.is_none() || (admin && admin_at.is_none()) {
                let Some(line) = lines.next_line().await.unwrap() else {
                    panic!("the gateway exited:\n{}", log.lock().unwrap());
                };
                let addr = |key: &str| {
                    line.split(key)
                        .nth(1)
                        .map(|r| r.split_whitespace().next().unwrap().to_owned())
                };
                if line.contains("admin API listening") {
                    admin_at = addr("listen=");
                } else if line.contains("switchyard listening") {
                    main = addr("local=");
                }
                log.lock().unwrap().push_str(&line);
                log.lock().unwrap().push('\n');
            }
        })
        .await
        .unwrap_or_else(|_| panic!("the gateway listens within 30 s:\n{}", log.lock().unwrap()));
        let keep = std::sync::Arc::clone(&log);
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let mut log = keep.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        Served {
            child,
            log,
            main: main.unwrap(),
            admin: admin_at,
        }
    }

    /// Everything it has logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// SIGTERM, then waits for the exit (a graceful stop, as an operator's).
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
        let _ = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await;
    }
}

/// Replaces `{bin}` and `{plugins}` (building the test plugins if needed).
pub fn expand(toml: &str) -> String {
    let toml = toml.replace("{bin}", BIN);
    if toml.contains("{plugins}") {
        toml.replace("{plugins}", &test_plugins().display().to_string())
    } else {
        toml
    }
}

/// The folder holding `probe.wasm` and `hostile.wasm`, built once per test
/// run from `tests/plugins/` (release, `wasm32-wasip2`) into `<target>/wasm`.
pub fn test_plugins() -> std::path::PathBuf {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        // The test binary is `<target>/<profile>/deps/e2e-…`.
        let exe = std::env::current_exe().unwrap();
        let target = exe.ancestors().nth(3).unwrap().to_path_buf();
        let target_dir = target.join("wasm");
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        cargo_build_wasm(
            &target_dir,
            |c| {
                c.current_dir(root).args([
                    "-p",
                    "switchyard-test-probe",
                    "-p",
                    "switchyard-test-hostile",
                ])
            },
            "the test plugins",
        );
        let out = target_dir.join("wasm32-wasip2").join("release");
        let dir = target.join("test-plugins");
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["probe", "hostile"] {
            std::fs::copy(
                out.join(format!("switchyard_test_{name}.wasm")),
                dir.join(format!("{name}.wasm")),
            )
            .unwrap();
        }
        dir
    })
    .clone()
}

/// `cargo build --release --target wasm32-wasip2 --target-dir TARGET_DIR`
/// plus what `select` adds (packages or a manifest), without the host's
/// flags; panics naming `what` if it fails.
fn cargo_build_wasm(
    target_dir: &Path,
    select: impl FnOnce(&mut std::process::Command) -> &mut std::process::Command,
    what: &str,
) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.args(["build", "--release", "--target", "wasm32-wasip2"])
        .arg("--target-dir")
        .arg(target_dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    let status = select(&mut cmd).status().expect("cargo runs");
    assert!(status.success(), "building {what} failed");
}

/// Builds a standalone plugin crate (its own workspace: the stamp example or
/// a `plugin new` scaffold) for `wasm32-wasip2`, release, into a target
/// folder those crates share, and returns the component.
pub fn build_standalone(manifest_dir: &Path) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target_dir = exe.ancestors().nth(3).unwrap().join("wasm-standalone");
    cargo_build_wasm(
        &target_dir,
        |c| {
            c.arg("--manifest-path")
                .arg(manifest_dir.join("Cargo.toml"))
        },
        &manifest_dir.display().to_string(),
    );
    let manifest = std::fs::read_to_string(manifest_dir.join("Cargo.toml")).unwrap();
    let name = manifest
        .lines()
        .find_map(|l| l.strip_prefix("name = "))
        .unwrap()
        .trim_matches('"')
        .replace('-', "_");
    target_dir.join(format!("wasm32-wasip2/release/{name}.wasm"))
}

/// The stamp example (`examples/stamp-plugin`), built once, also copied to
/// where its README's build puts it (its config names that path).
pub fn stamp_example() -> std::path::PathBuf {
    static WASM: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    WASM.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/stamp-plugin");
        let built = build_standalone(&dir);
        let release = dir.join("target/wasm32-wasip2/release");
        std::fs::create_dir_all(&release).unwrap();
        std::fs::copy(&built, release.join("stamp_plugin.wasm")).unwrap();
        built
    })
    .clone()
}

/// A TOML config with one demo upstream per name, all on `/mcp`.
pub fn demo_config(upstreams: &[(&str, &str)]) -> String {
    let mut toml = String::new();
    for (name, extra_args) in upstreams {
        let mut args = vec!["demo".to_owned(), "--name".to_owned(), (*name).to_owned()];
        args.extend(extra_args.split_whitespace().map(str::to_owned));
        toml.push_str(&format!(
            "[upstreams.{name}]\ncommand = \"{{bin}}\"\nargs = {}\ntimeout = \"10s\"\n\n",
            serde_json::to_string(&args).unwrap()
        ));
    }
    toml
}

/// An HTTP reply: status, headers and the JSON-RPC messages in its body
/// (one for JSON, every `message` event for SSE).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub messages: Vec<Value>,
    pub sse: bool,
}

impl Reply {
    /// The last message (the response, when the request was answered).
    pub fn last(&self) -> &Value {
        self.messages.last().expect("a reply with a body")
    }
}

/// Reads a reply completely.
pub async fn read_reply(resp: reqwest::Response) -> Reply {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let sse = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let mut messages = Vec::new();
    if sse {
        let mut events = resp.bytes_stream().eventsource();
        while let Some(ev) = events.next().await {
            let ev = ev.expect("a well-formed SSE stream");
            if !ev.data.is_empty() {
                messages.push(serde_json::from_str(&ev.data).expect("SSE data is JSON"));
            }
        }
    } else {
        let body = resp.bytes().await.unwrap();
        if !body.is_empty() {
            messages.push(serde_json::from_slice(&body).unwrap_or_else(|_| {
                panic!("body is not JSON: {}", String::from_utf8_lossy(&body))
            }));
        }
    }
    Reply {
        status,
        headers,
        messages,
        sse,
    }
}

/// A raw legacy (2025-11-25) client session.
pub struct Legacy {
    pub http: reqwest::Client,
    pub url: String,
    pub session: String,
    next_id: std::sync::atomic::AtomicI64,
}

impl Legacy {
    /// `initialize` + `notifications/initialized`, with these capabilities.
    pub async fn connect_with(url: &str, capabilities: Value) -> Legacy {
        let http = reqwest::Client::new();
        let resp = http
            .post(url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .json(
                &json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
                "protocolVersion": LEGACY, "capabilities": capabilities,
                "clientInfo": {"name":"e2e","version":"1"}}}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let session = resp
            .headers()
            .get("mcp-session-id")
            .expect("initialize returns a session id")
            .to_str()
            .unwrap()
            .to_owned();
        let client = Legacy {
            http,
            url: url.to_owned(),
            session,
            next_id: 1.into(),
        };
        let r = client
            .post(json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
            .await;
        assert_eq!(r.status, 202);
        client
    }

    pub async fn connect(url: &str) -> Legacy {
        Self::connect_with(url, json!({})).await
    }

    pub fn builder(&self) -> reqwest::RequestBuilder {
        self.http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &self.session)
            .header("mcp-protocol-version", LEGACY)
    }

    /// POSTs one message and reads the whole reply.
    pub async fn post(&self, msg: Value) -> Reply {
        read_reply(self.builder().json(&msg).send().await.unwrap()).await
    }

    /// A request with a fresh id; returns the reply.
    pub async fn request(&self, method: &str, params: Value) -> Reply {
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.post(json!({"jsonrpc":"2.0","id":id,"method":method,"params":params}))
            .await
    }

    /// A request's result; panics on a JSON-RPC error.
    pub async fn result(&self, method: &str, params: Value) -> Value {
        let r = self.request(method, params).await;
        let last = r.last();
        assert!(last.get("error").is_none(), "{method} failed: {last}");
        last["result"].clone()
    }

    /// Calls a tool and returns its first text content.
    pub async fn call_text(&self, tool: &str, args: Value) -> String {
        let r = self
            .result("tools/call", json!({"name": tool, "arguments": args}))
            .await;
        r["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// A modern (2026-07-28) request with matching headers.
pub fn modern_body(id: Value, method: &str, mut params: Value) -> Value {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "e2e", "version": "1"},
    });
    json!({"jsonrpc":"2.0","id":id,"method":method,"params":params})
}

/// Sends a modern request with the headers the era requires.
pub async fn modern(url: &str, method: &str, params: Value) -> Reply {
    send_modern(url, &modern_body(json!(1), method, params)).await
}

/// Sends a prepared modern request body (see [`modern_body`]) with the
/// headers its method and target require.
pub async fn send_modern(url: &str, body: &Value) -> Reply {
    let method = body["method"].as_str().expect("a request");
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", method);
    if let Some(name) = body["params"]["name"]
        .as_str()
        .or(body["params"]["uri"].as_str())
        && matches!(method, "tools/call" | "resources/read" | "prompts/get")
    {
        req = req.header("mcp-name", name);
    }
    read_reply(req.json(body).send().await.unwrap()).await
}

/// The fields of /proc/PID/stat after the command name (which may hold
/// spaces): state, ppid, pgrp, …; utime and stime are the 12th and 13th.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
    )
}

/// What /proc says of one process: (state, parent pid, process group).
fn proc_stat(pid: u32) -> Option<(String, u32, i32)> {
    let fields = stat_fields(pid)?;
    Some((
        fields.first()?.clone(),
        fields.get(1)?.parse().ok()?,
        fields.get(2)?.parse().ok()?,
    ))
}

/// User + system CPU time a live process has used, in clock ticks.
pub fn cpu_ticks(pid: u32) -> u64 {
    let fields = stat_fields(pid).expect("the process is alive");
    let tick = |i: usize| fields[i].parse::<u64>().expect("a tick count");
    tick(11) + tick(12)
}

/// Every live (non-zombie) process with its parent and group.
fn processes() -> Vec<(u32, u32, i32)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .filter_map(|pid| {
            let (state, ppid, pgrp) = proc_stat(pid)?;
            (state != "Z").then_some((pid, ppid, pgrp))
        })
        .collect()
}

/// Whether a process is alive (and not a zombie).
pub fn alive(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|(state, _, _)| state != "Z")
}

/// The live children of `pid`.
pub fn children(pid: u32) -> Vec<u32> {
    processes()
        .into_iter()
        .filter(|(_, ppid, _)| *ppid == pid)
        .map(|(p, _, _)| p)
        .collect()
}

/// The live members of process group `pgid`.
pub fn group_members(pgid: i32) -> Vec<u32> {
    processes()
        .into_iter()
        .filter(|(_, _, g)| *g == pgid)
        .map(|(p, _, _)| p)
        .collect()
}

/// Waits up to `limit` for `cond`.
pub async fn eventually(limit: Duration, mut cond: impl AsyncFnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if cond().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Live processes whose command line has `arg` as one of its arguments.
pub fn processes_with_arg(arg: &str) -> Vec<u32> {
    processes()
        .into_iter()
        .map(|(pid, _, _)| pid)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == arg.as_bytes()))
        })
        .collect()
}

/// One upstream's entry in `/healthz`.
pub async fn upstream_report(gw: &Gateway, name: &str) -> Value {
    gw.health().await["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == name)
        .cloned()
        .unwrap_or(Value::Null)
}

/// Waits up to `limit` for an upstream to reach `state` in `/healthz`.
pub async fn reaches(gw: &Gateway, name: &str, state: &str, limit: Duration) -> bool {
    eventually(limit, async || {
        upstream_report(gw, name).await["state"] == state
    })
    .await
}

/// The tool names of a `tools/list` result, in order.
pub fn tool_names(result: &Value) -> Vec<String> {
    result["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {result}"))
        .iter()
        .map(|t| t["name"].as_str().expect("a tool has a name").to_owned())
        .collect()
}

/// A loopback port that was free a moment ago, for a part that must be told
/// its port before it starts (a peer gateway, Pebble's validation targets).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
