//! Operations: live reconfiguration by diff, the admin API, `/metrics`,
//! and the CLI's `health`, `tools` and `stdio` commands.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;

const TOKEN: &str = "admin-token-for-tests-0123";

fn two_routes(with_b: bool) -> String {
    let mut toml = demo_config(&[("a", "")]);
    if with_b {
        toml.push_str(&demo_config(&[("b", "")]));
    }
    toml.push_str("[[routes]]\npath = \"/mcp\"\nupstreams = [\"a\"]\n");
    if with_b {
        toml.push_str("[[routes]]\npath = \"/b\"\nupstreams = [\"b\"]\n");
    }
    toml
}

async fn echo(url: &str, text: &str) -> Value {
    modern(
        url,
        "tools/call",
        json!({"name": "echo", "arguments": {"message": text}}),
    )
    .await
    .messages
    .last()
    .cloned()
    .unwrap_or(Value::Null)
}

#[tokio::test]
async fn config_edits_add_and_remove_an_upstream_while_another_serves() {
    let dir = tempdir();
    let file = dir.join("gw.toml");
    let gw = Gateway::start_file(&file, &two_routes(false)).await;
    let a_pid = gw.pid_of("a").await.unwrap();
    // A client calling `a` all along: not one error allowed.
    let url = gw.url("/mcp");
    let stop = tokio_util::sync::CancellationToken::new();
    let caller = {
        let (url, stop) = (url.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut ok, mut failed) = (0u32, Vec::new());
            while !stop.is_cancelled() {
                let r = echo(&url, "steady").await;
                if r["result"]["content"][0]["text"] == "Echo: steady" {
                    ok += 1;
                } else {
                    failed.push(r);
                }
            }
            (ok, failed)
        })
    };
    // Add b and its route.
    std::fs::write(&file, expand(&two_routes(true))).unwrap();
    assert!(
        eventually(Duration::from_secs(15), async || {
            echo(&gw.url("/b"), "new").await["result"]["content"][0]["text"] == "Echo: new"
        })
        .await,
        "{}",
        gw.health().await
    );
    let b_pid = gw.pid_of("b").await.unwrap();
    // An invalid edit changes nothing.
    std::fs::write(&file, "[upstreams.a]\ncommand = 3\n").unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        echo(&gw.url("/b"), "still").await["result"]["content"][0]["text"],
        "Echo: still"
    );
    assert_eq!(gw.pid_of("b").await, Some(b_pid));
    // Remove b: its route goes, its child stops.
    std::fs::write(&file, expand(&two_routes(false))).unwrap();
    assert!(
        eventually(Duration::from_secs(15), async || {
            upstream_report(&gw, "b").await.is_null() && !alive(b_pid)
        })
        .await,
        "{}",
        gw.health().await
    );
    let gone = reqwest::Client::new()
        .post(gw.url("/b"))
        .json(&modern_body(json!(1), "tools/list", json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
    stop.cancel();
    let (ok, failed) = caller.await.unwrap();
    assert!(failed.is_empty(), "calls to `a` failed: {failed:?}");
    assert!(ok > 10, "only {ok} calls");
    // `a` was never touched.
    assert_eq!(gw.pid_of("a").await, Some(a_pid));
    gw.shutdown().await;
}

#[tokio::test]
async fn a_changed_upstream_restarts_and_an_unchanged_one_keeps_running() {
    let dir = tempdir();
    let file = dir.join("gw.toml");
    let gw = Gateway::start_file(&file, &demo_config(&[("a", ""), ("b", "")])).await;
    let (a, b) = (gw.pid_of("a").await.unwrap(), gw.pid_of("b").await.unwrap());
    std::fs::write(
        &file,
        expand(&demo_config(&[("a", ""), ("b", "--page-size 3")])),
    )
    .unwrap();
    assert!(
        eventually(Duration::from_secs(15), async || {
            gw.pid_of("b").await.is_some_and(|p| p != b)
        })
        .await
    );
    assert_eq!(gw.pid_of("a").await, Some(a));
    assert_eq!(
        upstream_report(&gw, "b").await["restarts"],
        0,
        "a reconfiguration is not a crash"
    );
    gw.shutdown().await;
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "switchyard-ops-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

struct Admin {
    base: String,
    http: reqwest::Client,
}

impl Admin {
    fn of(gw: &Gateway) -> Admin {
        Admin {
            base: format!("http://{}", gw.admin.expect("admin configured")),
            http: reqwest::Client::new(),
        }
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Option<Value>) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, body).await
    }
}

fn admin_toml(extra: &str) -> String {
    format!(
        "{}{extra}[admin]\ntoken = \"{TOKEN}\"\n",
        demo_config(&[("demo", "")])
    )
}

#[tokio::test]
async fn the_admin_api_refuses_bad_tokens_and_disallowed_addresses() {
    let gw = Gateway::start(&admin_toml("")).await;
    let admin = Admin::of(&gw);
    let url = format!("{}/admin/upstreams", admin.base);
    let none = admin.http.get(&url).send().await.unwrap();
    assert_eq!(none.status(), 401);
    assert!(none.headers().contains_key("www-authenticate"));
    let wrong = admin
        .http
        .get(&url)
        .bearer_auth("not-the-token-at-all")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let (ok, list) = admin.get("/admin/upstreams").await;
    assert_eq!(ok, 200);
    assert_eq!(list[0]["name"], "demo");
    assert_eq!(list[0]["state"], "ready");
    assert!(
        list[0]["pid"].as_u64().is_some() && list[0]["rss_bytes"].as_u64().unwrap() > 0,
        "{list}"
    );
    gw.shutdown().await;

    // Loopback is not in this allow-list: 403 even with the right token.
    let gw = Gateway::start(&format!(
        "{}[admin]\ntoken = \"{TOKEN}\"\nallow = [\"10.0.0.0/8\"]\n",
        demo_config(&[("demo", "")])
    ))
    .await;
    let (status, _) = Admin::of(&gw).get("/admin/upstreams").await;
    assert_eq!(status, 403);
    gw.shutdown().await;
}

#[tokio::test]
async fn the_openapi_document_parses_and_lists_every_operation() {
    let gw = Gateway::start(&admin_toml("")).await;
    let (status, doc) = Admin::of(&gw).get("/admin/openapi.json").await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/admin/upstreams",
        "/admin/upstreams/{name}",
        "/admin/upstreams/{name}/restart",
        "/admin/upstreams/{name}/logs",
        "/admin/routes",
        "/admin/routes/chain",
        "/admin/tools",
        "/admin/reload",
        "/admin/plugins/{name}",
        "/admin/sessions",
        "/admin/sessions/{id}",
        "/admin/secrets",
        "/admin/secrets/{name}",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    // Every $ref resolves inside the document.
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let pointer = r.strip_prefix('#').unwrap();
        assert!(doc.pointer(pointer).is_some(), "dangling {r}");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn admin_operations_work_and_added_upstreams_survive_a_restart() {
    let dir = tempdir();
    let file = dir.join("gw.toml");
    let gw = Gateway::start_file(&file, &admin_toml("")).await;
    let admin = Admin::of(&gw);
    let url = gw.url("/mcp");

    // Add an upstream: it joins the route that serves every upstream.
    let (status, body) = admin
        .post(
            "/admin/upstreams",
            Some(json!({"name": "extra", "command": BIN, "args": ["demo", "--name", "extra"], "timeout": "10s"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["routes"], json!(["/mcp"]));
    assert_eq!(body["persisted"], true);
    assert!(reaches(&gw, "extra", "ready", Duration::from_secs(10)).await);
    let r = modern(
        &url,
        "tools/call",
        json!({"name": "extra__echo", "arguments": {"message": "added"}}),
    )
    .await;
    assert_eq!(
        r.last()["result"]["content"][0]["text"],
        "Echo: added",
        "{}",
        r.last()
    );
    // Adding it twice is a conflict; a bad table is a 400 naming the key.
    let (status, _) = admin
        .post(
            "/admin/upstreams",
            Some(json!({"name": "extra", "command": "x"})),
        )
        .await;
    assert_eq!(status, 409);
    // A body that is not an upstream table (here: a misspelt key) is a 400
    // saying why, whether it replaces an upstream or adds one.
    for (method, path, typo) in [
        (
            reqwest::Method::PUT,
            "/admin/upstreams/extra",
            json!({"comand": "x"}),
        ),
        (
            reqwest::Method::POST,
            "/admin/upstreams",
            json!({"name": "typo", "command": "x", "comand": "y"}),
        ),
    ] {
        let (status, body) = admin.send(method.clone(), path, Some(typo)).await;
        assert_eq!(status, 400, "{method} {path}");
        assert!(body["error"].as_str().unwrap().contains("comand"), "{body}");
    }
    let (status, body) = admin
        .post(
            "/admin/upstreams",
            Some(json!({"name": "bad", "url": "ftp://x"})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("upstreams.bad.url"),
        "{body}"
    );

    // Stop, start, restart.
    let pid = gw.pid_of("extra").await.unwrap();
    let (status, _) = admin.post("/admin/upstreams/extra/stop", None).await;
    assert_eq!(status, 202);
    assert!(reaches(&gw, "extra", "stopped", Duration::from_secs(10)).await);
    assert!(eventually(Duration::from_secs(5), async || !alive(pid)).await);
    let r = modern(
        &url,
        "tools/call",
        json!({"name": "extra__echo", "arguments": {"message": "no"}}),
    )
    .await;
    assert!(
        r.last()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("stopped"),
        "{}",
        r.last()
    );
    let (status, _) = admin.post("/admin/upstreams/extra/start", None).await;
    assert_eq!(status, 202);
    assert!(reaches(&gw, "extra", "ready", Duration::from_secs(10)).await);
    let pid = gw.pid_of("extra").await.unwrap();
    let (status, _) = admin.post("/admin/upstreams/extra/restart", None).await;
    assert_eq!(status, 202);
    assert!(
        eventually(Duration::from_secs(10), async || gw
            .pid_of("extra")
            .await
            .is_some_and(|p| p != pid))
        .await
    );
    let (status, _) = admin.post("/admin/upstreams/nope/restart", None).await;
    assert_eq!(status, 404);
    // Replace it (PUT): a changed spec restarts it, and it serves the new one.
    let pid = gw.pid_of("extra").await.unwrap();
    let (status, body) = admin
        .send(
            reqwest::Method::PUT,
            "/admin/upstreams/extra",
            Some(json!({"command": BIN, "args": ["demo", "--name", "extra-v2"], "timeout": "10s"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["applied"]["upstreams_changed"], json!(["extra"]));
    assert!(
        eventually(Duration::from_secs(10), async || {
            gw.pid_of("extra").await.is_some_and(|p| p != pid)
        })
        .await
    );
    let r = modern(
        &url,
        "tools/call",
        json!({"name": "extra__whoami", "arguments": {}}),
    )
    .await;
    assert!(r.last().to_string().contains("extra-v2"), "{}", r.last());

    // Routes with their chains; the aggregated tools.
    let (_, routes) = admin.get("/admin/routes").await;
    assert_eq!(routes[0]["path"], "/mcp");
    assert_eq!(routes[0]["upstreams"], json!(["demo", "extra"]));
    let (_, tools) = admin.get("/admin/tools").await;
    let names = tool_names(&tools["/mcp"]);
    assert!(
        names.contains(&"demo__echo".to_owned()) && names.contains(&"extra__echo".to_owned()),
        "{names:?}"
    );

    // The child's stderr, followed as SSE.
    let logs = admin
        .http
        .get(format!("{}/admin/upstreams/extra/logs", admin.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(logs.status(), 200);
    let r = modern(
        &url,
        "tools/call",
        json!({"name": "extra__log_to_stderr", "arguments": {"text": "marker-42"}}),
    )
    .await;
    assert!(r.last()["result"].is_object(), "{}", r.last());
    let mut stream = logs.bytes_stream();
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        use futures_util::StreamExt;
        let mut text = String::new();
        while let Some(Ok(chunk)) = stream.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if text.contains("marker-42") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(seen, Ok(true));

    // A restart of the gateway keeps the added upstream (the state file).
    gw.shutdown().await;
    let state = std::fs::read_to_string(dir.join("gw.admin.toml")).unwrap();
    assert!(state.contains("[upstreams.extra]"), "{state}");
    let gw = Gateway::start_file(&file, &admin_toml("")).await;
    let admin = Admin::of(&gw);
    assert_eq!(upstream_report(&gw, "extra").await["state"], "ready");
    // Remove it: gone now and after the next restart.
    let (status, body) = admin
        .send(reqwest::Method::DELETE, "/admin/upstreams/extra", None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["applied"]["upstreams_removed"], json!(["extra"]));
    assert!(
        eventually(Duration::from_secs(10), async || upstream_report(
            &gw, "extra"
        )
        .await
        .is_null())
        .await
    );
    gw.shutdown().await;
    let gw = Gateway::start_file(&file, &admin_toml("")).await;
    assert!(upstream_report(&gw, "extra").await.is_null());
    gw.shutdown().await;
}

#[tokio::test]
async fn the_admin_api_swaps_a_routes_chain_and_reloads() {
    let plugins = "[plugins.deny-echo]\ncomponent = \"builtin:filter\"\nconfig = { tools = { deny = [\"echo\"] } }\n";
    let dir = tempdir();
    let file = dir.join("gw.toml");
    let gw = Gateway::start_file(&file, &admin_toml(plugins)).await;
    let admin = Admin::of(&gw);
    let url = gw.url("/mcp");
    assert_eq!(
        echo(&url, "open").await["result"]["content"][0]["text"],
        "Echo: open"
    );
    let (status, body) = admin
        .send(
            reqwest::Method::PUT,
            "/admin/routes/chain",
            Some(json!({"route": "/mcp", "plugins": ["deny-echo"]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(echo(&url, "shut").await["error"].is_object());
    let (_, routes) = admin.get("/admin/routes").await;
    assert_eq!(routes[0]["plugins"], json!(["deny-echo"]));
    let (status, _) = admin
        .send(
            reqwest::Method::PUT,
            "/admin/routes/chain",
            Some(json!({"route": "/mcp", "plugins": ["nope"]})),
        )
        .await;
    assert_eq!(status, 400);
    // The swap is kept: a reload of the file, a change of the file and a
    // restart all keep it.
    let (status, body) = admin.post("/admin/reload", None).await;
    assert_eq!(status, 200, "{body}");
    assert!(echo(&url, "still shut").await["error"].is_object());
    let state = std::fs::read_to_string(dir.join("gw.admin.toml")).unwrap();
    assert!(state.contains("deny-echo"), "{state}");
    gw.shutdown().await;
    let gw = Gateway::start_file(&file, &admin_toml(plugins)).await;
    let admin = Admin::of(&gw);
    let url = gw.url("/mcp");
    assert!(echo(&url, "shut after restart").await["error"].is_object());
    // Forgetting the swap brings back the file's chain (none).
    let (status, body) = admin
        .send(
            reqwest::Method::DELETE,
            "/admin/routes/chain?route=/mcp",
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        echo(&url, "open again").await["result"]["content"][0]["text"],
        "Echo: open again"
    );
    let (status, _) = admin
        .send(
            reqwest::Method::DELETE,
            "/admin/routes/chain?route=/nope",
            None,
        )
        .await;
    assert_eq!(status, 404);
    gw.shutdown().await;
}

#[tokio::test]
async fn a_plugin_instance_added_through_the_api_loads_first_and_persists() {
    let dir = tempdir();
    let file = dir.join("gw.toml");
    let gw = Gateway::start_file(&file, &admin_toml("")).await;
    let admin = Admin::of(&gw);
    let url = gw.url("/mcp");
    // A component that does not load is refused with its reason; nothing changes.
    let (status, body) = admin
        .send(
            reqwest::Method::PUT,
            "/admin/plugins/broken",
            Some(json!({"component": "builtin:no-such-plugin"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("no-such-plugin"),
        "{body}"
    );
    let (status, body) = admin
        .send(
            reqwest::Method::PUT,
            "/admin/plugins/deny-echo",
            Some(json!({"component": "builtin:filter", "config": {"tools": {"deny": ["echo"]}}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = admin
        .send(
            reqwest::Method::PUT,
            "/admin/routes/chain",
            Some(json!({"route": "/mcp", "plugins": ["deny-echo"]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(echo(&url, "shut").await["error"].is_object());
    gw.shutdown().await;
    // Both the instance and the chain come back after a restart.
    let gw = Gateway::start_file(&file, &admin_toml("")).await;
    assert!(echo(&gw.url("/mcp"), "shut").await["error"].is_object());
    gw.shutdown().await;
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_and_move_with_traffic() {
    let gw = Gateway::start(&demo_config(&[("demo", "")])).await;
    let url = gw.url("/mcp");
    let scrape = async || {
        let text = reqwest::get(gw.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        prometheus_parse::Scrape::parse(lines).expect("Prometheus text format")
    };
    let route = "/mcp";
    let calls = |s: &prometheus_parse::Scrape| -> f64 {
        s.samples
            .iter()
            .filter(|x| {
                x.metric == "switchyard_requests_total"
                    && x.labels.get("route") == Some(route)
                    && x.labels.get("method") == Some("tools/call")
                    && x.labels.get("outcome") == Some("ok")
                    && x.labels.get("upstream") == Some("demo")
            })
            .map(|x| match x.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    };
    let before = calls(&scrape().await);
    for i in 0..3 {
        echo(&url, &format!("m{i}")).await;
    }
    let after = scrape().await;
    // Other tests in this process share the recorder, on other routes/ports
    // they may not: the route path is the same, so compare a lower bound.
    assert!(
        calls(&after) >= before + 3.0,
        "{} -> {}",
        before,
        calls(&after)
    );
    let up = after.samples.iter().find(|x| {
        x.metric == "switchyard_upstream_up"
            && x.labels.get("upstream") == Some("demo")
            && x.labels.get("state") == Some("ready")
    });
    assert!(up.is_some(), "no upstream state gauge");
    assert!(
        after
            .samples
            .iter()
            .any(|x| x.metric.starts_with("switchyard_request_duration_seconds")),
        "no latency histogram"
    );
    gw.shutdown().await;
}

/// Runs `switchyard ARGS…`; its output.
async fn cli(args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(BIN)
        .args(args)
        .output()
        .await
        .unwrap()
}

/// [`cli`], which must succeed; its stdout.
async fn cli_ok(args: &[&str]) -> String {
    let out = cli(args).await;
    assert!(
        out.status.success(),
        "switchyard {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn cli_health_and_tools_ask_a_running_gateway() {
    let gw = Gateway::start(&demo_config(&[("demo", "")])).await;
    let report: Value =
        serde_json::from_str(&cli_ok(&["health", "--url", &gw.url("")]).await).unwrap();
    assert_eq!(report["upstreams"][0]["state"], "ready");
    let table = cli_ok(&["tools", "--url", &gw.url("/mcp")]).await;
    assert!(table.lines().any(|l| l.starts_with("echo ")), "{table}");
    gw.shutdown().await;
    let out = cli(&["health", "--url", &gw_gone_url()]).await;
    assert_eq!(out.status.code(), Some(69));
}

/// A URL nothing listens on.
fn gw_gone_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}

/// An OTLP/HTTP receiver on `127.0.0.1:0`: keeps every JSON body posted
/// to `/v1/traces`.
async fn otlp_receiver() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
) {
    use axum::routing::post;
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
    let sink = std::sync::Arc::clone(&got);
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |body: axum::body::Bytes| {
            let sink = std::sync::Arc::clone(&sink);
            async move {
                if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                    sink.lock().unwrap().push(v);
                }
                axum::Json(json!({}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, got)
}

#[tokio::test]
async fn traces_reach_an_otlp_receiver_nested_as_documented() {
    use tokio::io::AsyncBufReadExt;
    let (otlp, received) = otlp_receiver().await;
    let dir = tempdir();
    let file = dir.join("traced.toml");
    std::fs::write(
        &file,
        expand(&format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n\n{}\
             [plugins.guard]\ncomponent = \"builtin:filter\"\nconfig = {{ tools = {{ deny = [\"never-*\"] }} }}\n\n\
             [[routes]]\npath = \"/mcp\"\nplugins = [\"guard\"]\n\n\
             [telemetry]\notlp_endpoint = \"http://{otlp}\"\nservice_name = \"switchyard-under-test\"\n",
            demo_config(&[("demo", "")])
        )),
    )
    .unwrap();
    let mut child = tokio::process::Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&file)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.split("local=").nth(1) {
                return rest.split_whitespace().next().unwrap().to_owned();
            }
        }
        panic!("the gateway exited before listening");
    })
    .await
    .expect("listening");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    // The client's trace: the request span must join it.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let mut body = modern_body(
        json!(1),
        "tools/call",
        json!({"name": "echo", "arguments": {"message": "traced"}}),
    );
    body["params"]["_meta"]["traceparent"] = json!(format!("00-{trace_id}-{client_span}-01"));
    let r = send_modern(&format!("http://{addr}/mcp"), &body).await;
    assert_eq!(
        r.last()["result"]["content"][0]["text"],
        "Echo: traced",
        "{}",
        r.last()
    );

    // SIGTERM: the exporter flushes at exit.
    // SAFETY: kill(2) on the child we spawned.
    unsafe {
        libc::kill(child.id().unwrap() as i32, libc::SIGTERM);
    }
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("exits")
        .unwrap();
    assert!(status.success());

    let spans: Vec<Value> = {
        let got = received.lock().unwrap();
        let service = got
            .iter()
            .flat_map(|b| b["resourceSpans"].as_array().cloned().unwrap_or_default())
            .find_map(|rs| {
                rs["resource"]["attributes"]
                    .as_array()?
                    .iter()
                    .find(|a| a["key"] == "service.name")
                    .map(|a| a["value"]["stringValue"].clone())
            });
        assert_eq!(service, Some(json!("switchyard-under-test")), "{got:?}");
        got.iter()
            .flat_map(|b| b["resourceSpans"].as_array().cloned().unwrap_or_default())
            .flat_map(|rs| rs["scopeSpans"].as_array().cloned().unwrap_or_default())
            .flat_map(|ss| ss["spans"].as_array().cloned().unwrap_or_default())
            .collect()
    };
    let named = |name: &str| -> Value {
        spans
            .iter()
            .find(|s| s["name"] == name && s["traceId"] == trace_id)
            .cloned()
            .unwrap_or_else(|| panic!("no span {name} in trace {trace_id}: {spans:#?}"))
    };
    let request = named("mcp tools/call");
    assert_eq!(request["parentSpanId"], client_span, "{request}");
    let upstream = named("upstream tools/call");
    assert_eq!(upstream["parentSpanId"], request["spanId"], "{upstream}");
    let plugin = named("plugin guard on-request");
    assert_eq!(plugin["parentSpanId"], request["spanId"], "{plugin}");
}
