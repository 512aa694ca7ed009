//! Test fixture: misbehaves on purpose when a `tools/call` names the tool in
//! `trigger` (default `add`); every other request continues untouched.
//!
//! Config: `mode` is one of `loop` (never returns), `hog` (allocates until
//! stopped), `trap` (panics: `unreachable`), `garbage` (responds with text
//! that is not JSON), `non-object` (responds with a JSON string),
//! `bad-status` (rejects with HTTP status 999), `bad-header` (rejects with a
//! header name that is not one), `configure-fails` (refuses its config),
//! `response-trap` (traps in `on-response` instead).
//!
//! Written on wit-bindgen directly, not the SDK: the SDK's types cannot
//! express malformed output, which is the point here.
#![cfg(target_arch = "wasm32")]

use std::cell::RefCell;

wit_bindgen::generate!({
    world: "plugin",
    path: "../../../wit",
});

use exports::switchyard::plugin::handler::Guest;
use switchyard::plugin::types::{
    Context, Continuation, Description, Hooks, Notification, NotificationDecision, Rejection,
    RequestDecision, ResponseDecision, RpcError,
};

thread_local! {
    static CONFIG: RefCell<(String, String)> = RefCell::new((String::new(), "add".into()));
}

fn field(config: &str, key: &str) -> Option<String> {
    // A deliberately tiny parser for `"key": "value"`: this fixture avoids
    // serde so that it stays a few dozen lines.
    let pat = format!("\"{key}\"");
    let rest = &config[config.find(&pat)? + pat.len()..];
    let rest = &rest[rest.find('"')? + 1..];
    Some(rest[..rest.find('"')?].to_owned())
}

struct Hostile;

fn proceed() -> RequestDecision {
    RequestDecision::Continue(Continuation {
        params: None,
        principal: None,
        attributes: Vec::new(),
    })
}

fn misbehave(mode: &str) -> RequestDecision {
    match mode {
        "loop" => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "hog" => {
            let mut keep: Vec<Vec<u8>> = Vec::new();
            loop {
                keep.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&keep);
            }
        }
        "trap" => panic!("hostile: trap on purpose"),
        "garbage" => RequestDecision::Respond("{not json".into()),
        "non-object" => RequestDecision::Respond("\"just a string\"".into()),
        "bad-status" | "bad-header" => RequestDecision::Reject(Rejection {
            error: RpcError {
                code: -32000,
                message: "hostile".into(),
                data: None,
            },
            http_status: if mode == "bad-status" { 999 } else { 401 },
            headers: if mode == "bad-header" {
                vec![("bad header\n".into(), "x".into())]
            } else {
                Vec::new()
            },
        }),
        _ => proceed(),
    }
}

fn triggered(ctx: &Context) -> bool {
    CONFIG.with(|c| {
        ctx.method == "tools/call" && ctx.target.as_deref() == Some(c.borrow().1.as_str())
    })
}

impl Guest for Hostile {
    fn configure(config: String) -> Result<(), String> {
        let mode = field(&config, "mode").unwrap_or_default();
        if mode == "configure-fails" {
            return Err("hostile: this configuration is refused on purpose".into());
        }
        let trigger = field(&config, "trigger").unwrap_or_else(|| "add".into());
        CONFIG.with(|c| *c.borrow_mut() = (mode, trigger));
        Ok(())
    }

    fn describe() -> Description {
        Description {
            name: "hostile".into(),
            version: "0.1.0".into(),
            hooks: Hooks::ON_REQUEST | Hooks::ON_RESPONSE,
            methods: vec!["tools/call".into()],
            headers: Vec::new(),
            well_known: Vec::new(),
        }
    }

    fn on_request(ctx: Context, _params: Option<String>) -> RequestDecision {
        let mode = CONFIG.with(|c| c.borrow().0.clone());
        if !triggered(&ctx) || mode == "response-trap" {
            return proceed();
        }
        misbehave(&mode)
    }

    fn on_response(
        ctx: Context,
        _params: Option<String>,
        _outcome: Result<String, RpcError>,
    ) -> ResponseDecision {
        let mode = CONFIG.with(|c| c.borrow().0.clone());
        if triggered(&ctx) && mode == "response-trap" {
            panic!("hostile: trap in on-response on purpose");
        }
        ResponseDecision::Continue
    }

    fn on_notification(_note: Notification) -> NotificationDecision {
        NotificationDecision::Continue
    }
}

export!(Hostile);
