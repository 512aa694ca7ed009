//! The plugin platform in a real gateway: components built from
//! `tests/plugins/` (the configurable `probe`, the `hostile` one) run on real
//! routes in front of the demo server.
//!
//! - the order rule: requests in configured order, responses in reverse
//!   over the plugins reached, a respond or reject ends the request phase;
//! - every decision variant (continue with params/principal/attributes,
//!   respond, reject with status and headers; replace and reject on the
//!   response; drop and replace on notifications);
//! - every context field;
//! - kv atomicity under concurrent requests (increment and CAS);
//! - a plugin asking for `tools/call` only is never called for anything else;
//! - hostile plugins fail only their own request, per their failure mode.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Gateway, LEGACY, Legacy, MODERN, demo_config, expand, modern};
use crate::notifications::{next_json, open_get};

/// The demo upstream plus `extra` TOML (plugins and routes).
fn config(extra: &str) -> String {
    format!("{}\n{extra}", demo_config(&[("demo", "")]))
}

fn probe(name: &str, config: Value) -> String {
    format!(
        "[plugins.{name}]\ncomponent = \"{{plugins}}/probe.wasm\"\nconfig = {}\n\n",
        toml_inline(&config)
    )
}

/// A JSON object as a TOML inline table (strings, numbers, bools, arrays,
/// nested tables).
fn toml_inline(v: &Value) -> String {
    match v {
        Value::Object(m) => format!(
            "{{ {} }}",
            m.iter()
                .map(|(k, v)| format!("{} = {}", serde_json::to_string(k).unwrap(), toml_inline(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(toml_inline).collect::<Vec<_>>().join(", ")
        ),
        other => other.to_string(),
    }
}

fn route(path: &str, plugins: &[&str]) -> String {
    format!(
        "[[routes]]\npath = \"{path}\"\nupstreams = [\"demo\"]\nplugins = {}\n\n",
        serde_json::to_string(plugins).unwrap()
    )
}

async fn echo(client: &Legacy, message: &str) -> Value {
    client
        .request(
            "tools/call",
            json!({"name": "echo", "arguments": {"message": message}}),
        )
        .await
        .last()
        .clone()
}

#[tokio::test]
async fn requests_pass_in_order_and_responses_in_reverse() {
    let trail = |tag: &str| json!({"tag": tag, "response": "trail"});
    let toml = config(&format!(
        "{}{}{}{}{}{}{}",
        probe("a", trail("a")),
        probe("b", trail("b")),
        probe(
            "responder",
            json!({"tag": "r", "request": "respond", "response": "trail",
                   "respond": {"content": [{"type": "text", "text": "from the plugin"}]}})
        ),
        probe(
            "rejecter",
            // tools/call only: `initialize` passes the request phase too.
            json!({"tag": "x", "request": "reject", "response": "trail", "methods": ["tools/call"],
                   "reject": {"code": -32001, "message": "no", "status": 403}})
        ),
        route("/order", &["a", "b"]),
        route("/respond", &["a", "responder", "b"]),
        route("/reject", &["a", "rejecter", "b"]),
    ));
    let gw = Gateway::start(&toml).await;

    // a then b on the way in (b sees a's trail attribute); b then a on the
    // way out, each with what its own request hook left in scratch.
    let c = Legacy::connect(&gw.url("/order")).await;
    let r = echo(&c, "hi").await;
    assert_eq!(r["result"]["content"][0]["text"], "Echo: hi", "{r}");
    assert_eq!(
        r["result"]["trail"],
        json!(["b(b@tools/call)", "a(a@tools/call)"])
    );

    // A respond ends the request phase: b and the upstream never see it,
    // the responder does not see its own answer, a does.
    let c = Legacy::connect(&gw.url("/respond")).await;
    let r = echo(&c, "hi").await;
    assert_eq!(r["result"]["content"][0]["text"], "from the plugin", "{r}");
    assert_eq!(r["result"]["trail"], json!(["a(a@tools/call)"]));

    // A reject too; the client gets the plugin's error and status.
    let c = Legacy::connect(&gw.url("/reject")).await;
    let reply = c
        .request(
            "tools/call",
            json!({"name": "echo", "arguments": {"message": "hi"}}),
        )
        .await;
    assert_eq!(reply.status, 403);
    assert_eq!(reply.last()["error"]["code"], -32001);
    assert_eq!(reply.last()["error"]["message"], "no");
    gw.shutdown().await;
}

#[tokio::test]
async fn every_decision_variant_reaches_the_client() {
    let toml = config(
        &(format!(
            "{}{}{}{}{}{}{}{}{}{}{}{}",
            probe(
                "auth",
                json!({"tag": "auth", "request": "reject", "only_target": "add",
                   "reject": {"code": -32001, "message": "who are you?", "status": 401,
                              "headers": {"www-authenticate": "Bearer resource_metadata=\"https://x/.well-known\""}}})
            ),
            probe(
                "limit",
                json!({"tag": "limit", "request": "reject",
                   "reject": {"code": -32002, "message": "slow down", "status": 429,
                              "headers": {"retry-after": "7"}}})
            ),
            probe("rewrite", json!({"tag": "rw", "rewrite": "rewritten"})),
            probe(
                "namer",
                json!({"tag": "namer", "principal": "alice", "attributes": {"role": "admin"}})
            ),
            probe(
                "reporter",
                json!({"tag": "rep", "request": "context", "headers": ["x-test"]})
            ),
            probe(
                "replacer",
                json!({"tag": "rep2", "response": "replace",
                   "replace": {"content": [{"type": "text", "text": "replaced"}]}})
            ),
            probe(
                "late-reject",
                json!({"tag": "late", "response": "reject",
                   "reject": {"code": -32003, "message": "too big", "status": 200}})
            ),
            route("/auth", &["auth"]),
            route("/limit", &["limit"]),
            route("/rewrite", &["rewrite"]),
            route("/named", &["namer", "reporter"]),
            route("/replace", &["replacer"]),
        ) + &route("/late", &["late-reject"])),
    );
    let gw = Gateway::start(&toml).await;

    // reject: status, headers and the JSON-RPC error; other tools pass.
    let c = Legacy::connect(&gw.url("/auth")).await;
    let r = c
        .request(
            "tools/call",
            json!({"name": "add", "arguments": {"a": 1, "b": 2}}),
        )
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.headers["www-authenticate"],
        "Bearer resource_metadata=\"https://x/.well-known\""
    );
    assert_eq!(r.last()["error"]["message"], "who are you?");
    assert_eq!(
        echo(&c, "fine").await["result"]["content"][0]["text"],
        "Echo: fine"
    );

    // A modern client gets the same status and headers.
    let r = modern(
        &gw.url("/limit"),
        "tools/call",
        json!({"name": "echo", "arguments": {"message": "x"}}),
    )
    .await;
    assert_eq!(r.status, 429);
    assert_eq!(r.headers["retry-after"], "7");
    assert_eq!(r.last()["error"]["code"], -32002);

    // continue with replaced params: the upstream sees the new arguments.
    let c = Legacy::connect(&gw.url("/rewrite")).await;
    assert_eq!(
        echo(&c, "original").await["result"]["content"][0]["text"],
        "Echo: rewritten"
    );

    // continue with principal and attributes: the next plugin sees them.
    let c = Legacy::connect(&gw.url("/named")).await;
    let ctx = echo(&c, "x").await["result"]["context"].clone();
    assert_eq!(ctx["principal"], "alice");
    assert_eq!(
        ctx["attributes"],
        json!([["trail", "namer"], ["role", "admin"]])
    );

    // response replace and response reject.
    let c = Legacy::connect(&gw.url("/replace")).await;
    assert_eq!(
        echo(&c, "x").await["result"]["content"][0]["text"],
        "replaced"
    );
    let c = Legacy::connect(&gw.url("/late")).await;
    let r = echo(&c, "x").await;
    assert_eq!(r["error"]["code"], -32003, "{r}");
    assert_eq!(r["error"]["message"], "too big");
    gw.shutdown().await;
}

#[tokio::test]
async fn plugins_see_every_context_field() {
    let toml = config(&format!(
        "{}{}{}",
        probe("namer", json!({"tag": "n", "principal": "bob"})),
        probe(
            "reporter",
            json!({"tag": "r", "request": "context", "headers": ["x-test", "authorization"]})
        ),
        route("/ctx", &["namer", "reporter"]),
    ));
    let gw = Gateway::start(&toml).await;
    let url = gw.url("/ctx");

    let c = Legacy::connect(&url).await;
    let reply = read_with_headers(
        c.builder()
            .header("x-test", "one")
            .header("x-other", "hidden"),
        json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
               "params": {"name": "echo", "arguments": {"message": "x"}}}),
    )
    .await;
    let ctx = &reply["result"]["context"];
    assert_eq!(ctx["route"], "/ctx");
    assert_eq!(ctx["upstream"], "demo");
    assert_eq!(ctx["method"], "tools/call");
    assert_eq!(ctx["target"], "echo");
    assert_eq!(ctx["principal"], "bob");
    assert_eq!(ctx["attributes"], json!([["trail", "n"]]));
    // Only the headers the plugin asked for.
    assert_eq!(ctx["headers"], json!([["x-test", "one"]]));
    assert!(
        ctx["client_address"]
            .as_str()
            .is_some_and(|a| a.starts_with("127.0.0.1:")),
        "{ctx}"
    );
    assert_eq!(ctx["era"], "Legacy");
    assert_eq!(ctx["protocol_version"], LEGACY);
    let first_id = ctx["request_id"].as_str().unwrap().to_owned();
    assert!(!first_id.is_empty());

    // A modern request: era, version, a different request id; resources
    // carry their URI as the target.
    let r = modern(&url, "resources/read", json!({"uri": "demo://readme"})).await;
    let ctx = &r.last()["result"]["context"];
    assert_eq!(ctx["era"], "Modern");
    assert_eq!(ctx["protocol_version"], MODERN);
    assert_eq!(ctx["method"], "resources/read");
    assert_eq!(ctx["target"], "demo://readme");
    assert_ne!(ctx["request_id"], first_id.as_str());
    gw.shutdown().await;
}

async fn read_with_headers(builder: reqwest::RequestBuilder, body: Value) -> Value {
    let r = crate::harness::read_reply(builder.json(&body).send().await.unwrap()).await;
    r.last().clone()
}

#[tokio::test]
async fn kv_counters_are_atomic_under_concurrent_requests() {
    const CALLS: usize = 200;
    let toml = config(&format!(
        "{}{}{}{}",
        probe(
            "inc",
            json!({"request": "count", "stats_target": "stats", "methods": ["tools/call"]})
        ),
        probe(
            "cas",
            json!({"request": "count-cas", "stats_target": "stats", "methods": ["tools/call"]})
        ),
        route("/inc", &["inc"]),
        route("/cas", &["cas"]),
    ));
    let gw = Gateway::start(&toml).await;
    for path in ["/inc", "/cas"] {
        let c = std::sync::Arc::new(Legacy::connect(&gw.url(path)).await);
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..16 {
            let c = std::sync::Arc::clone(&c);
            tasks.spawn(async move {
                for j in 0..CALLS / 16 + usize::from(i < CALLS % 16) {
                    let r = echo(&c, &format!("{i}-{j}")).await;
                    assert!(r.get("error").is_none(), "{r}");
                }
            });
        }
        while let Some(t) = tasks.join_next().await {
            t.unwrap();
        }
        let r = c
            .result("tools/call", json!({"name": "stats", "arguments": {}}))
            .await;
        assert_eq!(r["seen"]["tools/call"], CALLS, "{path}: {r}");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn a_plugin_is_called_only_for_the_methods_it_asked_for() {
    let toml = config(&format!(
        "{}{}",
        probe(
            "calls-only",
            json!({"request": "count", "stats_target": "stats", "methods": ["tools/call"],
                   "hooks": ["request", "response", "notification"]})
        ),
        route("/filtered", &["calls-only"]),
    ));
    let gw = Gateway::start(&toml).await;
    let c = Legacy::connect(&gw.url("/filtered")).await;
    c.result("tools/list", json!({})).await;
    c.result("prompts/list", json!({})).await;
    c.result("resources/list", json!({})).await;
    c.result("resources/read", json!({"uri": "demo://readme"}))
        .await;
    c.result("ping", json!({})).await;
    for _ in 0..3 {
        echo(&c, "x").await;
    }
    let r = c
        .result("tools/call", json!({"name": "stats", "arguments": {}}))
        .await;
    assert_eq!(
        r["seen"],
        json!({"tools/call": 3, "tools/list": 0, "prompts/list": 0,
               "resources/list": 0, "resources/read": 0, "ping": 0})
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn notifications_pass_the_chain_and_can_be_dropped_or_rewritten() {
    let toml = config(&format!(
        "{}{}{}{}",
        probe(
            "tagger",
            json!({"tag": "t", "hooks": ["notification"], "notification": "tag",
                   "methods": ["notifications/tools/*"]})
        ),
        probe(
            "dropper",
            json!({"hooks": ["notification"], "notification": "drop",
                   "methods": ["notifications/prompts/list_changed"]})
        ),
        route("/notes", &["tagger", "dropper"]),
        "",
    ));
    let gw = Gateway::start(&toml).await;
    let url = gw.url("/notes");
    let listener = Legacy::connect(&url).await;
    let mut stream = open_get(&listener, None).await;
    let actor = Legacy::connect(&url).await;
    // Dropped: prompts; then tagged: tools. The first event the listener
    // sees must be the tagged tools one.
    actor
        .call_text("notify_list_changed", json!({"list": "prompts"}))
        .await;
    actor
        .call_text("notify_list_changed", json!({"list": "tools"}))
        .await;
    let (_, n) = next_json(&mut stream).await;
    assert_eq!(n["method"], "notifications/tools/list_changed", "{n}");
    assert_eq!(n["params"]["taggedBy"], "t");
    gw.shutdown().await;
}

/// Routes with one hostile plugin each (triggered by `add` only), an open
/// one and a clean route.
fn hostile_config() -> String {
    let hostile = |name: &str, mode: &str, extra: &str| {
        format!(
            "[plugins.{name}]\ncomponent = \"{{plugins}}/hostile.wasm\"\nconfig = {{ mode = \"{mode}\" }}\n{extra}\n"
        )
    };
    let mut toml = config("");
    toml += &hostile("looper", "loop", "timeout_ms = 50");
    toml += &hostile("hog", "hog", "memory_mb = 16");
    toml += &hostile("trapper", "trap", "");
    toml += &hostile("garbage", "garbage", "");
    toml += &hostile("nonobject", "non-object", "");
    toml += &hostile("badstatus", "bad-status", "");
    toml += &hostile("badheader", "bad-header", "");
    toml += &hostile("late-trap", "response-trap", "");
    toml += &hostile("open-trap", "trap", "failure = \"open\"");
    toml += &hostile(
        "fresh-loop",
        "loop",
        "timeout_ms = 30\nisolation = \"fresh\"",
    );
    for name in [
        "looper",
        "hog",
        "trapper",
        "garbage",
        "nonobject",
        "badstatus",
        "badheader",
        "late-trap",
        "open-trap",
        "fresh-loop",
    ] {
        toml += &route(&format!("/{name}"), &[name]);
    }
    toml += &route("/clean", &[]);
    toml
}

#[tokio::test]
async fn a_hostile_plugin_fails_only_its_own_request() {
    let gw = Gateway::start(&hostile_config()).await;
    let cases = [
        ("looper", "did not finish within 50ms"),
        ("hog", "exceeded its memory cap of 16 MiB"),
        ("trapper", "trapped"),
        ("garbage", "respond is not JSON"),
        ("nonobject", "a result must be a JSON object"),
        ("badstatus", "HTTP status 999"),
        ("badheader", "is not a valid header"),
        ("late-trap", "trapped"),
        ("fresh-loop", "did not finish within 30ms"),
    ];
    let clean = std::sync::Arc::new(Legacy::connect(&gw.url("/clean")).await);
    // Traffic on a clean route runs all along and must see no error.
    let background = {
        let clean = std::sync::Arc::clone(&clean);
        tokio::spawn(async move {
            let mut n = 0;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
            while tokio::time::Instant::now() < deadline {
                let r = echo(&clean, "bg").await;
                assert_eq!(r["result"]["content"][0]["text"], "Echo: bg", "{r}");
                n += 1;
            }
            n
        })
    };
    for (name, reason) in cases {
        let c = Legacy::connect(&gw.url(&format!("/{name}"))).await;
        for round in 0..2 {
            // The hostile request fails with the plugin named…
            let r = c
                .request(
                    "tools/call",
                    json!({"name": "add", "arguments": {"a": 1, "b": 2}}),
                )
                .await;
            let err = &r.last()["error"];
            assert_eq!(err["code"], -32603, "{name}: {}", r.last());
            let msg = err["message"].as_str().unwrap();
            assert!(
                msg.contains(&format!("plugin `{name}` failed")) && msg.contains(reason),
                "{name} round {round}: {msg}"
            );
            // …while another request on the same route passes.
            let ok = echo(&c, "ok").await;
            assert_eq!(
                ok["result"]["content"][0]["text"], "Echo: ok",
                "{name}: {ok}"
            );
        }
    }
    // failure = open: the plugin is skipped and the call succeeds.
    let c = Legacy::connect(&gw.url("/open-trap")).await;
    let r = c
        .result(
            "tools/call",
            json!({"name": "add", "arguments": {"a": 1, "b": 2}}),
        )
        .await;
    assert_eq!(r["content"][0]["text"], "3", "{r}");
    let served = background.await.unwrap();
    assert!(served > 0);
    gw.shutdown().await;
}

#[tokio::test]
async fn a_plugin_that_refuses_its_config_refuses_the_load() {
    let dir = tempdir();
    let file = dir.join("bad.toml");
    std::fs::write(
        &file,
        expand(&config(
            "[plugins.picky]\ncomponent = \"{plugins}/hostile.wasm\"\nconfig = { mode = \"configure-fails\" }\n",
        )),
    )
    .unwrap();
    let out = std::process::Command::new(crate::harness::BIN)
        .args(["validate", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains("plugin `picky`")
            && stderr.contains("hostile: this configuration is refused on purpose"),
        "{stderr}"
    );

    // Not a component at all, and a file that is missing.
    let junk = dir.join("junk.wasm");
    std::fs::write(&junk, b"\0asm not really").unwrap();
    for (component, reason) in [
        (
            junk.display().to_string(),
            "not a valid WebAssembly component",
        ),
        (
            dir.join("missing.wasm").display().to_string(),
            "cannot read the component",
        ),
        (
            "builtin:nope".to_owned(),
            "no built-in plugin has this name",
        ),
    ] {
        std::fs::write(
            &file,
            expand(&config(&format!(
                "[plugins.p]\ncomponent = \"{component}\"\n"
            ))),
        )
        .unwrap();
        let out = std::process::Command::new(crate::harness::BIN)
            .args(["validate", "--config"])
            .arg(&file)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{stderr}");
        assert!(stderr.contains(reason), "{component}: {stderr}");
    }
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "switchyard-e2e-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

/// Writes `toml` over `path` atomically (as editors and deploy tools do).
fn replace_file(path: &std::path::Path, toml: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, expand(toml)).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test]
async fn a_plugin_swaps_under_load_with_no_failed_request() {
    let version = |v: &str, component: &str| {
        config(&format!(
            "[plugins.p]\ncomponent = \"{component}\"\nconfig = {}\n\n{}",
            toml_inline(
                &json!({"tag": v, "request": "count", "stats_target": "stats",
                "response": "replace", "replace": {"content": [{"type": "text", "text": v}]}})
            ),
            route("/swap", &["p"]),
        ))
    };
    let dir = tempdir();
    let file = dir.join("swap.toml");
    let gw = Gateway::start_file(&file, &version("v1", "{plugins}/probe.wasm")).await;
    let url = gw.url("/swap");

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let stop = std::sync::Arc::clone(&stop);
        let url = url.clone();
        load.spawn(async move {
            let c = Legacy::connect(&url).await;
            let (mut calls, mut saw_v2) = (0u64, false);
            let mut seen = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = echo(&c, "x").await;
                let text = r["result"]["content"][0]["text"]
                    .as_str()
                    .map(str::to_owned);
                let text = text.unwrap_or_else(|| panic!("a request failed during the swap: {r}"));
                // One task's requests run one after another: once it has
                // seen the new version it never sees the old one again.
                match text.as_str() {
                    "v2" => saw_v2 = true,
                    "v1" => assert!(!saw_v2, "v1 after v2"),
                    other => panic!("unexpected answer {other}"),
                }
                if seen.last() != Some(&text) {
                    seen.push(text);
                }
                calls += 1;
            }
            (calls, seen)
        });
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    replace_file(&file, &version("v2", "{plugins}/probe.wasm"));
    let probe_client = Legacy::connect(&url).await;
    let mut own_calls = 0u64;
    let swapped = crate::harness::eventually(Duration::from_secs(10), async || {
        own_calls += 1;
        echo(&probe_client, "x").await["result"]["content"][0]["text"] == "v2"
    })
    .await;
    assert!(swapped, "the new version never served");

    // An invalid new version (not a component) is refused; v2 keeps serving.
    let junk = dir.join("junk.wasm");
    std::fs::write(&junk, b"\0asm garbage").unwrap();
    replace_file(&file, &version("v3", &junk.display().to_string()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        echo(&probe_client, "x").await["result"]["content"][0]["text"],
        "v2"
    );
    own_calls += 1;

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    while let Some(done) = load.join_next().await {
        let (calls, seen) = done.unwrap();
        assert!(seen.contains(&"v2".to_owned()), "{seen:?}");
        total += calls;
    }
    // The kv counter saw every call across both versions: state survived.
    let r = probe_client
        .result("tools/call", json!({"name": "stats", "arguments": {}}))
        .await;
    assert_eq!(r["seen"]["tools/call"], total + own_calls, "{r}");
    gw.shutdown().await;
}

#[tokio::test]
async fn the_stamp_example_acts_on_its_route() {
    let wasm = tokio::task::spawn_blocking(crate::harness::stamp_example)
        .await
        .unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    let toml = std::fs::read_to_string(root.join("examples/stamp-plugin/switchyard.toml"))
        .unwrap()
        .replace(
            "target/wasm32-wasip2/release/stamp_plugin.wasm",
            &wasm.display().to_string(),
        )
        .replace("127.0.0.1:8080", "127.0.0.1:0");
    let gw = Gateway::start(&toml).await;
    let r = modern(
        &gw.url("/mcp"),
        "tools/call",
        json!({"name": "echo", "arguments": {"message": "hi"}}),
    )
    .await;
    let result = &r.last()["result"];
    assert_eq!(result["content"][0]["text"], "Echo: hi", "{}", r.last());
    assert!(
        result["_meta"]["example.com/elapsedMs"].as_f64().is_some(),
        "{result}"
    );
    let r = modern(
        &gw.url("/mcp"),
        "tools/call",
        json!({"name": "crash", "arguments": {}}),
    )
    .await;
    assert_eq!(r.last()["error"]["message"], "unknown tool: crash");
    gw.shutdown().await;
}

#[tokio::test]
async fn plugin_new_scaffolds_a_crate_that_builds_and_acts() {
    let dir = tempdir();
    let out = std::process::Command::new(crate::harness::BIN)
        .args(["plugin", "new", "hello-guard", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let crate_dir = dir.join("hello-guard");
    let wasm = tokio::task::spawn_blocking(move || crate::harness::build_standalone(&crate_dir))
        .await
        .unwrap();
    let gw = Gateway::start(&config(&format!(
        "[plugins.guard]\ncomponent = {:?}\nconfig = {{ deny = [\"add\"] }}\n\n{}",
        wasm.display().to_string(),
        route("/guarded", &["guard"])
    )))
    .await;
    let c = Legacy::connect(&gw.url("/guarded")).await;
    let r = c
        .request(
            "tools/call",
            json!({"name": "add", "arguments": {"a": 1, "b": 2}}),
        )
        .await;
    assert_eq!(
        r.last()["error"]["message"],
        "tool `add` is not allowed here"
    );
    assert_eq!(
        echo(&c, "ok").await["result"]["content"][0]["text"],
        "Echo: ok"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn the_sandbox_opens_only_what_the_operator_grants() {
    let data = tempdir();
    std::fs::write(data.join("hello.txt"), "hello from the host").unwrap();
    let dir = data.display().to_string();
    let granted = |name: &str, probe_config: Value, grants: &str| {
        format!(
            "[plugins.{name}]\ncomponent = \"{{plugins}}/probe.wasm\"\nconfig = {}\ngrants = {grants}\n\n",
            toml_inline(&probe_config)
        )
    };
    let read = json!({"request": "read-file", "path": "/data/hello.txt"});
    let write = json!({"request": "write-file", "path": "/data/new.txt"});
    let env = json!({"request": "env", "name": "SWITCHYARD_BIN"});
    let folder = format!("{{ dirs = [{{ host = {dir:?}, guest = \"/data\" }}] }}");
    let mut extra = probe("reader", read.clone());
    extra += &probe("writer", write.clone());
    extra += &probe("env", env.clone());
    extra += &granted("granted-reader", read, &folder);
    extra += &granted("granted-writer", write, &folder);
    extra += &granted("granted-env", env, "{ env = [\"SWITCHYARD_BIN\"] }");
    for p in [
        "reader",
        "writer",
        "env",
        "granted-reader",
        "granted-writer",
        "granted-env",
    ] {
        extra += &route(&format!("/{p}"), &[p]);
    }
    let toml = config(&extra);
    let gw = Gateway::start(&toml).await;
    let text = async |path: &str| {
        let c = Legacy::connect(&gw.url(path)).await;
        c.call_text("echo", json!({"message": "x"})).await
    };
    // Nothing by default.
    assert!(text("/reader").await.starts_with("error"));
    assert!(text("/writer").await.starts_with("error"));
    assert_eq!(text("/env").await, "unset");
    // A granted folder is readable, and read-only unless the grant says so.
    assert_eq!(text("/granted-reader").await, "hello from the host");
    assert!(text("/granted-writer").await.starts_with("error"));
    assert!(!data.join("new.txt").exists());
    assert_eq!(text("/granted-env").await, crate::harness::BIN);
    gw.shutdown().await;
}
