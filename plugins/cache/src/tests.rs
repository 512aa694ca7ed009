use super::*;
use switchyard_sdk::serde_json::json;
use switchyard_sdk::testing::Harness;

fn list() -> Context {
    Context::new("tools/list")
}

/// One request through the plugin: `Some(result)` when answered from cache,
/// else the upstream answers `upstream` and the plugin sees it.
fn through(h: &Harness<Cache>, ctx: &Context, params: &Params, upstream: &Value) -> Option<Value> {
    h.clear_scratch();
    match h.on_request(ctx, params) {
        RequestDecision::Respond(v) => Some(v),
        RequestDecision::Continue(_) => {
            h.on_response(ctx, params, &Outcome::ok(upstream));
            None
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_second_identical_read_is_a_hit_until_the_ttl() {
    let h = Harness::<Cache>::new(json!({"ttl_seconds": 10, "default_scope": "public"})).unwrap();
    let r = json!({"tools": [{"name": "a"}]});
    assert_eq!(through(&h, &list(), &Params::none(), &r), None);
    assert_eq!(through(&h, &list(), &Params::none(), &r), Some(r.clone()));
    assert_eq!(
        h.counter("cache_hits_total", &[("method", "tools/list")]),
        1
    );
    assert_eq!(
        h.counter("cache_misses_total", &[("method", "tools/list")]),
        1
    );
}

#[test]
fn private_results_never_cross_principals() {
    let h = Harness::<Cache>::new(json!({})).unwrap();
    let alice = list().with_principal("alice");
    let bob = list().with_principal("bob");
    let r = json!({"tools": [{"name": "alices-tool"}], "cacheScope": "private"});
    assert_eq!(through(&h, &alice, &Params::none(), &r), None);
    assert_eq!(
        through(&h, &bob, &Params::none(), &json!({"tools": []})),
        None
    );
    assert_eq!(through(&h, &alice, &Params::none(), &r), Some(r.clone()));
    assert_eq!(
        through(&h, &bob, &Params::none(), &json!({})),
        Some(json!({"tools": []}))
    );
}

#[test]
fn list_changed_invalidates_and_resources_updated_only_its_uri() {
    let h = Harness::<Cache>::new(json!({"default_scope": "public"})).unwrap();
    let r = json!({"tools": []});
    through(&h, &list(), &Params::none(), &r);
    h.on_notification(&Notification::new("notifications/tools/list_changed").with_route("/mcp"));
    assert_eq!(through(&h, &list(), &Params::none(), &r), None);

    let read = |uri: &str| Context::new("resources/read").with_target(uri);
    let p = |uri: &str| Params::from_value(&json!({"uri": uri}));
    let a = json!({"contents": [{"uri": "a", "text": "1"}]});
    let b = json!({"contents": [{"uri": "b", "text": "2"}]});
    through(&h, &read("a"), &p("a"), &a);
    through(&h, &read("b"), &p("b"), &b);
    h.on_notification(
        &Notification::new("notifications/resources/updated")
            .with_route("/mcp")
            .with_params(&json!({"uri": "a"})),
    );
    assert_eq!(through(&h, &read("a"), &p("a"), &a), None);
    assert_eq!(through(&h, &read("b"), &p("b"), &b), Some(b.clone()));
}

#[test]
fn tool_calls_only_for_named_tools_keyed_by_canonical_arguments() {
    let h = Harness::<Cache>::new(json!({"tools": ["get-*"], "default_scope": "public"})).unwrap();
    let call = |tool: &str| Context::new("tools/call").with_target(tool);
    let p1 = Params::from_raw(
        r#"{"name":"get-sum","arguments":{"a":1,"b":2},"_meta":{"progressToken":1}}"#,
    );
    let p2 = Params::from_raw(r#"{"arguments":{"b":2,"a":1},"name":"get-sum"}"#);
    let r = json!({"content": [{"type": "text", "text": "3"}]});
    assert_eq!(through(&h, &call("get-sum"), &p1, &r), None);
    assert_eq!(through(&h, &call("get-sum"), &p2, &r), Some(r.clone()));
    assert_eq!(through(&h, &call("add"), &p2, &r), None);
    assert_eq!(through(&h, &call("add"), &p2, &r), None);
}

#[test]
fn interim_errors_and_zero_ttl_are_not_cached() {
    let h = Harness::<Cache>::new(json!({"tools": ["*"], "default_scope": "public"})).unwrap();
    let call = Context::new("tools/call").with_target("t");
    for r in [
        json!({"resultType": "input_required", "inputRequests": {}}),
        json!({"content": [], "isError": true}),
        json!({"tools": [], "ttlMs": 0}),
    ] {
        through(&h, &call, &Params::none(), &r);
        assert_eq!(through(&h, &call, &Params::none(), &r), None, "{r}");
    }
}

#[test]
fn the_upstream_ttl_is_bounded_by_the_maximum() {
    let h =
        Harness::<Cache>::new(json!({"max_ttl_seconds": 5, "default_scope": "public"})).unwrap();
    h.set_time(std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1000));
    let r = json!({"tools": [], "ttlMs": 60000});
    through(&h, &list(), &Params::none(), &r);
    h.advance(Duration::from_secs(4));
    assert!(through(&h, &list(), &Params::none(), &r).is_some());
    h.advance(Duration::from_secs(2));
    assert!(through(&h, &list(), &Params::none(), &r).is_none());
}
