//! Clients and servers we did not write, against a real gateway: the
//! TypeScript SDK (v1 and v2) and the Python SDK (1.x, and 2.x for the modern
//! era) through the client scripts in `tests/peers`, over streamable HTTP in
//! both eras and over the old HTTP+SSE transport; the reference
//! `server-everything` as a stdio upstream and as a remote legacy upstream;
//! and the official conformance suite.
//!
//! The peers are installed by `tests/peers/setup.sh`, run once per test
//! process. If it fails, every test here fails: nothing is skipped.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::process::Command;

use crate::harness::{
    BIN, Gateway, MODERN, alive, demo_config, eventually, free_port, group_members,
};

/// How long one client script may run, end to end.
const CLIENT_LIMIT: Duration = Duration::from_secs(40);

fn peers_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/peers")
}

/// The `KEY=VALUE` paths printed by `setup.sh`.
pub struct Peers(HashMap<String, String>);

impl Peers {
    pub fn get(&self, key: &str) -> &str {
        self.0
            .get(key)
            .unwrap_or_else(|| panic!("setup.sh printed no {key}: {:?}", self.0))
    }
}

/// Runs `setup.sh` once per test process; panics (in every test) if it fails.
pub fn peers() -> &'static Peers {
    static PEERS: OnceLock<Result<Peers, String>> = OnceLock::new();
    let result = PEERS.get_or_init(|| {
        let script = peers_dir().join("setup.sh");
        let out = std::process::Command::new("bash")
            .arg(&script)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(format!(
                "{} failed ({}):\n{stdout}\n{}",
                script.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let paths: HashMap<String, String> = stdout
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        if !paths.contains_key("SWITCHYARD_PEERS") {
            return Err(format!("setup.sh printed no paths:\n{stdout}"));
        }
        Ok(Peers(paths))
    });
    match result {
        Ok(p) => p,
        Err(e) => panic!("the test peers are not available: {e}"),
    }
}

/// Which client script, and which SDK it drives.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Sdk {
    /// `@modelcontextprotocol/sdk` 1.x (legacy era).
    TsV1,
    /// `@modelcontextprotocol/client` 2.x in a legacy run.
    TsV2,
    /// `@modelcontextprotocol/client` 2.x, `--era modern`.
    TsModern,
    /// Python `mcp` 1.x (legacy era).
    Py,
    /// Python `mcp` 2.x, `--era modern`.
    PyModern,
}

impl Sdk {
    fn command(self, p: &Peers) -> Command {
        let (program, script, extra): (&str, &str, &[&str]) = match self {
            Sdk::TsV1 => ("node", p.get("PEERS_TS_CLIENT"), &["--sdk", "v1"]),
            Sdk::TsV2 => ("node", p.get("PEERS_TS_CLIENT"), &["--sdk", "v2"]),
            Sdk::TsModern => ("node", p.get("PEERS_TS_CLIENT"), &["--era", "modern"]),
            Sdk::Py => (p.get("PEERS_PYTHON"), p.get("PEERS_PY_CLIENT"), &[]),
            Sdk::PyModern => (
                p.get("PEERS_PYTHON"),
                p.get("PEERS_PY_CLIENT"),
                &["--era", "modern"],
            ),
        };
        let mut cmd = Command::new(program);
        cmd.arg(script).args(extra);
        cmd
    }
}

/// Runs a client script against `url` with `args`; panics with its output
/// unless it exits 0. Returns its summary line (`OK ...`).
pub(crate) async fn client(sdk: Sdk, url: &str, args: &[&str]) -> String {
    let p = peers();
    let mut cmd = sdk.command(p);
    cmd.arg(url)
        .args(args)
        .args(["-q", "--timeout", "15000", "--deadline", "30000"])
        .env("SWITCHYARD_PEERS", p.get("SWITCHYARD_PEERS"))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let shown = format!("{sdk:?} {url} {}", args.join(" "));
    let out = tokio::time::timeout(CLIENT_LIMIT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{shown}: no exit within {CLIENT_LIMIT:?}"))
        .unwrap_or_else(|e| panic!("{shown}: cannot start: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    assert!(
        out.status.success(),
        "{shown}: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    assert!(
        stdout.starts_with("OK "),
        "{shown}: no OK line\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    println!("{stdout}");
    stdout
}

/// Runs a client with `args` and then `extra` (the transport or era flags
/// every run of a test shares); asserts its summary lists each of `steps`.
async fn step(sdk: Sdk, url: &str, extra: &[&str], args: &[&str], steps: &[&str]) {
    let all: Vec<&str> = args.iter().chain(extra).copied().collect();
    let summary = client(sdk, url, &all).await;
    for step in steps {
        assert!(summary.contains(step), "no {step:?} in {summary}");
    }
}

/// Lists tools and calls server-everything's (or the demo's) `echo` with
/// `message`, expecting it back.
async fn echo_through(sdk: Sdk, url: &str, message: &str) {
    let args = serde_json::json!({ "message": message }).to_string();
    let expected = format!("Echo: {message}");
    step(
        sdk,
        url,
        &[],
        &[
            "--expect-tool",
            "echo",
            "--tool",
            "echo",
            "--args",
            &args,
            "--expect-text",
            &expected,
        ],
        &["tools/call:echo"],
    )
    .await;
}

/// A tool call with its expected text, `resources/read` and `prompts/get`
/// (with and without arguments).
async fn basics(sdk: Sdk, url: &str, extra: &[&str]) {
    step(
        sdk,
        url,
        extra,
        &[
            "--expect-tool",
            "echo",
            "--expect-tool",
            "slow",
            "--tool",
            "echo",
            "--args",
            r#"{"message":"hello peers"}"#,
            "--expect-text",
            "Echo: hello peers",
            "--resource",
            "demo://readme",
            "--prompt",
            "greet",
            "--prompt-args",
            r#"{"name":"Ada"}"#,
        ],
        &[
            "tools/call:echo",
            "resources/list",
            "resources/read",
            "prompts/get",
        ],
    )
    .await;
    step(
        sdk,
        url,
        extra,
        &[
            "--resource",
            "test://static-text",
            "--prompt",
            "test_simple_prompt",
        ],
        &["resources/read", "prompts/get"],
    )
    .await;
}

/// Progress notifications arrive before the result of `slow`.
async fn progress(sdk: Sdk, url: &str, extra: &[&str]) {
    step(
        sdk,
        url,
        extra,
        &[
            "--tool",
            "slow",
            "--args",
            r#"{"ms":300,"steps":3}"#,
            "--progress",
            "--expect-text",
            "done",
        ],
        &["tools/call:slow", "progress("],
    )
    .await;
}

/// The client's sampling handler answers, and its text comes back in the
/// tool result. Modern clients on a legacy upstream go through the era
/// bridge (InputRequiredResult rounds).
async fn sampling(sdk: Sdk, url: &str, extra: &[&str]) {
    step(
        sdk,
        url,
        extra,
        &[
            "--tool",
            "test_sampling",
            "--args",
            r#"{"prompt":"What is 2+2?"}"#,
            "--sampling",
            "--sampling-text",
            "four, from the peer",
            "--expect-text",
            "LLM response: four, from the peer",
        ],
        &["tools/call:test_sampling", "sampling(1)"],
    )
    .await;
}

/// `test_elicitation`: the server asks the client for input; the client's
/// accepted content comes back in the tool's result.
async fn elicitation(sdk: Sdk, url: &str, extra: &[&str]) {
    step(
        sdk,
        url,
        extra,
        &[
            "--tool",
            "test_elicitation",
            "--args",
            r#"{"message":"Who are you?"}"#,
            "--elicitation",
            "--elicit-content",
            r#"{"username":"ada","email":"ada@example.com"}"#,
            "--expect-text",
            "ada@example.com",
        ],
        &["tools/call:test_elicitation", "elicitation(1)"],
    )
    .await;
}

/// `set_tools` makes `notifications/tools/list_changed` reach the client.
async fn list_changed(sdk: Sdk, url: &str, extra: &[&str], extra_tool: &str) {
    let args = format!(r#"{{"extra":["{extra_tool}"]}}"#);
    step(
        sdk,
        url,
        extra,
        &[
            "--tool",
            "set_tools",
            "--args",
            &args,
            "--expect-text",
            extra_tool,
            "--list-changed",
        ],
        &["tools/call:set_tools", "list_changed("],
    )
    .await;
}

/// Everything a legacy client does, on a gateway fronting a legacy demo.
async fn legacy_suite(sdk: Sdk, path: &str, extra: &[&str]) {
    // A legacy upstream, then a modern one (the era bridge: its
    // InputRequiredResults become real requests on the client's session).
    for upstream_era in ["--era legacy", "--era modern"] {
        let gw = Gateway::start(&demo_config(&[("demo", upstream_era)])).await;
        let url = gw.url(path);
        basics(sdk, &url, extra).await;
        progress(sdk, &url, extra).await;
        sampling(sdk, &url, extra).await;
        elicitation(sdk, &url, extra).await;
        list_changed(sdk, &url, extra, "peer_extra").await;
        gw.shutdown().await;
    }
}

/// A modern (2026-07-28) client on a modern upstream, then on a legacy one
/// through the era bridge.
async fn modern_suite(sdk: Sdk) {
    let gw = Gateway::start(&demo_config(&[("demo", "")])).await;
    let url = gw.url("/mcp");
    basics(sdk, &url, &["--expect-protocol", MODERN]).await;
    progress(sdk, &url, &[]).await;
    // The modern upstream's own InputRequiredResults, relayed as they are.
    sampling(sdk, &url, &["--expect-protocol", MODERN]).await;
    elicitation(sdk, &url, &["--expect-protocol", MODERN]).await;
    list_changed(sdk, &url, &[], "modern_peer_extra").await;
    gw.shutdown().await;
    // A legacy upstream: everything again, its sampling and elicitation
    // requests bridged to this modern client as InputRequiredResults, its
    // list_changed fed to the client's subscriptions/listen.
    let legacy = Gateway::start(&demo_config(&[("demo", "--era legacy")])).await;
    let url = legacy.url("/mcp");
    basics(sdk, &url, &["--expect-protocol", MODERN]).await;
    sampling(sdk, &url, &["--expect-protocol", MODERN]).await;
    elicitation(sdk, &url, &["--expect-protocol", MODERN]).await;
    list_changed(sdk, &url, &[], "modern_peer_extra").await;
    legacy.shutdown().await;
}

const SSE: &[&str] = &["--transport", "sse"];

#[tokio::test]
async fn ts_sdk_v1_over_legacy_streamable_http() {
    legacy_suite(Sdk::TsV1, "/mcp", &[]).await;
}

#[tokio::test]
async fn ts_sdk_v2_over_legacy_streamable_http() {
    legacy_suite(Sdk::TsV2, "/mcp", &[]).await;
}

#[tokio::test]
async fn python_sdk_1x_over_legacy_streamable_http() {
    legacy_suite(Sdk::Py, "/mcp", &[]).await;
}

#[tokio::test]
async fn ts_sdk_v1_over_http_sse() {
    legacy_suite(Sdk::TsV1, "/mcp/sse", SSE).await;
}

#[tokio::test]
async fn python_sdk_1x_over_http_sse() {
    legacy_suite(Sdk::Py, "/mcp/sse", SSE).await;
}

#[tokio::test]
async fn ts_sdk_in_the_modern_era() {
    modern_suite(Sdk::TsModern).await;
}

#[tokio::test]
async fn python_sdk_in_the_modern_era() {
    modern_suite(Sdk::PyModern).await;
}

#[tokio::test]
async fn server_everything_as_a_stdio_upstream() {
    let p = peers();
    let toml = format!(
        "[upstreams.everything]\ncommand = \"node\"\nargs = [{:?}, \"stdio\"]\ntimeout = \"20s\"\n",
        p.get("PEERS_SERVER_EVERYTHING")
    );
    let gw = Gateway::start(&toml).await;
    let h = gw.health().await;
    assert_eq!(h["upstreams"][0]["state"], "ready", "{h}");
    let child = gw.pid_of("everything").await.expect("a pid for the child");
    let url = gw.url("/mcp");
    for sdk in [Sdk::TsV1, Sdk::Py] {
        echo_through(sdk, &url, "through the gateway").await;
    }
    gw.shutdown().await;
    assert!(
        eventually(Duration::from_secs(5), async || !alive(child)).await,
        "server-everything (pid {child}) outlived the gateway"
    );
}

/// A child in its own process group, killed (the whole group) on drop.
struct Group {
    child: tokio::process::Child,
    pgid: i32,
}

impl Group {
    /// SIGTERM to the group, then SIGKILL after 5 s; waits for the child.
    async fn stop(mut self) {
        // SAFETY: kill(2) with a negative pid signals our own child's group.
        unsafe { libc::kill(-self.pgid, libc::SIGTERM) };
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            // SAFETY: as above.
            unsafe { libc::kill(-self.pgid, libc::SIGKILL) };
            let _ = self.child.wait().await;
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: as in `stop`; a group that is gone already gets ESRCH.
        unsafe { libc::kill(-self.pgid, libc::SIGKILL) };
    }
}

#[tokio::test]
async fn server_everything_as_a_remote_legacy_upstream() {
    let p = peers();
    let port = free_port();
    // Its output goes to a file, shown if it does not come up.
    let log_path =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("server-everything-{port}.log"));
    let log = std::fs::File::create(&log_path).unwrap();
    let child = Command::new("node")
        .arg(p.get("PEERS_SERVER_EVERYTHING"))
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .env(
            "NODE_OPTIONS",
            format!("--require {}", p.get("PEERS_LOOPBACK_PRELOAD")),
        )
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .expect("server-everything starts");
    let pid = child.id().expect("a pid");
    let server = Group {
        child,
        pgid: pid as i32,
    };
    assert!(
        eventually(Duration::from_secs(15), async || {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await,
        "server-everything did not listen on 127.0.0.1:{port}: {}",
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );

    let gw = Gateway::start(&format!(
        "[upstreams.everything]\nurl = \"http://127.0.0.1:{port}/mcp\"\ntimeout = \"20s\"\n"
    ))
    .await;
    let h = gw.health().await;
    assert_eq!(h["upstreams"][0]["state"], "ready", "{h}");
    assert_eq!(h["upstreams"][0]["detail"], "legacy", "{h}");
    let url = gw.url("/mcp");
    for sdk in [Sdk::TsV1, Sdk::Py, Sdk::TsModern] {
        echo_through(sdk, &url, "over two hops").await;
    }
    // Sampling from a remote legacy upstream, relayed on the POST stream it
    // arrived on, to the legacy session that caused it.
    for sdk in [Sdk::TsV1, Sdk::Py] {
        step(
            sdk,
            &url,
            &[],
            &[
                "--tool",
                "trigger-sampling-request",
                "--args",
                r#"{"prompt":"relay me","maxTokens":20}"#,
                "--sampling",
                "--sampling-text",
                "sampled over HTTP",
            ],
            &["sampling(1)"],
        )
        .await;
    }
    gw.shutdown().await;

    server.stop().await;
    assert!(
        !alive(pid),
        "server-everything (pid {pid}) is still running"
    );
    assert!(
        eventually(Duration::from_secs(5), async || group_members(pid as i32)
            .is_empty())
        .await,
        "processes of server-everything's group outlived the test: {:?}",
        group_members(pid as i32)
    );
}

/// Runs `conformance.sh URL ARGS…` within `limit`; its stdout, or a panic
/// with both outputs if it fails.
async fn conformance(url: &str, args: &[&str], name: &str, limit: u64) -> String {
    let p = peers();
    let out_dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let run = Command::new("bash")
        .arg(p.get("PEERS_CONFORMANCE_SH"))
        .arg(url)
        .args(args)
        .arg("--out")
        .arg(&out_dir)
        .env("SWITCHYARD_PEERS", p.get("SWITCHYARD_PEERS"))
        .env("CONFORMANCE_TIMEOUT", (limit - 5).to_string())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(limit), run)
        .await
        .expect("the conformance suite ends in time")
        .expect("conformance.sh starts");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "conformance.sh {url}: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    println!("{stdout}");
    stdout
}

#[tokio::test]
async fn conformance_suite_passes_against_a_legacy_stdio_upstream() {
    let gw = Gateway::start(&demo_config(&[("demo", "--era legacy")])).await;
    let stdout = conformance(&gw.url("/mcp"), &[], "conformance", 50).await;
    assert!(
        stdout.contains("32/32 scenarios passed, 0 failed"),
        "stdout:\n{stdout}"
    );
    gw.shutdown().await;
}

/// The 0.2 pre-release suite's 2026-07-28 requirements against the same
/// legacy fixture: every scenario reaches the modern conformance client
/// through the era bridge (`InputRequiredResult`s, stateless requests,
/// header validation, caching hints).
#[tokio::test]
async fn conformance_2026_07_28_requirements_pass_through_the_era_bridge() {
    let gw = Gateway::start(&demo_config(&[("demo", "--era legacy")])).await;
    let stdout = conformance(&gw.url("/mcp"), &["--next"], "conformance-next", 120).await;
    let passed = |scenario: &str| {
        stdout.lines().any(|l| {
            let mut words = l.split_whitespace();
            matches!(words.next(), Some("PASS" | "pass*")) && words.next() == Some(scenario)
        })
    };
    let required = stdout
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|s| s.starts_with("input-required-result-"))
        .map(str::to_owned)
        .chain(["server-stateless", "http-header-validation", "caching"].map(str::to_owned))
        .collect::<Vec<_>>();
    assert!(required.len() >= 17, "scenarios missing:\n{stdout}");
    for scenario in &required {
        assert!(passed(scenario), "{scenario} did not pass:\n{stdout}");
    }
    assert!(
        stdout.contains("37/37 scenarios passed, 0 failed"),
        "stdout:\n{stdout}"
    );
    gw.shutdown().await;
}

/// `switchyard stdio`: the TypeScript SDK's stdio client launches the
/// gateway itself, which serves its route (a legacy upstream) over
/// stdin/stdout: tools, resources, prompts, progress, sampling and
/// list_changed.
#[tokio::test]
async fn ts_sdk_v1_over_switchyard_stdio() {
    let dir = std::env::temp_dir().join(format!("switchyard-stdio-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("stdio.toml");
    std::fs::write(
        &file,
        crate::harness::expand(&demo_config(&[("demo", "--era legacy")])),
    )
    .unwrap();
    let path = file.to_string_lossy().into_owned();
    let extra = [
        "--transport",
        "stdio",
        "--cmd-arg",
        "stdio",
        "--cmd-arg",
        "--config",
        "--cmd-arg",
        &path,
    ];
    basics(Sdk::TsV1, BIN, &extra).await;
    progress(Sdk::TsV1, BIN, &extra).await;
    sampling(Sdk::TsV1, BIN, &extra).await;
    list_changed(Sdk::TsV1, BIN, &extra, "stdio_extra").await;
}
