//! `relay`: how much a stdio→HTTP relay costs, Switchyard against its peers.
//!
//! ```text
//! cargo bench -p switchyard --bench relay
//! cargo bench -p switchyard --bench relay -- --seconds 10 --upstream everything --only direct-stdio,switchyard
//! ```
//!
//! One stdio MCP server (`switchyard demo --era legacy`, or with `--upstream
//! everything` the npm `server-everything`) is reached by several paths, each
//! started fresh, warmed up (200 calls), then loaded with `tools/call echo
//! {"message":"hello"}` at concurrency 1, 16 and 64, each phase for `--seconds`
//! (default 5; `--seq N` ends the concurrency-1 phase after N calls instead):
//!
//! | path | what runs |
//! |---|---|
//! | `direct-stdio` | this process writes newline-delimited JSON-RPC to the server's stdin, N requests in flight (the floor) |
//! | `switchyard-ping` | `switchyard serve`, one legacy session, `ping` (answered by the gateway: the HTTP leg alone, no upstream) |
//! | `switchyard` | `switchyard serve`, one legacy session (`initialize`, then `Mcp-Session-Id`) |
//! | `switchyard-modern` | `switchyard serve`, stateless 2026-07-28 requests (`_meta` + `Mcp-Method`/`Mcp-Name` headers) |
//! | `switchyard-nospin` | `switchyard` with `[server] idle_spin = "0s"` (workers sleep as soon as they are idle) |
//! | `switchyard-admin` | `switchyard` with the admin listener on (the console served, nobody watching) |
//! | `switchyard-consoles` | `switchyard` with the admin listener on and ten signed-in consoles streaming the live overview (`/ui/events`) throughout |
//! | `switchyard@base`, `switchyard-modern@base` | `switchyard` and `switchyard-modern` served by the binary `--baseline PATH` (an earlier build, to compare a change in one run; run right after their twins when `--baseline` is given) |
//! | `supergateway` | `supergateway --stateful` (stdio → streamable HTTP), one session |
//! | `mcp-proxy-npm` | npm `mcp-proxy`, one session |
//! | `mcp-proxy-py` | PyPI `mcp-proxy`, one session |
//!
//! The peers come from `tests/peers/setup.sh` (idempotent). Every HTTP load task
//! owns one keep-alive HTTP/1.1 connection and sends unique JSON-RPC ids; every
//! reply (JSON or SSE) must carry the matching id, no error, and "Echo: hello".
//! CPU per call is user+sys time from `/proc/<pid>/stat`, summed over the relay's
//! process tree without the upstream server's subtree (for `direct-stdio`: the
//! server's own). Everything binds and connects to 127.0.0.1 only; every process
//! tree started here is stopped at the end of its path (this process is a child
//! subreaper, so nothing can escape as an orphan).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::header::{HeaderMap, HeaderName, HeaderValue};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");
const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
/// Appears in the demo upstream's command line (its `--name`), and nowhere else.
const DEMO_MARKER: &str = "switchyard-bench-upstream";
const LEGACY: &str = "2025-11-25";
const MODERN: &str = "2026-07-28";
const EXPECT: &str = "Echo: hello";
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
const START_TIMEOUT: Duration = Duration::from_secs(30);
const PATHS: [&str; 12] = [
    "direct-stdio",
    "switchyard-ping",
    "switchyard",
    "switchyard@base",
    "switchyard-modern",
    "switchyard-modern@base",
    "switchyard-nospin",
    "switchyard-admin",
    "switchyard-consoles",
    "supergateway",
    "mcp-proxy-npm",
    "mcp-proxy-py",
];

const USAGE: &str = "\
usage: cargo bench -p switchyard --bench relay [-- OPTIONS]
  --seconds N             duration of each time-bounded phase (default 5)
  --seq N                 end the concurrency-1 phase after N calls (still capped at --seconds;
                          default: time-bounded like the others)
  --warmup N              warm-up calls per path (default 200)
  --concurrency LIST      comma-separated concurrency levels (default 1,16,64)
  --upstream demo|everything
                          the stdio server behind every path (default demo:
                          `switchyard demo --era legacy`; everything: node server-everything stdio)
  --only LIST             comma-separated subset of: direct-stdio, switchyard-ping, switchyard,
                          switchyard-modern, switchyard-nospin, switchyard-admin,
                          switchyard-consoles, supergateway, mcp-proxy-npm, mcp-proxy-py
                          (in the order given; a path may be named twice)
  --baseline PATH         another build of the switchyard binary: adds switchyard@base and
                          switchyard-modern@base (the same paths served by it)
  --client-threads N      tokio worker threads of the load generator (default 2)";

// ---------------------------------------------------------------------------
// options

struct Opts {
    seconds: f64,
    seq: u64,
    warmup: u64,
    concurrency: Vec<usize>,
    everything: bool,
    paths: Vec<&'static str>,
    client_threads: usize,
    baseline: Option<String>,
}

fn parse_opts() -> Result<Opts, String> {
    let mut o = Opts {
        seconds: 5.0,
        seq: 0,
        warmup: 200,
        concurrency: vec![1, 16, 64],
        everything: false,
        paths: Vec::new(),
        client_threads: 2,
        baseline: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (key, inline) = match arg.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{key} needs a value"))
        };
        let num = |v: String| -> Result<f64, String> {
            v.parse::<f64>()
                .ok()
                .filter(|n| *n > 0.0)
                .ok_or_else(|| format!("{key}: expected a positive number, got {v:?}"))
        };
        match key.as_str() {
            // cargo passes --bench to harness = false targets
            "--bench" => {}
            "--seconds" => o.seconds = num(value()?)?,
            "--seq" => {
                o.seq = value()?
                    .parse()
                    .map_err(|_| "--seq: expected a count".to_owned())?
            }
            "--warmup" => o.warmup = num(value()?)? as u64,
            "--client-threads" => o.client_threads = num(value()?)? as usize,
            "--concurrency" => {
                o.concurrency = value()?
                    .split(',')
                    .map(|c| c.trim().parse::<usize>().ok().filter(|n| *n > 0))
                    .collect::<Option<Vec<_>>>()
                    .ok_or("--concurrency: expected positive integers, e.g. 1,16,64")?;
            }
            "--upstream" => match value()?.as_str() {
                "demo" => o.everything = false,
                "everything" => o.everything = true,
                v => {
                    return Err(format!(
                        "--upstream: expected demo or everything, got {v:?}"
                    ));
                }
            },
            "--only" => {
                let v = value()?;
                let mut paths = Vec::new();
                for name in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    let p = PATHS
                        .iter()
                        .find(|p| **p == name)
                        .ok_or_else(|| format!("--only: unknown path {name:?}"))?;
                    paths.push(*p);
                }
                o.paths = paths;
            }
            "--baseline" => o.baseline = Some(value()?),
            "-h" | "--help" => return Err(String::new()),
            other if other.starts_with('-') => return Err(format!("unknown option {other}")),
            // a positional filter (as `cargo bench relay` passes one): ignored
            _ => {}
        }
    }
    if o.paths.is_empty() {
        o.paths = PATHS
            .iter()
            .copied()
            .filter(|p| o.baseline.is_some() || !p.ends_with("@base"))
            .collect();
    }
    if o.baseline.is_none() && o.paths.iter().any(|p| p.ends_with("@base")) {
        return Err("the @base paths need --baseline PATH".into());
    }
    Ok(o)
}

// ---------------------------------------------------------------------------
// /proc: process trees and CPU time

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// The fields of `/proc/<pid>/stat` after the command name: state, ppid, …
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// utime + stime of one process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    stat_fields(pid)
        .and_then(|f| Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?))
        .unwrap_or(0)
}

fn alive(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|f| f.first().map(String::as_str) != Some("Z"))
}

fn children_map() -> HashMap<u32, Vec<u32>> {
    let mut m: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(ppid) = stat_fields(pid).and_then(|f| f.get(1)?.parse::<u32>().ok()) {
                m.entry(ppid).or_default().push(pid);
            }
        }
    }
    m
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// Every descendant of `root` (not `root` itself).
fn descendants(root: u32) -> Vec<u32> {
    let m = children_map();
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(p) = stack.pop() {
        for c in m.get(&p).into_iter().flatten() {
            out.push(*c);
            stack.push(*c);
        }
    }
    out
}

/// CPU time (seconds) of `root`'s tree, split into (relay, upstream): a
/// descendant whose command line contains `marker` starts the upstream's
/// subtree (that catches a `sh -c` wrapper too). `root` itself is always
/// the relay, unless `root_is_upstream`.
fn tree_cpu(root: u32, marker: &str, root_is_upstream: bool) -> (f64, f64) {
    let m = children_map();
    let (mut relay, mut up) = (0u64, 0u64);
    let mut stack = vec![(root, root_is_upstream)];
    while let Some((p, is_up)) = stack.pop() {
        let t = cpu_ticks(p);
        if is_up {
            up += t;
        } else {
            relay += t;
        }
        for c in m.get(&p).into_iter().flatten() {
            stack.push((*c, is_up || cmdline(*c).contains(marker)));
        }
    }
    let tck = clk_tck();
    (relay as f64 / tck, up as f64 / tck)
}

fn self_cpu() -> f64 {
    cpu_ticks(std::process::id()) as f64 / clk_tck()
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a pid this process started (or adopted as subreaper).
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// Reaps `pid` if it is an adopted orphan that has exited (never blocks).
fn reap(pid: u32) {
    // SAFETY: waitpid with WNOHANG on one specific pid; a null status pointer is allowed.
    unsafe {
        libc::waitpid(pid as libc::pid_t, std::ptr::null_mut(), libc::WNOHANG);
    }
}

/// Makes orphaned grandchildren re-parent to this process, so that every
/// process a peer starts stays findable under our pid until it is stopped.
fn become_subreaper() {
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) only changes this process's own flag.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
}

/// Kills whatever is still running below this process; returns how many.
fn sweep_leftovers() -> usize {
    let me = std::process::id();
    let left: Vec<u32> = descendants(me).into_iter().filter(|p| alive(*p)).collect();
    for p in &left {
        signal(*p, libc::SIGKILL);
    }
    std::thread::sleep(Duration::from_millis(100));
    for p in descendants(me) {
        reap(p);
    }
    left.len()
}

// ---------------------------------------------------------------------------
// child processes

/// A started process tree, killed (whole tree) when dropped.
struct Proc {
    name: String,
    child: Child,
    pid: u32,
    log: PathBuf,
}

impl Proc {
    fn spawn(
        name: &str,
        argv: &[String],
        env: &[(String, String)],
        log: &Path,
        pipes: bool,
    ) -> Result<Proc, String> {
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .kill_on_drop(true)
            .current_dir(WORKSPACE);
        for (k, v) in env {
            cmd.env(k, v);
        }
        if pipes {
            cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        } else {
            cmd.stdin(Stdio::null())
                .stdout(open_log(log).map_err(|e| format!("log {}: {e}", log.display()))?);
        }
        cmd.stderr(open_log(log).map_err(|e| format!("log {}: {e}", log.display()))?);
        let child = cmd
            .spawn()
            .map_err(|e| format!("spawning {}: {e}", argv[0]))?;
        let pid = child.id().ok_or("child exited at once")?;
        Ok(Proc {
            name: name.to_owned(),
            child,
            pid,
            log: log.to_owned(),
        })
    }

    /// `Some(reason)` once the root process has exited.
    fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(st)) => Some(format!(
                "{} exited ({st}); log: {}",
                self.name,
                log_tail(&self.log)
            )),
            Ok(None) => None,
            Err(e) => Some(format!("{}: {e}", self.name)),
        }
    }

    /// SIGTERM to the root, then to any survivor of its tree, then SIGKILL.
    /// Returns how many processes had to be killed with SIGKILL.
    async fn stop(mut self) -> usize {
        let tree = descendants(self.pid);
        signal(self.pid, libc::SIGTERM);
        if tokio::time::timeout(Duration::from_secs(3), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
        let mut killed = 0;
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            for p in &tree {
                reap(*p);
            }
            let left: Vec<u32> = tree.iter().copied().filter(|p| alive(*p)).collect();
            if left.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                for p in &left {
                    signal(*p, libc::SIGKILL);
                }
                killed += left.len();
                tokio::time::sleep(Duration::from_millis(50)).await;
                for p in &left {
                    reap(*p);
                }
                break;
            }
            if Instant::now() + Duration::from_secs(1) > deadline {
                for p in &left {
                    signal(*p, libc::SIGTERM);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        killed
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            for p in descendants(self.pid) {
                signal(p, libc::SIGKILL);
            }
            signal(self.pid, libc::SIGKILL);
        }
    }
}

fn open_log(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(3)..].join(" | ");
    if tail.is_empty() {
        "(empty)".to_owned()
    } else {
        tail.chars().take(400).collect()
    }
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

fn shell_quote(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/._-=:,@+".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------------------
// replies

/// Whether one JSON-RPC response is a good echo result.
fn check_message(msg: &Value, raw: &str) -> Result<(), String> {
    check_reply(msg, raw, EXPECT)
}

/// Whether one JSON-RPC response is a result containing `expect`.
fn check_reply(msg: &Value, raw: &str, expect: &str) -> Result<(), String> {
    let bad = || {
        Err(format!(
            "bad reply: {}",
            raw.chars().take(300).collect::<String>()
        ))
    };
    if msg.get("error").is_some() || msg["result"]["isError"] == true || !raw.contains(expect) {
        return bad();
    }
    Ok(())
}

/// The JSON-RPC messages of an HTTP body: one JSON value (or a batch), or
/// every `data:` event of an SSE stream. Each with its raw text.
fn body_messages(sse: bool, body: &[u8]) -> Vec<(Value, String)> {
    let text = String::from_utf8_lossy(body);
    let mut raws = Vec::new();
    if sse {
        let mut data = String::new();
        for line in text.lines().chain(std::iter::once("")) {
            if line.is_empty() {
                if !data.is_empty() {
                    raws.push(std::mem::take(&mut data));
                }
            } else if let Some(d) = line.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(d.strip_prefix(' ').unwrap_or(d));
            }
        }
    } else if !text.trim().is_empty() {
        raws.push(text.into_owned());
    }
    let mut out = Vec::new();
    for raw in raws {
        match serde_json::from_str::<Value>(&raw) {
            Ok(Value::Array(batch)) => out.extend(batch.into_iter().map(|m| {
                let r = m.to_string();
                (m, r)
            })),
            Ok(v) => out.push((v, raw)),
            Err(_) => {}
        }
    }
    out
}

// ---------------------------------------------------------------------------
// HTTP client: one keep-alive HTTP/1.1 connection per task

/// One keep-alive HTTP/1.1 connection, read and written by the task that
/// owns it: the request is one `write`, the reply is parsed from the bytes as
/// they arrive (`httparse` for the head; `Content-Length`, chunked or
/// read-to-close for the body). A lean client, like the direct-stdio one, so
/// that what the HTTP rows add over the floor is the relay's cost and not the
/// load generator's: hyper's client conn runs in a task of its own, which
/// put a task hand-off (and on two threads often a futex wake) on each side
/// of every call.
struct Conn {
    tcp: tokio::net::TcpStream,
    buf: Vec<u8>,
    closed: bool,
}

async fn connect(addr: SocketAddr) -> Result<Conn, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    Ok(Conn {
        tcp,
        buf: Vec::with_capacity(16 * 1024),
        closed: false,
    })
}

struct HttpReply {
    status: u16,
    headers: HeaderMap,
    sse: bool,
    body: Bytes,
}

impl Conn {
    /// Reads more bytes into `buf`; the peer closing is an error unless `eof_ok`.
    async fn fill(&mut self, eof_ok: bool) -> Result<bool, String> {
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(16 * 1024);
        }
        match self.tcp.read_buf(&mut self.buf).await {
            Ok(0) => {
                self.closed = true;
                if eof_ok {
                    Ok(false)
                } else {
                    Err("connection closed mid-reply".to_owned())
                }
            }
            Ok(_) => Ok(true),
            Err(e) => {
                self.closed = true;
                Err(format!("read: {e}"))
            }
        }
    }

    /// Waits for a whole line at the start of `buf` (without its CRLF).
    async fn line(&mut self) -> Result<String, String> {
        loop {
            if let Some(at) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..at]).into_owned();
                self.buf.drain(..at + 2);
                return Ok(line);
            }
            self.fill(false).await?;
        }
    }

    async fn take(&mut self, n: usize) -> Result<Vec<u8>, String> {
        while self.buf.len() < n {
            self.fill(false).await?;
        }
        Ok(self.buf.drain(..n).collect())
    }

    async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<HttpReply, String> {
        if self.closed {
            return Err("connection closed".to_owned());
        }
        let mut req = Vec::with_capacity(512 + body.len());
        let _ = write!(&mut req, "{method} {path} HTTP/1.1\r\n");
        for (name, value) in headers {
            req.extend_from_slice(name.as_str().as_bytes());
            req.extend_from_slice(b": ");
            req.extend_from_slice(value.as_bytes());
            req.extend_from_slice(b"\r\n");
        }
        let _ = write!(&mut req, "content-length: {}\r\n\r\n", body.len());
        req.extend_from_slice(body);
        if let Err(e) = self.tcp.write_all(&req).await {
            self.closed = true;
            return Err(format!("write: {e}"));
        }
        let (status, headers) = loop {
            let mut slots = [httparse::EMPTY_HEADER; 64];
            let mut head = httparse::Response::new(&mut slots);
            match head.parse(&self.buf) {
                Ok(httparse::Status::Complete(len)) => {
                    let status = head.code.unwrap_or(0);
                    let mut headers = HeaderMap::new();
                    for h in head.headers.iter() {
                        if let (Ok(k), Ok(v)) = (
                            HeaderName::from_bytes(h.name.as_bytes()),
                            HeaderValue::from_bytes(h.value),
                        ) {
                            headers.append(k, v);
                        }
                    }
                    self.buf.drain(..len);
                    if (100..200).contains(&status) {
                        continue; // an interim reply: the real one follows
                    }
                    break (status, headers);
                }
                Ok(httparse::Status::Partial) => {
                    self.fill(false).await?;
                }
                Err(e) => {
                    self.closed = true;
                    return Err(format!("bad reply head: {e}"));
                }
            }
        };
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_ascii_lowercase)
        };
        let body = if method == "HEAD" || status == 204 || status == 304 {
            Vec::new()
        } else if header("transfer-encoding").is_some_and(|te| te.contains("chunked")) {
            let mut body = Vec::new();
            loop {
                let size = self.line().await?;
                let size = size.split(';').next().unwrap_or("").trim();
                let size = usize::from_str_radix(size, 16)
                    .map_err(|_| format!("bad chunk size {size:?}"))?;
                if size == 0 {
                    while !self.line().await?.is_empty() {} // trailers
                    break body;
                }
                body.extend(self.take(size).await?);
                self.take(2).await?;
            }
        } else if let Some(len) = header("content-length") {
            let len: usize = len
                .trim()
                .parse()
                .map_err(|_| format!("bad content-length {len:?}"))?;
            self.take(len).await?
        } else {
            while self.fill(true).await? {}
            std::mem::take(&mut self.buf)
        };
        if header("connection").is_some_and(|c| c.contains("close")) {
            self.closed = true;
        }
        Ok(HttpReply {
            status,
            sse: header("content-type").is_some_and(|v| v.starts_with("text/event-stream")),
            headers,
            body: Bytes::from(body),
        })
    }
}

fn header_map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(
            HeaderName::from_bytes(k.as_bytes()).expect("header name"),
            HeaderValue::from_str(v).expect("header value"),
        );
    }
    h
}

/// One MCP endpoint under load.
struct HttpTarget {
    addr: SocketAddr,
    path: String,
    headers: HeaderMap,
    modern: bool,
    /// `ping` instead of `tools/call`: answered by the gateway itself, so
    /// the row shows the HTTP edge's cost with no upstream leg.
    ping: bool,
    next_id: AtomicU64,
}

impl HttpTarget {
    fn body(&self, id: u64) -> Bytes {
        if self.ping {
            return Bytes::from(format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#));
        }
        let meta = if self.modern {
            format!(
                r#","_meta":{{"io.modelcontextprotocol/protocolVersion":"{MODERN}","io.modelcontextprotocol/clientCapabilities":{{}},"io.modelcontextprotocol/clientInfo":{{"name":"relay-bench","version":"1"}}}}"#
            )
        } else {
            String::new()
        };
        Bytes::from(format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"echo","arguments":{{"message":"hello"}}{meta}}}}}"#
        ))
    }

    async fn call(&self, conn: &mut Conn) -> Result<(), String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let r = conn
            .request("POST", &self.path, &self.headers, &self.body(id))
            .await?;
        if r.status != 200 {
            return Err(format!(
                "HTTP {}: {}",
                r.status,
                String::from_utf8_lossy(&r.body)
                    .chars()
                    .take(300)
                    .collect::<String>()
            ));
        }
        let msgs = body_messages(r.sse, &r.body);
        match msgs.iter().find(|(m, _)| m["id"] == id) {
            Some((m, raw)) if self.ping => check_reply(m, raw, r#""result":{}"#),
            Some((m, raw)) => check_message(m, raw),
            None => Err(format!(
                "no response with id {id}: {}",
                String::from_utf8_lossy(&r.body)
                    .chars()
                    .take(300)
                    .collect::<String>()
            )),
        }
    }
}

/// `initialize` + `notifications/initialized` on a legacy endpoint, retried
/// until `START_TIMEOUT` (the server may still be starting). Returns the
/// headers later requests need.
async fn legacy_session(
    addr: SocketAddr,
    path: &str,
    procs: &mut [Proc],
) -> Result<HeaderMap, String> {
    let host = addr.to_string();
    let base = [
        ("host", host.as_str()),
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
    ];
    let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
        "protocolVersion": LEGACY, "capabilities": {},
        "clientInfo": {"name": "relay-bench", "version": "1"}}});
    let start = Instant::now();
    let mut last = String::from("not tried");
    while start.elapsed() < START_TIMEOUT {
        for p in procs.iter_mut() {
            if let Some(why) = p.exited() {
                return Err(why);
            }
        }
        let attempt = async {
            let mut conn = connect(addr).await?;
            let r = conn
                .request(
                    "POST",
                    path,
                    &header_map(&base),
                    init.to_string().as_bytes(),
                )
                .await?;
            let msgs = body_messages(r.sse, &r.body);
            let result = msgs
                .iter()
                .find(|(m, _)| m["id"] == 0 && m.get("result").is_some())
                .map(|(m, _)| m["result"].clone())
                .ok_or_else(|| {
                    format!(
                        "initialize: HTTP {} {}",
                        r.status,
                        String::from_utf8_lossy(&r.body)
                            .chars()
                            .take(200)
                            .collect::<String>()
                    )
                })?;
            let version = result["protocolVersion"]
                .as_str()
                .unwrap_or(LEGACY)
                .to_owned();
            let session = r
                .headers
                .get("mcp-session-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let mut pairs = base.to_vec();
            pairs.push(("mcp-protocol-version", version.as_str()));
            if let Some(s) = &session {
                pairs.push(("mcp-session-id", s.as_str()));
            }
            let headers = header_map(&pairs);
            let note = br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
            let r = conn.request("POST", path, &headers, note).await?;
            if !(200..300).contains(&r.status) {
                return Err(format!("notifications/initialized: HTTP {}", r.status));
            }
            Ok::<_, String>(headers)
        };
        match tokio::time::timeout(CALL_TIMEOUT, attempt).await {
            Ok(Ok(h)) => return Ok(h),
            Ok(Err(e)) => last = e,
            Err(_) => last = "initialize timed out".to_owned(),
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    Err(format!("no session within {START_TIMEOUT:?}: {last}"))
}

/// Waits until Switchyard's `/healthz` reports no upstream still starting.
async fn switchyard_ready(addr: SocketAddr, proc_: &mut Proc) -> Result<(), String> {
    let start = Instant::now();
    let mut last = String::from("not tried");
    while start.elapsed() < START_TIMEOUT {
        if let Some(why) = proc_.exited() {
            return Err(why);
        }
        let attempt = async {
            let mut conn = connect(addr).await?;
            let host = addr.to_string();
            let r = conn
                .request(
                    "GET",
                    "/healthz",
                    &header_map(&[("host", host.as_str())]),
                    b"",
                )
                .await?;
            let h: Value = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
            let ups = h["upstreams"].as_array().cloned().unwrap_or_default();
            if ups.iter().all(|u| u["state"] != "starting") {
                Ok(())
            } else {
                Err(format!("upstreams starting: {h}"))
            }
        };
        match tokio::time::timeout(Duration::from_secs(5), attempt).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => last = e,
            Err(_) => last = "healthz timed out".to_owned(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!(
        "switchyard not ready within {START_TIMEOUT:?}: {last}"
    ))
}

// ---------------------------------------------------------------------------
// direct stdio client: one pipe, N requests in flight

/// Requests are written by the calling task itself (no writer task to hand
/// them to); one reader task hands each reply to its caller by id.
struct StdioClient {
    stdin: tokio::sync::Mutex<tokio::process::ChildStdin>,
    pending: Mutex<HashMap<u64, oneshot::Sender<String>>>,
    next_id: AtomicU64,
}

impl StdioClient {
    fn start(child: &mut Child) -> Result<Arc<StdioClient>, String> {
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let client = Arc::new(StdioClient {
            stdin: tokio::sync::Mutex::new(stdin),
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
        });
        let weak = Arc::downgrade(&client);
        tokio::spawn(async move {
            let mut lines = BufReader::with_capacity(1 << 16, stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let Some(client) = weak.upgrade() else { return };
                let id = serde_json::from_str::<Value>(&line)
                    .ok()
                    .filter(|m| m.get("result").is_some() || m.get("error").is_some())
                    .and_then(|m| m["id"].as_u64());
                if let Some(id) = id {
                    let waiter = client.pending.lock().unwrap().remove(&id);
                    if let Some(w) = waiter {
                        let _ = w.send(line);
                    }
                }
            }
            // EOF: fail everything still waiting
            if let Some(client) = weak.upgrade() {
                client.pending.lock().unwrap().clear();
            }
        });
        Ok(client)
    }

    async fn request(&self, method: &str, params: Value) -> Result<String, String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap().insert(id, tx);
        let msg = json!({"jsonrpc":"2.0","id":id,"method":method,"params":params});
        self.send_line(msg.to_string()).await?;
        rx.await.map_err(|_| "upstream closed stdout".to_owned())
    }

    async fn send_line(&self, mut line: String) -> Result<(), String> {
        line.push('\n');
        self.stdin
            .lock()
            .await
            .write_all(line.as_bytes())
            .await
            .map_err(|e| format!("upstream stdin: {e}"))
    }

    async fn initialize(&self) -> Result<(), String> {
        let params = json!({"protocolVersion": LEGACY, "capabilities": {},
            "clientInfo": {"name": "relay-bench", "version": "1"}});
        let r = tokio::time::timeout(START_TIMEOUT, self.request("initialize", params))
            .await
            .map_err(|_| "initialize timed out".to_owned())??;
        if !r.contains("\"result\"") {
            return Err(format!("initialize failed: {r}"));
        }
        self.send_line(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_owned())
            .await
    }

    async fn call(&self) -> Result<(), String> {
        let raw = self
            .request(
                "tools/call",
                json!({"name": "echo", "arguments": {"message": "hello"}}),
            )
            .await?;
        let msg: Value = serde_json::from_str(&raw).map_err(|e| format!("{e}: {raw}"))?;
        check_message(&msg, &raw)
    }
}

// ---------------------------------------------------------------------------
// load phases

enum Target {
    Stdio(Arc<StdioClient>),
    Http(Arc<HttpTarget>),
}

/// Per-task state: the stdio client, or an HTTP target and this task's own connection.
enum Worker {
    Stdio(Arc<StdioClient>),
    Http(Arc<HttpTarget>, Option<Conn>),
}

impl Worker {
    fn new(t: &Target) -> Worker {
        match t {
            Target::Stdio(c) => Worker::Stdio(Arc::clone(c)),
            Target::Http(h) => Worker::Http(Arc::clone(h), None),
        }
    }

    async fn prepare(&mut self) {
        if let Worker::Http(t, conn @ None) = self {
            *conn = connect(t.addr).await.ok();
        }
    }

    async fn call(&mut self) -> Result<(), String> {
        match self {
            Worker::Stdio(c) => c.call().await,
            Worker::Http(t, conn) => {
                if conn.as_ref().is_none_or(|c| c.closed) {
                    match connect(t.addr).await {
                        Ok(c) => *conn = Some(c),
                        Err(e) => {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            return Err(e);
                        }
                    }
                }
                let r = t.call(conn.as_mut().expect("connected")).await;
                if r.is_err() && conn.as_ref().is_some_and(|c| c.closed) {
                    *conn = None;
                }
                r
            }
        }
    }

    /// Drops the connection (after a timeout its state is unknown).
    fn reset(&mut self) {
        if let Worker::Http(_, conn) = self {
            *conn = None;
        }
    }
}

/// What is measured of a path's process tree during a phase.
struct Probe {
    root: u32,
    marker: String,
    root_is_upstream: bool,
}

struct Phase {
    good: u64,
    bad: u64,
    elapsed: Duration,
    lat_us: Vec<u64>,
    relay_cpu_s: f64,
    upstream_cpu_s: f64,
    client_cpu_s: f64,
    first_bad: Option<String>,
}

impl Phase {
    fn rate(&self) -> f64 {
        self.good as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn pct_ms(&self, p: f64) -> f64 {
        if self.lat_us.is_empty() {
            return f64::NAN;
        }
        let k =
            ((p / 100.0 * self.lat_us.len() as f64).ceil() as usize).clamp(1, self.lat_us.len());
        self.lat_us[k - 1] as f64 / 1000.0
    }

    fn per_call_us(&self, cpu_s: f64) -> f64 {
        cpu_s * 1e6 / (self.good + self.bad).max(1) as f64
    }
}

/// `conc` tasks call for `dur`, or until `max_calls` calls were started.
async fn run_phase(
    target: &Target,
    probe: &Probe,
    conc: usize,
    dur: Duration,
    max_calls: Option<u64>,
) -> Phase {
    let stop = Arc::new(AtomicBool::new(false));
    let issued = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(tokio::sync::Barrier::new(conc + 1));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..conc {
        let mut w = Worker::new(target);
        let (stop, issued, barrier) =
            (Arc::clone(&stop), Arc::clone(&issued), Arc::clone(&barrier));
        tasks.spawn(async move {
            w.prepare().await;
            barrier.wait().await;
            let mut lat = Vec::with_capacity(4096);
            let (mut bad, mut first_bad) = (0u64, None);
            while !stop.load(Ordering::Relaxed) {
                if max_calls.is_some_and(|m| issued.fetch_add(1, Ordering::Relaxed) >= m) {
                    break;
                }
                let t = Instant::now();
                match tokio::time::timeout(CALL_TIMEOUT, w.call()).await {
                    Ok(Ok(())) => lat.push(t.elapsed().as_micros() as u64),
                    Ok(Err(e)) => {
                        bad += 1;
                        first_bad.get_or_insert(e);
                    }
                    Err(_) => {
                        bad += 1;
                        first_bad
                            .get_or_insert_with(|| format!("no reply within {CALL_TIMEOUT:?}"));
                        w.reset();
                    }
                }
            }
            (lat, bad, first_bad)
        });
    }
    let (relay0, up0) = tree_cpu(probe.root, &probe.marker, probe.root_is_upstream);
    let client0 = self_cpu();
    barrier.wait().await;
    let start = Instant::now();
    let timer = {
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            tokio::time::sleep(dur).await;
            stop.store(true, Ordering::Relaxed);
        })
    };
    let mut phase = Phase {
        good: 0,
        bad: 0,
        elapsed: Duration::ZERO,
        lat_us: Vec::new(),
        relay_cpu_s: 0.0,
        upstream_cpu_s: 0.0,
        client_cpu_s: 0.0,
        first_bad: None,
    };
    let hard_stop = tokio::time::sleep(dur + CALL_TIMEOUT + Duration::from_secs(5));
    tokio::pin!(hard_stop);
    loop {
        tokio::select! {
            next = tasks.join_next() => match next {
                Some(Ok((lat, bad, first_bad))) => {
                    phase.good += lat.len() as u64;
                    phase.lat_us.extend(lat);
                    phase.bad += bad;
                    if phase.first_bad.is_none() {
                        phase.first_bad = first_bad;
                    }
                }
                Some(Err(e)) => {
                    phase.bad += 1;
                    phase.first_bad.get_or_insert_with(|| format!("load task failed: {e}"));
                }
                None => break,
            },
            _ = &mut hard_stop => {
                phase.first_bad.get_or_insert_with(|| "phase overran its time bound; tasks aborted".to_owned());
                tasks.abort_all();
                break;
            }
        }
    }
    timer.abort();
    phase.elapsed = start.elapsed();
    let (relay1, up1) = tree_cpu(probe.root, &probe.marker, probe.root_is_upstream);
    phase.relay_cpu_s = relay1 - relay0;
    phase.upstream_cpu_s = up1 - up0;
    phase.client_cpu_s = self_cpu() - client0;
    phase.lat_us.sort_unstable();
    phase
}

// ---------------------------------------------------------------------------
// paths

struct Env {
    tmp: PathBuf,
    /// The upstream server's argv.
    upstream: Vec<String>,
    /// What identifies the upstream in a process's command line.
    marker: String,
    peers: Result<HashMap<String, String>, String>,
    /// `--baseline`: the binary of the `@base` paths.
    baseline: Option<String>,
}

impl Env {
    fn peer(&self, key: &str) -> Result<String, String> {
        let peers = self.peers.as_ref().map_err(Clone::clone)?;
        peers
            .get(key)
            .cloned()
            .ok_or_else(|| format!("setup.sh printed no {key}"))
    }
}

/// A started path: its processes (the first is the root that is measured).
struct Running {
    target: Target,
    procs: Vec<Proc>,
    root_is_upstream: bool,
    /// Console streams held open while the path is loaded (aborted on drop).
    consoles: Vec<tokio_util::task::AbortOnDropHandle<()>>,
}

/// Consoles open on `switchyard-consoles`.
const CONSOLES: usize = 10;
const CONSOLE_TOKEN: &str = "bench-console-admin-token";

/// Signs `CONSOLES` browsers' worth of sessions in on the admin listener
/// and reads each one's live overview stream until aborted.
async fn open_consoles(
    admin: SocketAddr,
) -> Result<Vec<tokio_util::task::AbortOnDropHandle<()>>, String> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for _ in 0..CONSOLES {
        let resp = http
            .post(format!("http://{admin}/ui/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={CONSOLE_TOKEN}"))
            .send()
            .await
            .map_err(|e| format!("console sign-in: {e}"))?;
        let cookie = resp
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .ok_or("console sign-in: no cookie")?
            .to_owned();
        let stream = http
            .get(format!("http://{admin}/ui/events"))
            .header("cookie", cookie)
            .send()
            .await
            .map_err(|e| format!("console stream: {e}"))?;
        if !stream.status().is_success() {
            return Err(format!("console stream: {}", stream.status()));
        }
        out.push(tokio_util::task::AbortOnDropHandle::new(tokio::spawn(
            async move {
                use futures_util::StreamExt;
                let mut body = stream.bytes_stream();
                while let Some(Ok(_)) = body.next().await {}
            },
        )));
    }
    Ok(out)
}

async fn start_path(name: &str, env: &Env) -> Result<Running, String> {
    let log = env.tmp.join(format!("{name}.log"));
    let _ = std::fs::remove_file(&log);
    // An `@base` path is its twin served by the baseline binary.
    let (name, bin) = match name.strip_suffix("@base") {
        Some(twin) => (twin, env.baseline.as_deref().ok_or("no --baseline")?),
        None => (name, BIN),
    };
    let http = |addr: SocketAddr, headers: HeaderMap, modern: bool| {
        Target::Http(Arc::new(HttpTarget {
            addr,
            path: "/mcp".to_owned(),
            headers,
            modern,
            ping: name == "switchyard-ping",
            next_id: AtomicU64::new(1),
        }))
    };
    match name {
        "direct-stdio" => {
            let mut p = Proc::spawn(name, &env.upstream, &[], &log, true)?;
            let client = StdioClient::start(&mut p.child)?;
            if let Err(e) = client.initialize().await {
                return Err(p.exited().unwrap_or(e));
            }
            Ok(Running {
                target: Target::Stdio(client),
                procs: vec![p],
                root_is_upstream: true,
                consoles: Vec::new(),
            })
        }
        "switchyard"
        | "switchyard-modern"
        | "switchyard-ping"
        | "switchyard-nospin"
        | "switchyard-admin"
        | "switchyard-consoles" => {
            let port = free_port()?;
            let config = env.tmp.join(format!("{name}.toml"));
            let spin = if name == "switchyard-nospin" {
                "idle_spin = \"0s\"\n"
            } else {
                ""
            };
            let admin = if matches!(name, "switchyard-admin" | "switchyard-consoles") {
                Some(SocketAddr::from(([127, 0, 0, 1], free_port()?)))
            } else {
                None
            };
            let admin_table = admin
                .map(|a| format!("\n[admin]\nlisten = \"{a}\"\ntoken = \"{CONSOLE_TOKEN}\"\n"))
                .unwrap_or_default();
            let toml = format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\n{spin}\n[upstreams.up]\ncommand = {}\nargs = {}\ntimeout = \"30s\"\n\n[[routes]]\npath = \"/mcp\"\nupstreams = [\"up\"]\n{admin_table}",
                serde_json::to_string(&env.upstream[0]).expect("string"),
                serde_json::to_string(&env.upstream[1..]).expect("strings"),
            );
            std::fs::write(&config, toml).map_err(|e| format!("{}: {e}", config.display()))?;
            let argv = [
                bin.to_owned(),
                "serve".into(),
                "--config".into(),
                config.display().to_string(),
            ];
            let mut p = Proc::spawn(name, &argv, &[], &log, false)?;
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            switchyard_ready(addr, &mut p).await?;
            let consoles = match admin {
                Some(a) if name == "switchyard-consoles" => open_consoles(a).await?,
                _ => Vec::new(),
            };
            let target = if name != "switchyard-modern" {
                let headers = legacy_session(addr, "/mcp", std::slice::from_mut(&mut p)).await?;
                http(addr, headers, false)
            } else {
                let host = addr.to_string();
                let headers = header_map(&[
                    ("host", host.as_str()),
                    ("content-type", "application/json"),
                    ("accept", "application/json, text/event-stream"),
                    ("mcp-protocol-version", MODERN),
                    ("mcp-method", "tools/call"),
                    ("mcp-name", "echo"),
                ]);
                http(addr, headers, true)
            };
            Ok(Running {
                target,
                procs: vec![p],
                root_is_upstream: false,
                consoles,
            })
        }
        "supergateway" | "mcp-proxy-npm" | "mcp-proxy-py" => {
            let port = free_port()?.to_string();
            let (argv, penv): (Vec<String>, Vec<(String, String)>) = match name {
                "supergateway" => (
                    vec![
                        "node".into(),
                        env.peer("PEERS_SUPERGATEWAY")?,
                        "--stdio".into(),
                        shell_quote(&env.upstream),
                        "--outputTransport".into(),
                        "streamableHttp".into(),
                        "--stateful".into(),
                        "--port".into(),
                        port.clone(),
                        "--logLevel".into(),
                        "none".into(),
                    ],
                    vec![(
                        "NODE_OPTIONS".into(),
                        format!("--require {}", env.peer("PEERS_LOOPBACK_PRELOAD")?),
                    )],
                ),
                "mcp-proxy-npm" => {
                    let mut a = vec![
                        "node".into(),
                        env.peer("PEERS_MCP_PROXY_NPM")?,
                        "--host".into(),
                        "127.0.0.1".into(),
                        "--port".into(),
                        port.clone(),
                        "--".into(),
                    ];
                    a.extend(env.upstream.iter().cloned());
                    (a, vec![])
                }
                _ => {
                    let mut a = vec![
                        env.peer("PEERS_MCP_PROXY_PY")?,
                        "--host".into(),
                        "127.0.0.1".into(),
                        "--port".into(),
                        port.clone(),
                        "--log-level".into(),
                        "WARNING".into(),
                        "--".into(),
                    ];
                    a.extend(env.upstream.iter().cloned());
                    (a, vec![])
                }
            };
            let mut p = Proc::spawn(name, &argv, &penv, &log, false)?;
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
            let headers = legacy_session(addr, "/mcp", std::slice::from_mut(&mut p)).await?;
            Ok(Running {
                target: http(addr, headers, false),
                procs: vec![p],
                root_is_upstream: false,
                consoles: Vec::new(),
            })
        }
        _ => Err(format!("unknown path {name}")),
    }
}

enum Outcome {
    Measured(Phase),
    Failed(String),
}

struct Row {
    path: &'static str,
    conc: usize,
    outcome: Outcome,
}

async fn run_path(name: &'static str, opts: &Opts, env: &Env, rows: &Mutex<Vec<Row>>) {
    let push = |conc: usize, outcome: Outcome| {
        rows.lock().unwrap().push(Row {
            path: name,
            conc,
            outcome,
        })
    };
    eprintln!("relay: {name}: starting");
    let mut running = match start_path(name, env).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("relay: {name}: FAILED to start: {e}");
            push(0, Outcome::Failed(format!("failed to start: {e}")));
            return;
        }
    };
    let probe = Probe {
        root: running.procs[0].pid,
        marker: env.marker.clone(),
        root_is_upstream: running.root_is_upstream,
    };
    let dur = Duration::from_secs_f64(opts.seconds);
    let warm = run_phase(
        &running.target,
        &probe,
        1,
        Duration::from_secs(15),
        Some(opts.warmup),
    )
    .await;
    if warm.good == 0 {
        let why = warm.first_bad.unwrap_or_else(|| "no calls".to_owned());
        eprintln!("relay: {name}: warm-up failed: {why}");
        push(0, Outcome::Failed(format!("warm-up failed: {why}")));
    } else {
        if warm.bad > 0 {
            eprintln!("relay: {name}: {} bad replies during warm-up", warm.bad);
        }
        for &conc in &opts.concurrency {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let max = (conc == 1 && opts.seq > 0).then_some(opts.seq);
            let ph = run_phase(&running.target, &probe, conc, dur, max).await;
            eprintln!(
                "relay: {name} c={conc}: {:.0} calls/s p50 {:.3} ms p99 {:.3} ms bad {} relay CPU {:.0} µs/call{}",
                ph.rate(),
                ph.pct_ms(50.0),
                ph.pct_ms(99.0),
                ph.bad,
                ph.per_call_us(if running.root_is_upstream {
                    ph.upstream_cpu_s
                } else {
                    ph.relay_cpu_s
                }),
                ph.first_bad
                    .as_deref()
                    .map(|b| format!(" (first bad: {b})"))
                    .unwrap_or_default(),
            );
            if let Some(why) = running.procs[0].exited() {
                push(conc, Outcome::Failed(why));
                break;
            }
            push(conc, Outcome::Measured(ph));
        }
    }
    let open = running.consoles.iter().filter(|c| !c.is_finished()).count();
    if !running.consoles.is_empty() {
        eprintln!(
            "relay: {name}: {open} of {} consoles still streaming at the end",
            running.consoles.len()
        );
    }
    running.consoles.clear();
    drop(running.target);
    let mut killed = 0;
    for p in running.procs.drain(..) {
        killed += p.stop().await;
    }
    killed += sweep_leftovers();
    if killed > 0 {
        eprintln!("relay: {name}: {killed} process(es) had to be killed with SIGKILL");
    }
}

/// Runs `tests/peers/setup.sh` and parses its KEY=VALUE lines.
async fn peers_setup() -> Result<HashMap<String, String>, String> {
    eprintln!("relay: bash tests/peers/setup.sh");
    let out = tokio::time::timeout(
        Duration::from_secs(600),
        Command::new("bash")
            .arg("tests/peers/setup.sh")
            .current_dir(WORKSPACE)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| "setup.sh took over 600 s".to_owned())?
    .map_err(|e| format!("setup.sh: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "setup.sh failed ({}): {}",
            out.status,
            err.lines().last().unwrap_or("")
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect())
}

// ---------------------------------------------------------------------------
// report

fn machine_facts(opts: &Opts, env: &Env) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "?".to_owned());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|_| "?".to_owned());
    let pkg_version = |key: &str, pkg: &str| -> String {
        env.peer(key)
            .ok()
            .and_then(|nm| std::fs::read_to_string(format!("{nm}/{pkg}/package.json")).ok())
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| v["version"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "?".to_owned())
    };
    let py_proxy = env
        .peer("SWITCHYARD_PEERS")
        .ok()
        .and_then(|p| {
            let lib = std::fs::read_dir(format!("{p}/venv/lib")).ok()?;
            for py in lib.flatten() {
                for e in std::fs::read_dir(py.path().join("site-packages"))
                    .ok()?
                    .flatten()
                {
                    let n = e.file_name().to_string_lossy().into_owned();
                    if let Some(v) = n
                        .strip_prefix("mcp_proxy-")
                        .and_then(|v| v.strip_suffix(".dist-info"))
                    {
                        return Some(v.to_owned());
                    }
                }
            }
            None
        })
        .unwrap_or_else(|| "?".to_owned());
    let mut s = String::new();
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let _ = writeln!(
        s,
        "- command: `cargo bench -p switchyard --bench relay{}{}` (ran `{}`)",
        if args.is_empty() { "" } else { " -- " },
        args.join(" "),
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    let _ = writeln!(
        s,
        "- machine: nproc {nproc}, {cpu}, Linux {}, load average at the end {}",
        kernel.trim(),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let _ = writeln!(
        s,
        "- switchyard {} ({} build), node {node}, supergateway {}, npm mcp-proxy {}, PyPI mcp-proxy {py_proxy}",
        env!("CARGO_PKG_VERSION"),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        pkg_version("PEERS_NODE_MODULES", "supergateway"),
        pkg_version("PEERS_NODE_MODULES", "mcp-proxy"),
    );
    let _ = writeln!(
        s,
        "- upstream (stdio, same for every path): `{}`",
        shell_quote(&env.upstream)
    );
    let _ = writeln!(
        s,
        "- load: tools/call echo {{\"message\":\"hello\"}}; {} warm-up calls; each phase {} s{}; \
         one keep-alive HTTP/1.1 connection per concurrent caller, one session per path (none for switchyard-modern); \
         load generator in the same process on {} tokio threads, sharing the machine",
        opts.warmup,
        opts.seconds,
        if opts.seq > 0 {
            format!(" (c=1: at most {} calls)", opts.seq)
        } else {
            String::new()
        },
        opts.client_threads
    );
    s
}

fn report(rows: &[Row], opts: &Opts, env: &Env) -> String {
    let direct_p50 = rows
        .iter()
        .find(|r| r.path == "direct-stdio" && r.conc == 1)
        .and_then(|r| match &r.outcome {
            Outcome::Measured(p) => Some(p.pct_ms(50.0)),
            Outcome::Failed(_) => None,
        });
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| path | concurrency | calls/s | p50 ms | p99 ms | bad replies | relay CPU µs/call | upstream CPU µs/call | load-gen CPU µs/call | added p50 vs direct stdio |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        match &r.outcome {
            Outcome::Failed(why) => {
                let why = why.replace('|', "/").replace('\n', " ");
                let conc = if r.conc == 0 {
                    "–".to_owned()
                } else {
                    r.conc.to_string()
                };
                let _ = writeln!(s, "| {} | {conc} | {why} | | | | | | | |", r.path);
            }
            Outcome::Measured(p) => {
                let direct = r.path == "direct-stdio";
                let relay = if direct {
                    format!("({:.0})", p.per_call_us(p.upstream_cpu_s))
                } else {
                    format!("{:.0}", p.per_call_us(p.relay_cpu_s))
                };
                let added = match (r.conc, direct, direct_p50) {
                    (1, false, Some(d)) => format!("{:+.3} ms", p.pct_ms(50.0) - d),
                    (1, true, _) => "0 (floor)".to_owned(),
                    _ => String::new(),
                };
                let _ = writeln!(
                    s,
                    "| {} | {} | {:.0} | {:.3} | {:.3} | {} | {relay} | {:.0} | {:.0} | {added} |",
                    r.path,
                    r.conc,
                    p.rate(),
                    p.pct_ms(50.0),
                    p.pct_ms(99.0),
                    p.bad,
                    p.per_call_us(p.upstream_cpu_s),
                    p.per_call_us(p.client_cpu_s),
                );
            }
        }
    }
    s.push('\n');
    s.push_str(&machine_facts(opts, env));
    let _ = writeln!(
        s,
        "- CPU columns: user+sys from /proc/<pid>/stat over each phase (10 ms ticks), divided by calls. \
         \"relay\" = the gateway's process tree without the upstream's subtree; for direct-stdio, in parentheses, \
         the upstream itself. \"load-gen\" = this benchmark process (HTTP client or stdio pipe client)."
    );
    s
}

// ---------------------------------------------------------------------------

fn main() -> std::process::ExitCode {
    let opts = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("relay: {e}");
            }
            eprintln!("{USAGE}");
            return std::process::ExitCode::from(2);
        }
    };
    become_subreaper();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.client_threads)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let rows = Arc::new(Mutex::new(Vec::new()));
    let env = rt.block_on(async {
        let peers = peers_setup().await;
        if let Err(e) = &peers {
            eprintln!("relay: peers unavailable: {e}");
        }
        let tmp = std::env::temp_dir().join(format!("sybench-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).expect("temp dir");
        let mut env = Env {
            tmp,
            upstream: vec![
                BIN.to_owned(),
                "demo".into(),
                "--era".into(),
                "legacy".into(),
                "--name".into(),
                DEMO_MARKER.into(),
            ],
            marker: DEMO_MARKER.to_owned(),
            peers,
            baseline: opts.baseline.clone(),
        };
        if opts.everything {
            match env.peer("PEERS_SERVER_EVERYTHING") {
                Ok(se) => {
                    env.upstream = vec!["node".into(), se.clone(), "stdio".into()];
                    env.marker = se;
                }
                Err(e) => {
                    eprintln!("relay: --upstream everything needs the peers: {e}");
                    return None;
                }
            }
        }
        let work = async {
            for name in &opts.paths {
                run_path(name, &opts, &env, &rows).await;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        };
        tokio::select! {
            () = work => {}
            _ = tokio::signal::ctrl_c() => eprintln!("relay: interrupted; stopping"),
        }
        Some(env)
    });
    drop(rt);
    let left = sweep_leftovers();
    if left > 0 {
        eprintln!("relay: killed {left} leftover process(es)");
    }
    let Some(env) = env else {
        return std::process::ExitCode::FAILURE;
    };
    let _ = std::fs::remove_dir_all(&env.tmp);
    let rows = rows.lock().unwrap();
    println!("\n{}", report(&rows, &opts, &env));
    std::process::ExitCode::SUCCESS
}
