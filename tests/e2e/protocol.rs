//! The endpoint's protocol behaviour: bad input, both eras on one path,
//! sessions, Origin/Host protection, the HTTP+SSE transport.

use std::time::Duration;

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::harness::{
    Gateway, LEGACY, Legacy, MODERN, demo_config, modern, modern_body, read_reply,
};

async fn raw_post(url: &str, body: impl Into<reqwest::Body>) -> crate::harness::Reply {
    read_reply(
        reqwest::Client::new()
            .post(url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn bad_input_gets_the_right_error_and_nothing_breaks() {
    let gw = Gateway::start(&format!(
        "{}[server]\nmax_body_bytes = 2048\n",
        demo_config(&[("demo", "")])
    ))
    .await;
    let url = gw.url("/mcp");
    let client = Legacy::connect(&url).await;

    // Malformed JSON: -32700, 400.
    let r = raw_post(&url, "{\"jsonrpc\": ").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.last()["error"]["code"], -32700);
    assert_eq!(r.last()["id"], Value::Null);

    // Not a JSON-RPC request: -32600, 400, id kept when there is one.
    for body in [
        json!({"id": 7, "method": "ping"}),
        json!([1, 2]),
        json!({"jsonrpc": "2.0", "id": 8, "method": 3}),
    ] {
        let r = client.post(body.clone()).await;
        assert_eq!(r.status, 400, "{body}");
        assert_eq!(r.last()["error"]["code"], -32600, "{body}");
    }
    assert_eq!(
        client.post(json!({"id": 7, "method": "ping"})).await.last()["id"],
        7
    );

    // Too large: 413.
    let big = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"x".repeat(4096)}}});
    let r = client.post(big).await;
    assert_eq!(r.status, 413);

    // Unknown method: -32601 (200 for legacy, 404 for modern).
    let r = client.request("no/such/method", json!({})).await;
    assert_eq!(r.last()["error"]["code"], -32601);
    let r = modern(&url, "no/such/method", json!({})).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.last()["error"]["code"], -32601);

    // Unknown tool: -32602 (the upstream's own answer).
    let r = client
        .request("tools/call", json!({"name": "nope", "arguments": {}}))
        .await;
    assert_eq!(r.last()["error"]["code"], -32602, "{:?}", r.messages);

    // The session still works after all of that.
    assert_eq!(
        client
            .call_text("echo", json!({"message": "still here"}))
            .await,
        "Echo: still here"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn modern_requests_validate_headers_and_version() {
    let gw = Gateway::start(&demo_config(&[("demo", "")])).await;
    let url = gw.url("/mcp");
    let http = reqwest::Client::new();
    let body = modern_body(
        json!(1),
        "tools/call",
        json!({"name": "echo", "arguments": {"message": "m"}}),
    );
    let send = |headers: Vec<(&'static str, &'static str)>, body: Value| {
        let mut req = http
            .post(&url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        for (k, v) in headers {
            req = req.header(k, v);
        }
        async move { read_reply(req.json(&body).send().await.unwrap()).await }
    };
    let good = vec![
        ("mcp-protocol-version", MODERN),
        ("mcp-method", "tools/call"),
        ("mcp-name", "echo"),
    ];
    let r = send(good.clone(), body.clone()).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.last()["result"]["content"][0]["text"], "Echo: m");
    assert_eq!(r.last()["result"]["resultType"], "complete");
    assert!(
        r.headers.get("mcp-session-id").is_none(),
        "modern requests never get a session"
    );

    for bad in [
        vec![("mcp-method", "tools/call"), ("mcp-name", "echo")],
        vec![("mcp-protocol-version", MODERN), ("mcp-name", "echo")],
        vec![
            ("mcp-protocol-version", MODERN),
            ("mcp-method", "tools/list"),
            ("mcp-name", "echo"),
        ],
        vec![
            ("mcp-protocol-version", MODERN),
            ("mcp-method", "tools/call"),
            ("mcp-name", "other"),
        ],
        vec![
            ("mcp-protocol-version", MODERN),
            ("mcp-method", "tools/call"),
        ],
        vec![
            ("mcp-protocol-version", LEGACY),
            ("mcp-method", "tools/call"),
            ("mcp-name", "echo"),
        ],
    ] {
        let r = send(bad.clone(), body.clone()).await;
        assert_eq!(r.status, 400, "{bad:?}");
        assert_eq!(r.last()["error"]["code"], -32020, "{bad:?}");
        assert_eq!(r.last()["id"], 1);
    }

    // An unsupported version (header and body agree): -32022 with the list.
    let mut old = body.clone();
    old["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = "2099-01-01".into();
    let r = send(
        vec![
            ("mcp-protocol-version", "2099-01-01"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "echo"),
        ],
        old,
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.last()["error"]["code"], -32022);
    let supported = r.last()["error"]["data"]["supported"].as_array().unwrap();
    assert!(supported.iter().any(|v| v == MODERN));

    // server/discover answers with the merged capabilities.
    let r = modern(&url, "server/discover", json!({})).await;
    let result = &r.last()["result"];
    assert_eq!(result["supportedVersions"][0], MODERN);
    assert!(result["capabilities"]["tools"].is_object());

    // GET and DELETE without a legacy session: 405.
    let r = http
        .get(&url)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let r = http.delete(&url).send().await.unwrap();
    assert_eq!(r.status(), 405);
    gw.shutdown().await;
}

#[tokio::test]
async fn legacy_sessions_start_end_and_are_not_guessable() {
    let gw = Gateway::start(&demo_config(&[("demo", "")])).await;
    let url = gw.url("/mcp");
    let a = Legacy::connect(&url).await;
    let b = Legacy::connect(&url).await;
    assert_ne!(a.session, b.session);
    // ≥ 128 random bits: 24 bytes in URL-safe base64 is 32 characters.
    assert!(a.session.len() >= 32, "{}", a.session);
    assert!(
        a.session
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    );

    // No session on a non-initialize request: 400.
    let r = raw_post(
        &url,
        json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}).to_string(),
    )
    .await;
    assert_eq!(r.status, 400);

    // Unknown session: 404.
    let r = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", "no-such-session")
        .body(json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // DELETE ends a; b is untouched.
    let r = a
        .http
        .delete(&url)
        .header("mcp-session-id", &a.session)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    assert_eq!(a.request("tools/list", json!({})).await.status, 404);
    assert_eq!(
        b.call_text("echo", json!({"message": "b"})).await,
        "Echo: b"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn foreign_origin_and_host_are_refused() {
    let gw = Gateway::start(&format!(
        "{}[server]\nallowed_origins = [\"https://app.example.com\"]\n",
        demo_config(&[("demo", "")])
    ))
    .await;
    let url = gw.url("/mcp");
    let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":LEGACY,"capabilities":{},"clientInfo":{"name":"x","version":"1"}}});
    let post = |origin: Option<&'static str>, host: Option<String>| {
        let mut req = reqwest::Client::new()
            .post(&url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        if let Some(h) = host {
            req = req.header("host", h);
        }
        let body = init.to_string();
        async move { req.body(body).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(post(Some("http://evil.example.com"), None).await, 403);
    assert_eq!(post(None, Some("evil.example.com".into())).await, 403);
    assert_eq!(
        post(None, Some(format!("evil.example.com:{}", gw.addr.port()))).await,
        403
    );
    assert_eq!(post(Some("https://app.example.com"), None).await, 200);
    assert_eq!(post(Some("http://localhost:3000"), None).await, 200);
    assert_eq!(
        post(None, Some(format!("localhost:{}", gw.addr.port()))).await,
        200
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn old_http_sse_transport_serves_a_session() {
    let gw = Gateway::start(&demo_config(&[("demo", "")])).await;
    let http = reqwest::Client::new();
    let resp = http
        .get(gw.url("/mcp/sse"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut events = resp.bytes_stream().eventsource();
    let first = events.next().await.unwrap().unwrap();
    assert_eq!(first.event, "endpoint");
    let post_url = gw.url(&first.data);
    let send = |msg: Value| {
        let req = http
            .post(&post_url)
            .header("content-type", "application/json")
            .json(&msg);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(
        send(json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"old","version":"1"}}})).await,
        202
    );
    let mut events: std::pin::Pin<
        Box<dyn futures_util::Stream<Item = eventsource_stream::Event> + Send>,
    > = Box::pin(events.filter_map(|e| async move { e.ok() }));
    async fn next_message(
        events: &mut std::pin::Pin<
            Box<dyn futures_util::Stream<Item = eventsource_stream::Event> + Send>,
        >,
    ) -> Value {
        loop {
            let ev = tokio::time::timeout(Duration::from_secs(10), events.next())
                .await
                .expect("a message within 10 s")
                .expect("the stream stays open");
            if ev.event == "message" {
                return serde_json::from_str(&ev.data).unwrap();
            }
        }
    }
    let init = next_message(&mut events).await;
    assert_eq!(init["id"], 1);
    assert_eq!(init["result"]["protocolVersion"], "2024-11-05");
    assert_eq!(
        send(json!({"jsonrpc":"2.0","method":"notifications/initialized"})).await,
        202
    );
    assert_eq!(
        send(json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"message":"old"}}})).await,
        202
    );
    let call = next_message(&mut events).await;
    assert_eq!(call["id"], 2);
    assert_eq!(call["result"]["content"][0]["text"], "Echo: old");
    // Unknown session on /messages: 404.
    let r = http
        .post(gw.url("/mcp/messages?sessionId=nope"))
        .json(&json!({"jsonrpc":"2.0","id":3,"method":"ping"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    gw.shutdown().await;
}

#[tokio::test]
async fn healthz_reports_upstreams() {
    let gw = Gateway::start(&demo_config(&[("demo", "")])).await;
    let h = gw.health().await;
    assert_eq!(h["status"], "ok");
    assert_eq!(h["upstreams"][0]["name"], "demo");
    assert_eq!(h["upstreams"][0]["state"], "ready");
    assert!(gw.pid_of("demo").await.is_some());
    gw.shutdown().await;
}

#[tokio::test]
async fn hostile_input_never_takes_the_gateway_down() {
    let gw = Gateway::start(&demo_config(&[("alpha", ""), ("beta", "")])).await;
    let url = gw.url("/mcp");
    let client = Legacy::connect(&url).await;
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let bodies: Vec<String> = vec![
        deep,
        "\u{0}\u{1}\u{2}".into(),
        "null".into(),
        "\"just a string\"".into(),
        json!({"jsonrpc":"2.0","id":{"nested":1},"method":"ping"}).to_string(),
        json!({"jsonrpc":"2.0","id":u64::MAX,"method":"tools/call","params":{"name":"alpha__echo","arguments":{"message":"big id"}}}).to_string(),
        json!({"jsonrpc":"2.0","id":-1,"method":"tools/list","params":{"cursor":""}}).to_string(),
        json!({"jsonrpc":"2.0","id":2,"result":{"unsolicited":true}}).to_string(),
        json!({"jsonrpc":"2.0","id":3,"error":{"code":"x"}}).to_string(),
        json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":{"x":[1]}}}).to_string(),
    ];
    for method in [
        "tools/call",
        "tools/list",
        "prompts/get",
        "prompts/list",
        "resources/read",
        "resources/subscribe",
        "resources/unsubscribe",
        "resources/templates/list",
        "completion/complete",
        "logging/setLevel",
        "ping",
        "server/discover",
    ] {
        for params in [
            json!([1, 2]),
            json!({"name": 7, "uri": [], "cursor": 5, "ref": "x"}),
            json!({"ref": {"type": "ref/prompt", "name": {}}}),
        ] {
            let r = client
                .post(json!({"jsonrpc":"2.0","id":"h","method":method,"params":params}))
                .await;
            assert!(r.status < 500, "{method} {params}: HTTP {}", r.status);
            let modern_r = modern(&url, method, json!({"name": 7, "cursor": [], "ref": 1})).await;
            assert!(
                modern_r.status < 500,
                "modern {method}: HTTP {}",
                modern_r.status
            );
        }
    }
    for body in bodies {
        let r = client.builder().body(body.clone()).send().await.unwrap();
        assert!(
            r.status().as_u16() < 500,
            "{}: HTTP {}",
            &body[..body.len().min(60)],
            r.status()
        );
    }
    // Still serving, the session intact, both upstreams alive.
    assert_eq!(
        client
            .call_text("alpha__echo", json!({"message": "alive"}))
            .await,
        "Echo: alive"
    );
    assert_eq!(
        client
            .call_text("beta__echo", json!({"message": "alive"}))
            .await,
        "Echo: alive"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn mirrored_parameter_headers_must_match_the_arguments() {
    // Two upstreams, so names are aggregated; no client lists tools first:
    // the gateway learns the x-mcp-header parameters by itself.
    let gw = Gateway::start(&demo_config(&[("a", "--era legacy"), ("b", "")])).await;
    let url = gw.url("/mcp");
    let call = |headers: Vec<(&'static str, &'static str)>, args: Value| {
        let body = modern_body(
            json!(1),
            "tools/call",
            json!({"name": "a__test_custom_headers", "arguments": args}),
        );
        let mut req = reqwest::Client::new()
            .post(&url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", MODERN)
            .header("mcp-method", "tools/call")
            .header("mcp-name", "a__test_custom_headers");
        for (k, v) in headers {
            req = req.header(k, v);
        }
        async move { read_reply(req.json(&body).send().await.unwrap()).await }
    };
    let ok = |r: &crate::harness::Reply| r.status == 200 && r.last()["result"].is_object();
    let mismatch =
        |r: &crate::harness::Reply| r.status == 400 && r.last()["error"]["code"] == -32020;

    let r = call(vec![("mcp-param-region", "eu")], json!({"region": "eu"})).await;
    assert!(ok(&r), "{:?}", r.messages);
    assert!(
        r.last()["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("region=eu")
    );
    let r = call(
        vec![("Mcp-Param-Region", "=?base64?ZXU=?=")],
        json!({"region": "eu"}),
    )
    .await;
    assert!(ok(&r), "base64 form: {:?}", r.messages);
    let r = call(
        vec![("mcp-param-region", "=?base64?ZXU?=")],
        json!({"region": "eu"}),
    )
    .await;
    assert!(mismatch(&r), "bad padding: {:?}", r.messages);
    let r = call(vec![], json!({"region": "eu"})).await;
    assert!(mismatch(&r), "missing header: {:?}", r.messages);
    let r = call(vec![("mcp-param-region", "us")], json!({"region": "eu"})).await;
    assert!(mismatch(&r), "different value: {:?}", r.messages);
    let r = call(
        vec![("mcp-param-region", "eu"), ("mcp-param-priority", "3")],
        json!({"region": "eu", "priority": 3}),
    )
    .await;
    assert!(ok(&r), "integer: {:?}", r.messages);
    let r = call(
        vec![("mcp-param-region", "eu"), ("mcp-param-priority", "4")],
        json!({"region": "eu", "priority": 3}),
    )
    .await;
    assert!(mismatch(&r), "integer mismatch: {:?}", r.messages);
    // Arguments without a value need no header.
    let r = call(
        vec![("mcp-param-region", "eu")],
        json!({"region": "eu", "priority": null}),
    )
    .await;
    assert!(ok(&r), "null argument: {:?}", r.messages);
    gw.shutdown().await;
}

#[tokio::test]
async fn resource_not_found_uses_each_eras_code() {
    let gw = Gateway::start(&demo_config(&[("demo", "--era legacy")])).await;
    let url = gw.url("/mcp");
    let legacy = Legacy::connect(&url).await;
    let r = legacy
        .request("resources/read", json!({"uri": "test://nope"}))
        .await;
    assert_eq!(r.last()["error"]["code"], -32002, "{:?}", r.messages);
    let r = modern(&url, "resources/read", json!({"uri": "test://nope"})).await;
    assert_eq!(r.last()["error"]["code"], -32602, "{:?}", r.messages);
    gw.shutdown().await;
}

#[tokio::test]
async fn modern_clients_get_the_configured_freshness_of_a_legacy_upstream() {
    let toml = format!(
        "{}cache_hint = {{ ttl_ms = 60000, scope = \"public\" }}\n",
        demo_config(&[("hinted", "--era legacy")])
    ) + &demo_config(&[("plain", "--era legacy")])
        + "[[routes]]\npath = \"/hinted\"\nupstreams = [\"hinted\"]\n[[routes]]\npath = \"/plain\"\nupstreams = [\"plain\"]\n";
    let gw = Gateway::start(&toml).await;
    for (path, ttl, scope) in [("/hinted", 60000, "public"), ("/plain", 0, "private")] {
        let list = modern(&gw.url(path), "tools/list", json!({})).await;
        assert_eq!(list.last()["result"]["ttlMs"], ttl, "{}", list.last());
        assert_eq!(list.last()["result"]["cacheScope"], scope);
        let read = modern(
            &gw.url(path),
            "resources/read",
            json!({"uri": "demo://readme"}),
        )
        .await;
        assert_eq!(read.last()["result"]["ttlMs"], ttl, "{}", read.last());
        assert_eq!(read.last()["result"]["cacheScope"], scope);
    }
    // Legacy clients see no modern-only fields.
    let legacy = Legacy::connect(&gw.url("/hinted")).await;
    let list = legacy.result("tools/list", json!({})).await;
    assert!(
        list.get("resultType").is_none() && list.get("ttlMs").is_none(),
        "{list}"
    );
    gw.shutdown().await;
}
