use super::*;
use switchyard_sdk::serde_json::json;
use switchyard_sdk::testing::Harness;

fn config() -> Value {
    json!({"tools": {
        "echo": {"name": "say", "description": "Repeat a message", "title": "Say",
                 "hide": {"loud": false}, "inject": {"user": {"from": "principal"}, "team": {"from": "attribute:team"}, "limit": 5},
                 "annotations": {"readOnlyHint": true}},
    }, "prompts": {"greet": {"name": "hello"}}})
}

fn list() -> Value {
    json!({"tools": [
        {"name": "echo", "description": "Echoes", "inputSchema": {"type": "object",
            "properties": {"message": {"type": "string"}, "loud": {"type": "boolean"}, "user": {"type": "string"}},
            "required": ["message", "loud", "user"]}},
        {"name": "add", "inputSchema": {"type": "object"}},
    ]})
}

#[test]
fn lists_show_the_new_shape() {
    let h = Harness::<Rewrite>::new(config()).unwrap();
    let shown = match h.on_response(
        &Context::new("tools/list"),
        &Params::none(),
        &Outcome::ok(&list()),
    ) {
        ResponseDecision::Replace(v) => v,
        other => panic!("{other:?}"),
    };
    let say = &shown["tools"][0];
    assert_eq!(say["name"], "say");
    assert_eq!(say["title"], "Say");
    assert_eq!(say["description"], "Repeat a message");
    assert_eq!(
        say["inputSchema"]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["message", "user"]
    );
    assert_eq!(say["inputSchema"]["required"], json!(["message"]));
    assert_eq!(say["annotations"], json!({"readOnlyHint": true}));
    assert_eq!(shown["tools"][1], list()["tools"][1]);
}

#[test]
fn calls_map_back_with_hidden_and_injected_arguments() {
    let h = Harness::<Rewrite>::new(config()).unwrap();
    let ctx = Context::new("tools/call")
        .with_target("say")
        .with_principal("alice")
        .with_attribute("team", "blue");
    let params = Params::from_value(
        &json!({"name": "say", "arguments": {"message": "hi", "user": "mallory", "loud": true}}),
    );
    match h.on_request(&ctx, &params) {
        RequestDecision::Continue(c) => assert_eq!(
            c.params.unwrap(),
            json!({"name": "echo", "arguments": {"message": "hi", "user": "alice", "team": "blue", "loud": false, "limit": 5}})
        ),
        other => panic!("{other:?}"),
    }
    // The old name is gone; other tools pass untouched.
    let old = Context::new("tools/call").with_target("echo");
    assert!(matches!(
        h.on_request(&old, &Params::none()),
        RequestDecision::Reject(_)
    ));
    let add = Context::new("tools/call").with_target("add");
    match h.on_request(&add, &Params::none()) {
        RequestDecision::Continue(c) => assert!(c.params.is_none()),
        other => panic!("{other:?}"),
    }
    // Prompts too.
    let get = Context::new("prompts/get").with_target("hello");
    match h.on_request(&get, &Params::from_value(&json!({"name": "hello"}))) {
        RequestDecision::Continue(c) => assert_eq!(c.params.unwrap()["name"], "greet"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_configs_are_refused() {
    for bad in [
        json!({"tools": {"a": {"name": "x"}, "b": {"name": "x"}}}),
        json!({"tools": {"a": {"inject": {"p": {"from": "env:HOME"}}}}}),
        json!({"prompts": {"a": {"hide": {"p": 1}}}}),
        json!({"tools": {"a": {"rename": "x"}}}),
    ] {
        assert!(Harness::<Rewrite>::new(bad.clone()).is_err(), "{bad}");
    }
}
