//! Upstream connections shared by many clients: id rewriting, progress on the
//! right stream, cancellation, a dead child, shutdown, remote upstreams.

use std::time::Duration;

use serde_json::json;

use crate::harness::{Gateway, Legacy, alive, children, demo_config, eventually, modern};

#[tokio::test]
async fn two_clients_reusing_id_1_each_get_their_own_answers() {
    let gw = Gateway::start(&demo_config(&[("demo", "")])).await;
    let url = gw.url("/mcp");
    let a = Legacy::connect(&url).await;
    let b = Legacy::connect(&url).await;
    let call = |c: &Legacy, i: usize, who: &str| {
        let msg = json!({"jsonrpc":"2.0","id":1,"method":"tools/call",
            "params":{"name":"echo","arguments":{"message": format!("{who}{i}")}}});
        let req = c.builder().json(&msg);
        async move { crate::harness::read_reply(req.send().await.unwrap()).await }
    };
    let mut tasks = Vec::new();
    for i in 0..40 {
        tasks.push(call(&a, i, "a"));
        tasks.push(call(&b, i, "b"));
    }
    let replies = futures_util::future::join_all(tasks).await;
    for (n, r) in replies.iter().enumerate() {
        let who = if n % 2 == 0 { "a" } else { "b" };
        let i = n / 2;
        assert_eq!(r.last()["id"], 1);
        assert_eq!(
            r.last()["result"]["content"][0]["text"],
            format!("Echo: {who}{i}")
        );
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn progress_goes_only_to_the_stream_of_its_request() {
    let gw = Gateway::start(&demo_config(&[("demo", "")])).await;
    let url = gw.url("/mcp");
    let a = Legacy::connect(&url).await;
    let b = Legacy::connect(&url).await;
    // Both clients use the same progress token and the same request id.
    let slow = |c: &Legacy, steps: u64| {
        let msg = json!({"jsonrpc":"2.0","id":5,"method":"tools/call","params":{
            "name":"slow","arguments":{"ms": 300, "steps": steps},"_meta":{"progressToken":"tok"}}});
        let req = c.builder().json(&msg);
        async move { crate::harness::read_reply(req.send().await.unwrap()).await }
    };
    let (ra, rb) = tokio::join!(slow(&a, 3), slow(&b, 5));
    for (r, steps) in [(ra, 3), (rb, 5)] {
        assert!(
            r.sse,
            "progress before the result switches the reply to SSE"
        );
        let progress: Vec<_> = r
            .messages
            .iter()
            .filter(|m| m["method"] == "notifications/progress")
            .collect();
        assert_eq!(progress.len(), steps, "{:?}", r.messages);
        assert!(
            progress
                .iter()
                .all(|p| p["params"]["progressToken"] == "tok")
        );
        assert_eq!(progress.last().unwrap()["params"]["total"], steps);
        // The final response comes last, with the client's own id.
        assert_eq!(r.last()["id"], 5);
        assert!(r.last()["result"].is_object());
    }
    gw.shutdown().await;
}

async fn in_flight(gw: &Gateway) -> u64 {
    gw.health().await["upstreams"][0]["in_flight"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn cancellation_reaches_the_upstream() {
    let gw = Gateway::start(&demo_config(&[("demo", "")])).await;
    let url = gw.url("/mcp");

    // Legacy: notifications/cancelled.
    let a = Legacy::connect(&url).await;
    let req = a
        .builder()
        .json(&json!({"jsonrpc":"2.0","id":"long","method":"tools/call",
        "params":{"name":"slow","arguments":{"ms": 20000, "steps": 1}}}));
    let pending = tokio::spawn(async move { req.send().await.map(|r| r.status()) });
    assert!(eventually(Duration::from_secs(5), async || in_flight(&gw).await == 1).await);
    let r = a
        .post(json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"long"}}))
        .await;
    assert_eq!(r.status, 202);
    assert!(eventually(Duration::from_secs(5), async || in_flight(&gw).await == 0).await);
    let _ = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .expect("the POST ends");

    // Modern: closing the request's HTTP stream is the cancellation.
    let url2 = url.clone();
    let call = tokio::spawn(async move {
        modern(
            &url2,
            "tools/call",
            json!({"name":"slow","arguments":{"ms":20000,"steps":1}}),
        )
        .await
    });
    assert!(eventually(Duration::from_secs(5), async || in_flight(&gw).await == 1).await);
    call.abort();
    assert!(eventually(Duration::from_secs(5), async || in_flight(&gw).await == 0).await);
    gw.shutdown().await;
}

#[tokio::test]
async fn a_dead_child_gives_an_error_at_once_and_comes_back() {
    let gw = Gateway::start(&demo_config(&[("demo", "")])).await;
    let url = gw.url("/mcp");
    let client = Legacy::connect(&url).await;
    let before = gw.pid_of("demo").await.unwrap();
    let started = std::time::Instant::now();
    let r = client
        .request("tools/call", json!({"name":"crash","arguments":{}}))
        .await;
    assert!(
        r.last()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("demo"),
        "{}",
        r.last()
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the error comes at once"
    );
    // While it restarts, calls fail fast instead of hanging.
    // And then it is back, as a new process.
    assert!(
        eventually(Duration::from_secs(10), async || {
            client
                .request(
                    "tools/call",
                    json!({"name":"echo","arguments":{"message":"back"}}),
                )
                .await
                .last()["result"]["content"][0]["text"]
                == "Echo: back"
        })
        .await
    );
    let after = gw.pid_of("demo").await.unwrap();
    assert_ne!(before, after);
    assert!(!alive(before));
    gw.shutdown().await;
}

#[tokio::test]
async fn shutdown_leaves_no_child_or_grandchild() {
    // The second upstream is a shell wrapper that leaves a grandchild behind
    // (like npx/uvx do): a `sleep` in the child's process group.
    let toml = format!(
        "{}[upstreams.wrapped]\ncommand = \"sh\"\nargs = [\"-c\", \"sleep 300 & exec {{bin}} demo --name wrapped\"]\n",
        demo_config(&[("demo", "")])
    );
    let gw = Gateway::start(&toml).await;
    let demo = gw.pid_of("demo").await.unwrap();
    let wrapped = gw.pid_of("wrapped").await.unwrap();
    let grandchildren = children(wrapped);
    assert!(!grandchildren.is_empty(), "the wrapper's sleep is running");
    assert!(alive(demo) && alive(wrapped));
    gw.shutdown().await;
    for pid in [demo, wrapped].into_iter().chain(grandchildren) {
        assert!(
            eventually(Duration::from_secs(5), async || !alive(pid)).await,
            "process {pid} outlived the gateway"
        );
    }
}

#[tokio::test]
async fn remote_upstreams_in_the_modern_era_and_over_http_sse() {
    // The back gateway serves the demo; the front one reaches it twice over
    // HTTP: once at /mcp (modern streamable HTTP is detected) and once at
    // /mcp/sse (the old HTTP+SSE transport, found after both POSTs fail).
    let back = Gateway::start(&demo_config(&[("demo", "")])).await;
    let front = Gateway::start(&format!(
        "[upstreams.modern]\nurl = \"{}\"\ntimeout = \"10s\"\n\n[upstreams.oldsse]\nurl = \"{}\"\ntimeout = \"10s\"\n",
        back.url("/mcp"),
        back.url("/mcp/sse")
    ))
    .await;
    let h = front.health().await;
    let detail = |n: &str| {
        h["upstreams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["name"] == n)
            .unwrap()["detail"]
            .clone()
    };
    assert_eq!(detail("modern"), "modern", "{h}");
    assert_eq!(detail("oldsse"), "legacy", "{h}");
    let client = Legacy::connect(&front.url("/mcp")).await;
    assert_eq!(
        client
            .call_text("modern__echo", json!({"message":"m"}))
            .await,
        "Echo: m"
    );
    assert_eq!(
        client
            .call_text("oldsse__echo", json!({"message":"o"}))
            .await,
        "Echo: o"
    );
    // Progress crosses two gateways and an HTTP hop, on the right stream.
    let r = client
        .request("tools/call", json!({"name":"modern__slow","arguments":{"ms":200,"steps":2},"_meta":{"progressToken":7}}))
        .await;
    let progress = r
        .messages
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .count();
    assert_eq!(progress, 2, "{:?}", r.messages);
    front.shutdown().await;
    back.shutdown().await;
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let gw = Gateway::start(&demo_config(&[("demo", "")])).await;
    let url = gw.url("/mcp");
    let client = Legacy::connect(&url).await;
    let req = client
        .builder()
        .json(&json!({"jsonrpc":"2.0","id":9,"method":"tools/call",
        "params":{"name":"slow","arguments":{"ms": 800, "steps": 2}}}));
    let call =
        tokio::spawn(async move { crate::harness::read_reply(req.send().await.unwrap()).await });
    assert!(eventually(Duration::from_secs(5), async || in_flight(&gw).await == 1).await);
    let addr = gw.addr;
    gw.shutdown().await;
    let reply = call.await.unwrap();
    assert_eq!(reply.last()["id"], 9);
    assert_eq!(
        reply.last()["result"]["content"][0]["text"],
        "done",
        "{:?}",
        reply.messages
    );
    // And nothing listens any more.
    assert!(
        reqwest::get(format!("http://{addr}/healthz"))
            .await
            .is_err()
    );
}
