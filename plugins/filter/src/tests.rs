use super::*;
use switchyard_sdk::Era;
use switchyard_sdk::serde_json::json;
use switchyard_sdk::testing::Harness;

fn call(tool: &str) -> Context {
    Context::new("tools/call").with_target(tool)
}

fn rejected(d: RequestDecision) -> Rejection {
    match d {
        RequestDecision::Reject(r) => r,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn denied_tools_are_absent_and_unknown() {
    let h = Harness::<Filter>::new(json!({"tools": {"deny": ["*delete*"]}})).unwrap();
    let r = rejected(h.on_request(&call("repo_delete"), &Params::none()));
    assert_eq!(r.error.code, codes::INVALID_PARAMS);
    assert_eq!(r.error.message, "unknown tool: repo_delete");
    assert!(matches!(
        h.on_request(&call("echo"), &Params::none()),
        RequestDecision::Continue(_)
    ));
    let list = Outcome::ok(&json!({"tools": [{"name": "echo"}, {"name": "repo_delete"}]}));
    match h.on_response(&Context::new("tools/list"), &Params::none(), &list) {
        ResponseDecision::Replace(v) => assert_eq!(v["tools"], json!([{"name": "echo"}])),
        other => panic!("{other:?}"),
    }
}

#[test]
fn allow_lists_and_resources_by_era() {
    let h = Harness::<Filter>::new(json!({"resources": {"allow": ["demo://*"]}})).unwrap();
    let read = |uri: &str, era| {
        Context::new("resources/read")
            .with_target(uri)
            .with_era(era)
    };
    assert!(matches!(
        h.on_request(&read("demo://readme", Era::Legacy), &Params::none()),
        RequestDecision::Continue(_)
    ));
    assert_eq!(
        rejected(h.on_request(&read("file:///etc/passwd", Era::Legacy), &Params::none()))
            .error
            .code,
        -32002
    );
    assert_eq!(
        rejected(h.on_request(&read("file:///etc/passwd", Era::Modern), &Params::none()))
            .error
            .code,
        codes::INVALID_PARAMS
    );
}

#[test]
fn argument_rules_match_named_and_nested_strings() {
    let h = Harness::<Filter>::new(json!({"arguments": [
        {"tool": "sql_*", "argument": "*", "deny": "(?i)drop\\s+table"},
        {"tool": "*", "argument": "path", "deny": "\\.\\."},
    ]}))
    .unwrap();
    let params = |v: Value| Params::from_value(&json!({"name": "x", "arguments": v}));
    let r = rejected(h.on_request(
        &call("sql_query"),
        &params(json!({"q": {"text": "please DROP  TABLE users"}})),
    ));
    assert!(r.error.message.contains("argument `q`"));
    assert!(matches!(
        h.on_request(&call("sql_query"), &params(json!({"q": "select 1"}))),
        RequestDecision::Continue(_)
    ));
    assert!(matches!(
        h.on_request(&call("read"), &params(json!({"path": "../../etc"}))),
        RequestDecision::Reject(_)
    ));
    assert!(matches!(
        h.on_request(&call("read"), &params(json!({"other": "../../etc"}))),
        RequestDecision::Continue(_)
    ));
}

#[test]
fn secrets_are_redacted_and_counted() {
    let h = Harness::<Filter>::new(json!({
        "builtin_redactions": true,
        "redact": [{"pattern": "secret-\\d+", "replacement": "[gone]"}],
    }))
    .unwrap();
    let text = "key sk-abcdefghijklmnopqrstuvwxyz0123 and AKIAABCDEFGHIJKLMNOP and secret-42\n-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----";
    let outcome = Outcome::ok(&json!({"content": [{"type": "text", "text": text}]}));
    match h.on_response(&call("x"), &Params::none(), &outcome) {
        ResponseDecision::Replace(v) => {
            let t = v["content"][0]["text"].as_str().unwrap();
            assert_eq!(
                t,
                "key [redacted api key] and [redacted aws key] and [gone]\n[redacted private key]"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        h.counter("filter_redactions_total", &[("method", "tools/call")]),
        4
    );
}

#[test]
fn oversized_responses_are_truncated_or_rejected() {
    let big = json!({"content": [{"type": "text", "text": "a".repeat(5000)}]});
    let h = Harness::<Filter>::new(json!({"max_response_bytes": 1000})).unwrap();
    match h.on_response(&call("x"), &Params::none(), &Outcome::ok(&big)) {
        ResponseDecision::Replace(v) => {
            assert!(v.to_string().len() <= 1000);
            assert!(
                v["content"][0]["text"]
                    .as_str()
                    .unwrap()
                    .contains("[truncated by the gateway")
            );
        }
        other => panic!("{other:?}"),
    }
    let h = Harness::<Filter>::new(json!({"max_response_bytes": 1000, "on_oversize": "reject"}))
        .unwrap();
    assert!(matches!(
        h.on_response(&call("x"), &Params::none(), &Outcome::ok(&big)),
        ResponseDecision::Reject(_)
    ));
    let small = json!({"content": [{"type": "text", "text": "ok"}]});
    assert!(matches!(
        h.on_response(&call("x"), &Params::none(), &Outcome::ok(&small)),
        ResponseDecision::Continue
    ));
}

#[test]
fn bad_configs_are_refused() {
    for bad in [
        json!({"arguments": [{"deny": "("}]}),
        json!({"redact": [{"pattern": "[z-a]"}]}),
        json!({"on_oversize": "explode"}),
        json!({"tools": {"block": ["x"]}}),
    ] {
        assert!(Harness::<Filter>::new(bad.clone()).is_err(), "{bad}");
    }
}

#[test]
fn arguments_are_checked_against_the_listed_schema() {
    let h = Harness::<Filter>::new(json!({"validate_arguments": true})).unwrap();
    let args = |v: Value| Params::from_value(&json!({"name": "add", "arguments": v}));
    // Before any list the schema is unknown: calls pass.
    assert!(matches!(
        h.on_request(&call("add"), &args(json!({"a": "x"}))),
        RequestDecision::Continue(_)
    ));
    let list = Outcome::ok(
        &json!({"tools": [{"name": "add", "inputSchema": {"type": "object",
        "properties": {"a": {"type": "number"}, "b": {"type": "number"}}, "required": ["a", "b"]}}]}),
    );
    h.on_response(&Context::new("tools/list"), &Params::none(), &list);
    assert!(matches!(
        h.on_request(&call("add"), &args(json!({"a": 1, "b": 2}))),
        RequestDecision::Continue(_)
    ));
    let r = rejected(h.on_request(&call("add"), &args(json!({"a": "1", "b": 2}))));
    assert_eq!(r.error.code, codes::INVALID_PARAMS);
    assert!(
        r.error.message.contains("`arguments.a` must be number"),
        "{}",
        r.error.message
    );
    let r = rejected(h.on_request(&call("add"), &args(json!({"a": 1}))));
    assert!(r.error.message.contains("`arguments.b` is required"));
}
