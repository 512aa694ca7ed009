//! Several upstreams on one route: namespaced names, routing back, merged
//! pagination, merged capabilities; one upstream passes names through.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::harness::{Gateway, Legacy, demo_config, modern};

async fn all_pages(client: &Legacy, method: &str, field: &str) -> (Vec<Value>, usize) {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let params = match &cursor {
            Some(c) => json!({"cursor": c}),
            None => json!({}),
        };
        let r = client.result(method, params).await;
        pages += 1;
        items.extend(r[field].as_array().unwrap().iter().cloned());
        match r.get("nextCursor").and_then(Value::as_str) {
            Some(c) => cursor = Some(c.to_owned()),
            None => return (items, pages),
        }
        assert!(pages < 100, "pagination does not end");
    }
}

#[tokio::test]
async fn colliding_tool_names_are_namespaced_and_route_back() {
    let gw = Gateway::start(&demo_config(&[("alpha", ""), ("beta", "")])).await;
    let client = Legacy::connect(&gw.url("/mcp")).await;
    let (tools, _) = all_pages(&client, "tools/list", "tools").await;
    let names: BTreeSet<String> = tools
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        names.contains("alpha__echo") && names.contains("beta__echo"),
        "{names:?}"
    );
    assert!(names.iter().all(|n| {
        n.len() <= 128
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    }));
    assert_eq!(names.len(), tools.len(), "no duplicates");
    // Each name reaches its own upstream.
    for up in ["alpha", "beta"] {
        let who = client.call_text(&format!("{up}__whoami"), json!({})).await;
        assert!(who.contains(up), "{up}__whoami answered {who}");
    }
    // Prompts too; resources keep their URIs and route by them.
    let (prompts, _) = all_pages(&client, "prompts/list", "prompts").await;
    assert!(prompts.iter().any(|p| p["name"] == "alpha__greet"));
    let r = client
        .result(
            "prompts/get",
            json!({"name":"beta__greet","arguments":{"name":"Ada"}}),
        )
        .await;
    assert!(
        r["messages"][0]["content"]["text"]
            .as_str()
            .unwrap()
            .contains("Ada")
    );
    let r = client
        .result("resources/read", json!({"uri":"demo://readme"}))
        .await;
    assert!(r["contents"][0]["text"].is_string());
    // Unknown names: -32602.
    let r = client
        .request("tools/call", json!({"name":"gamma__echo","arguments":{}}))
        .await;
    assert_eq!(r.last()["error"]["code"], -32602);
    let r = client
        .request("tools/call", json!({"name":"echo","arguments":{}}))
        .await;
    assert_eq!(r.last()["error"]["code"], -32602);
    // Modern clients see the same names.
    let r = modern(
        &gw.url("/mcp"),
        "tools/call",
        json!({"name":"beta__echo","arguments":{"message":"hi"}}),
    )
    .await;
    assert_eq!(r.last()["result"]["content"][0]["text"], "Echo: hi");
    gw.shutdown().await;
}

#[tokio::test]
async fn pagination_merges_every_upstreams_cursor() {
    let paged = Gateway::start(&demo_config(&[
        ("alpha", "--page-size 2"),
        ("beta", "--page-size 3"),
    ]))
    .await;
    let whole = Gateway::start(&demo_config(&[("alpha", ""), ("beta", "")])).await;
    let p = Legacy::connect(&paged.url("/mcp")).await;
    let w = Legacy::connect(&whole.url("/mcp")).await;
    for (method, field) in [
        ("tools/list", "tools"),
        ("prompts/list", "prompts"),
        ("resources/list", "resources"),
    ] {
        let (paged_items, pages) = all_pages(&p, method, field).await;
        let (whole_items, one) = all_pages(&w, method, field).await;
        assert_eq!(
            one, 1,
            "{method}: without upstream paging there is one page"
        );
        assert!(pages > 1, "{method}: upstream pages show through");
        let key = |v: &Value| v.get("name").or(v.get("uri")).unwrap().to_string();
        let a: BTreeSet<String> = paged_items.iter().map(key).collect();
        let b: BTreeSet<String> = whole_items.iter().map(key).collect();
        assert_eq!(a, b, "{method}: the pages add up to the whole list");
        assert_eq!(a.len(), paged_items.len(), "{method}: no item twice");
    }
    // A cursor is opaque and checked.
    let r = p
        .request("tools/list", json!({"cursor": "not-a-cursor"}))
        .await;
    assert_eq!(r.last()["error"]["code"], -32602);
    paged.shutdown().await;
    whole.shutdown().await;
}

#[tokio::test]
async fn capabilities_merge_and_one_upstream_passes_names_through() {
    let gw = Gateway::start(&demo_config(&[("solo", "")])).await;
    let client = Legacy::connect(&gw.url("/mcp")).await;
    let tools = client.result("tools/list", json!({})).await;
    assert!(
        tools["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "echo")
    );
    assert_eq!(
        client.call_text("echo", json!({"message":"x"})).await,
        "Echo: x"
    );
    let r = modern(&gw.url("/mcp"), "server/discover", json!({})).await;
    let caps = &r.last()["result"]["capabilities"];
    assert_eq!(caps["tools"]["listChanged"], true);
    assert_eq!(caps["resources"]["subscribe"], true);
    gw.shutdown().await;
}

#[tokio::test]
async fn routes_serve_their_own_upstreams() {
    let toml = format!(
        "{}[[routes]]\npath = \"/a\"\nupstreams = [\"alpha\"]\n\n[[routes]]\npath = \"/both\"\n",
        demo_config(&[("alpha", ""), ("beta", "")])
    );
    let gw = Gateway::start(&toml).await;
    let a = Legacy::connect(&gw.url("/a")).await;
    assert!(a.call_text("whoami", json!({})).await.contains("alpha"));
    let both = Legacy::connect(&gw.url("/both")).await;
    assert!(
        both.call_text("beta__whoami", json!({}))
            .await
            .contains("beta")
    );
    // A session belongs to its route.
    let r = reqwest::Client::new()
        .post(gw.url("/both"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &a.session)
        .body(json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(reqwest::get(gw.url("/mcp")).await.unwrap().status(), 404);
    gw.shutdown().await;
}
