//! Server→client traffic: list_changed to listeners of both eras, sampling
//! relayed to the legacy session that caused it, resumption.

use std::time::Duration;

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::harness::{Gateway, LEGACY, Legacy, MODERN, demo_config, eventually, modern_body};

pub(crate) type Events =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = eventsource_stream::Event> + Send>>;

pub(crate) async fn open_get(client: &Legacy, last_event_id: Option<&str>) -> Events {
    let mut req = client
        .http
        .get(&client.url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &client.session)
        .header("mcp-protocol-version", LEGACY);
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    events(resp)
}

/// The SSE events of a streaming response, well-formed ones only.
fn events(resp: reqwest::Response) -> Events {
    Box::pin(
        resp.bytes_stream()
            .eventsource()
            .filter_map(|e| async move { e.ok() }),
    )
}

pub(crate) async fn next_json(events: &mut Events) -> (eventsource_stream::Event, Value) {
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("an event within 10 s")
            .expect("the stream stays open");
        if !ev.data.is_empty() {
            let v = serde_json::from_str(&ev.data).unwrap();
            return (ev, v);
        }
    }
}

#[tokio::test]
async fn list_changed_reaches_legacy_and_modern_listeners() {
    list_changed_across("--era modern").await;
}

/// The same with a legacy upstream: its plain list_changed reaches a
/// modern `subscriptions/listen` stream, tagged, and a legacy GET stream.
#[tokio::test]
async fn a_legacy_upstreams_list_changed_reaches_both_eras() {
    list_changed_across("--era legacy").await;
}

/// Opens a modern `subscriptions/listen` stream with `filter`.
async fn listen(url: &str, id: &str, filter: Value) -> Events {
    let body = modern_body(
        json!(id),
        "subscriptions/listen",
        json!({ "notifications": filter }),
    );
    let resp = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", "subscriptions/listen")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    events(resp)
}

async fn list_changed_across(upstream_era: &str) {
    let gw = Gateway::start(&demo_config(&[("demo", upstream_era)])).await;
    let url = gw.url("/mcp");
    let listener = Legacy::connect(&url).await;
    let mut legacy_stream = open_get(&listener, None).await;

    let mut modern_stream = listen(&url, "sub-1", json!({"toolsListChanged": true})).await;
    let (_, ack) = next_json(&mut modern_stream).await;
    assert_eq!(ack["method"], "notifications/subscriptions/acknowledged");
    assert_eq!(
        ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "sub-1"
    );
    assert_eq!(ack["params"]["notifications"]["toolsListChanged"], true);

    // Another client changes the tool list.
    let actor = Legacy::connect(&url).await;
    actor
        .call_text("set_tools", json!({"extra": ["dyn1"]}))
        .await;

    let (_, n) = next_json(&mut legacy_stream).await;
    assert_eq!(n["method"], "notifications/tools/list_changed");
    let (_, n) = next_json(&mut modern_stream).await;
    assert_eq!(n["method"], "notifications/tools/list_changed");
    assert_eq!(
        n["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "sub-1"
    );
    // And the new tool is there.
    let tools = actor.result("tools/list", json!({})).await;
    assert!(
        tools["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "dyn1")
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn the_standalone_stream_resumes_after_last_event_id() {
    let gw = Gateway::start(&demo_config(&[("demo", "")])).await;
    let url = gw.url("/mcp");
    let listener = Legacy::connect(&url).await;
    let mut stream = open_get(&listener, None).await;
    let actor = Legacy::connect(&url).await;
    actor
        .call_text("set_tools", json!({"extra": ["one"]}))
        .await;
    let (first, _) = next_json(&mut stream).await;
    drop(stream);
    // Missed while disconnected:
    actor
        .call_text("set_tools", json!({"extra": ["two"]}))
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut resumed = open_get(&listener, Some(&first.id)).await;
    let (again, n) = next_json(&mut resumed).await;
    assert_ne!(
        again.id, first.id,
        "replay starts after the last seen event"
    );
    assert_eq!(n["method"], "notifications/tools/list_changed");
    gw.shutdown().await;
}

#[tokio::test]
async fn sampling_is_relayed_to_the_legacy_session_that_caused_it() {
    sampling_reaches_the_legacy_session("--era legacy").await;
}

/// A modern upstream's InputRequiredResult becomes a real server request on
/// the legacy client's stream; the gateway retries with the answer.
#[tokio::test]
async fn a_modern_upstreams_input_request_reaches_a_legacy_client() {
    sampling_reaches_the_legacy_session("--era modern").await;
}

async fn sampling_reaches_the_legacy_session(upstream_era: &str) {
    let gw = Gateway::start(&demo_config(&[("demo", upstream_era)])).await;
    let url = gw.url("/mcp");
    let client = Legacy::connect_with(&url, json!({"sampling": {}})).await;
    let bystander = Legacy::connect_with(&url, json!({"sampling": {}})).await;
    let mut bystander_stream = open_get(&bystander, None).await;

    let resp = client
        .builder()
        .json(&json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"test_sampling","arguments":{"prompt":"hi"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut events: Events = events(resp);
    let (_, req) = next_json(&mut events).await;
    assert_eq!(req["method"], "sampling/createMessage");
    let answer = json!({"jsonrpc":"2.0","id": req["id"],"result":{
        "role":"assistant","content":{"type":"text","text":"from the client"},"model":"m","stopReason":"endTurn"}});
    assert_eq!(client.post(answer).await.status, 202);
    let (_, done) = next_json(&mut events).await;
    assert_eq!(done["id"], 1);
    let text = done["result"]["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("from the client"), "{done}");
    // The bystander saw nothing of it.
    let nothing = tokio::time::timeout(Duration::from_millis(300), bystander_stream.next()).await;
    assert!(nothing.is_err(), "the other session got {nothing:?}");
    gw.shutdown().await;
}

#[tokio::test]
async fn a_legacy_upstreams_sampling_reaches_a_modern_client_as_input_required() {
    let gw = Gateway::start(&demo_config(&[("demo", "--era legacy")])).await;
    let url = gw.url("/mcp");
    // Without the capability: -32021 with HTTP 400, naming what is missing.
    let r = crate::harness::modern(
        &url,
        "tools/call",
        json!({"name":"test_sampling","arguments":{"prompt":"hi"}}),
    )
    .await;
    assert_eq!(r.status, 400, "{:?}", r.messages);
    assert_eq!(r.last()["error"]["code"], -32021);
    assert!(r.last()["error"]["data"]["requiredCapabilities"]["sampling"].is_object());

    // With it: an InputRequiredResult carrying the upstream's request.
    let with_sampling = |args: Value, extra: Value| {
        let mut body = modern_body(
            json!(3),
            "tools/call",
            json!({"name":"test_sampling","arguments": args}),
        );
        body["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"] =
            json!({"sampling": {}});
        if let (Some(p), Some(e)) = (body["params"].as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        body
    };
    let r =
        crate::harness::send_modern(&url, &with_sampling(json!({"prompt":"hi"}), json!({}))).await;
    let first = r.last()["result"].clone();
    assert_eq!(first["resultType"], "input_required", "{:?}", r.messages);
    let (key, req) = first["inputRequests"]
        .as_object()
        .unwrap()
        .iter()
        .next()
        .unwrap();
    assert_eq!(req["method"], "sampling/createMessage");
    let state = first["requestState"].as_str().unwrap().to_owned();
    let answer = json!({(key.clone()): {"role":"assistant","content":{"type":"text","text":"bridged answer"},"model":"m","stopReason":"endTurn"}});

    // Attacks: tampered, another request's, then the real retry, then a replay.
    let tampered = format!("{state}x");
    let r = crate::harness::send_modern(
        &url,
        &with_sampling(
            json!({"prompt":"hi"}),
            json!({"inputResponses": answer, "requestState": tampered}),
        ),
    )
    .await;
    assert_eq!(
        r.last()["error"]["code"],
        -32602,
        "tampered: {:?}",
        r.messages
    );
    let r = crate::harness::send_modern(
        &url,
        &with_sampling(
            json!({"prompt":"other"}),
            json!({"inputResponses": answer, "requestState": state}),
        ),
    )
    .await;
    assert_eq!(
        r.last()["error"]["code"],
        -32602,
        "another request: {:?}",
        r.messages
    );
    let retry = with_sampling(
        json!({"prompt":"hi"}),
        json!({"inputResponses": answer, "requestState": state}),
    );
    // Another credential: the round is bound to the Authorization it began with.
    let mut other = retry.clone();
    other["id"] = json!(4);
    let resp = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", "tools/call")
        .header("mcp-name", "test_sampling")
        .header("authorization", "Bearer someone-else")
        .json(&other)
        .send()
        .await
        .unwrap();
    let r = crate::harness::read_reply(resp).await;
    assert_eq!(
        r.last()["error"]["code"],
        -32602,
        "another principal: {:?}",
        r.messages
    );
    let r = crate::harness::send_modern(&url, &retry).await;
    assert_eq!(
        r.last()["result"]["resultType"],
        "complete",
        "{:?}",
        r.messages
    );
    let text = r.last()["result"]["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("bridged answer"), "{text}");
    let r = crate::harness::send_modern(&url, &retry).await;
    assert_eq!(
        r.last()["error"]["code"],
        -32602,
        "replay: {:?}",
        r.messages
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn modern_clients_get_log_messages_only_when_they_ask() {
    let gw = Gateway::start(&demo_config(&[("demo", "--era legacy")])).await;
    let url = gw.url("/mcp");
    let logs = |r: &crate::harness::Reply| {
        r.messages
            .iter()
            .filter(|m| m["method"] == "notifications/message")
            .count()
    };
    let quiet = crate::harness::modern(
        &url,
        "tools/call",
        json!({"name":"test_tool_with_logging","arguments":{}}),
    )
    .await;
    assert_eq!(logs(&quiet), 0, "{:?}", quiet.messages);
    assert!(quiet.last()["result"].is_object());

    let mut body = modern_body(
        json!(2),
        "tools/call",
        json!({"name":"test_tool_with_logging","arguments":{}}),
    );
    body["params"]["_meta"]["io.modelcontextprotocol/logLevel"] = "debug".into();
    let loud = crate::harness::send_modern(&url, &body).await;
    assert!(logs(&loud) >= 1, "{:?}", loud.messages);
    assert_eq!(loud.last()["id"], 2);
    // A legacy client gets them as its session's level allows.
    let legacy = Legacy::connect(&url).await;
    let r = legacy
        .request(
            "tools/call",
            json!({"name":"test_tool_with_logging","arguments":{}}),
        )
        .await;
    assert!(logs(&r) >= 1, "{:?}", r.messages);
    gw.shutdown().await;
}

/// A modern upstream has no resources/subscribe: a legacy client's
/// subscription becomes part of the gateway's subscriptions/listen filter,
/// and the updates reach the client's GET stream.
#[tokio::test]
async fn resource_updates_from_a_modern_upstream_reach_a_legacy_subscriber() {
    let gw = Gateway::start(&demo_config(&[("demo", "--era modern")])).await;
    let url = gw.url("/mcp");
    let client = Legacy::connect(&url).await;
    let mut stream = open_get(&client, None).await;
    let uri = "demo://readme";
    let r = client
        .request("resources/subscribe", json!({"uri": uri}))
        .await;
    assert!(r.last()["result"].is_object(), "{:?}", r.messages);
    let actor = Legacy::connect(&url).await;
    // The gateway re-opens its subscription asynchronously: touch until seen.
    let seen = eventually(Duration::from_secs(10), async || {
        actor.call_text("touch_resource", json!({"uri": uri})).await;
        matches!(
            tokio::time::timeout(Duration::from_millis(300), next_json(&mut stream)).await,
            Ok((_, n)) if n["method"] == "notifications/resources/updated" && n["params"]["uri"] == uri
        )
    })
    .await;
    assert!(seen, "no notifications/resources/updated for {uri}");
    gw.shutdown().await;
}

/// A modern client's `subscriptions/listen` with `resourceSubscriptions` on
/// a legacy upstream: the gateway subscribes upstream (`resources/subscribe`)
/// and the upstream's `resources/updated` reaches the listen stream, tagged.
#[tokio::test]
async fn resource_updates_from_a_legacy_upstream_reach_a_modern_listener() {
    let gw = Gateway::start(&demo_config(&[("demo", "--era legacy")])).await;
    let url = gw.url("/mcp");
    let uri = "demo://readme";
    let mut stream = listen(&url, "sub-r", json!({"resourceSubscriptions": [uri]})).await;
    let (_, ack) = next_json(&mut stream).await;
    assert_eq!(ack["method"], "notifications/subscriptions/acknowledged");
    assert_eq!(
        ack["params"]["notifications"]["resourceSubscriptions"],
        json!([uri])
    );
    let actor = Legacy::connect(&url).await;
    actor.call_text("touch_resource", json!({"uri": uri})).await;
    let (_, n) = tokio::time::timeout(Duration::from_secs(10), next_json(&mut stream))
        .await
        .expect("an update within 10 s");
    assert_eq!(n["method"], "notifications/resources/updated", "{n}");
    assert_eq!(n["params"]["uri"], uri);
    assert_eq!(
        n["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "sub-r"
    );
    gw.shutdown().await;
}
