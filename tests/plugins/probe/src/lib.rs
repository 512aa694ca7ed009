//! Test fixture: every decision comes from the config; the plugin reports
//! what it saw. See `tests/e2e/plugins.rs` for how each key is used.
//!
//! Config keys (all optional):
//! - `tag`: this instance's mark in trails (default `probe`);
//! - `methods`, `headers`, `hooks` (`["request", "response", "notification"]`):
//!   what `describe` asks for;
//! - `request`: `noop` (continue at once: the benchmark's context-only
//!   plugin), `parse` (parse the params, then continue), `read-file` /
//!   `write-file` (respond with the outcome of reading / writing `path`),
//!   `env` (respond with the environment variable `name`), `continue` (default), `respond`, `reject`, `context`
//!   (respond with the context as JSON), `stats` (respond with the kv
//!   counters), `count` (increment `seen:{method}` with `increment`, then
//!   continue), `count-cas` (the same through compare-and-swap);
//! - `stats_target`: a tool name answered with the kv counters, before
//!   anything else;
//! - `only_target`: apply `request` only when the target is this name
//!   (other requests continue);
//! - `principal`, `attributes` (a table): set on continue;
//!   `principal_from_header`: the principal is this header's value (list it
//!   in `headers` too);
//! - `respond`: the result for `respond`;
//! - `reject`: `{code, message, status, headers}`;
//! - `rewrite`: a string that replaces `arguments.message` on continue;
//! - `response`: `continue` (default), `trail` (append `tag` and what the
//!   request phase left in scratch to the result's `trail` array), `replace`
//!   (with `replace`), `reject` (with `reject`);
//! - `notification`: `continue` (default), `drop`, `tag` (add
//!   `params.taggedBy`).
//!
//! Every request it sees appends `tag` to the attribute `trail`.

use serde_json::{Value, json};
use switchyard_sdk::{
    Context, Continuation, Description, Hooks, Notification, NotificationDecision, Outcome, Params,
    Plugin, Rejection, RequestDecision, ResponseDecision, kv, scratch,
};

/// Methods whose counters `stats` reports.
const COUNTED: [&str; 6] = [
    "tools/list",
    "tools/call",
    "prompts/list",
    "resources/list",
    "resources/read",
    "ping",
];

pub struct Probe {
    config: Value,
}

impl Probe {
    fn str(&self, key: &str) -> Option<&str> {
        self.config.get(key).and_then(Value::as_str)
    }

    fn tag(&self) -> &str {
        self.str("tag").unwrap_or("probe")
    }

    fn rejection(&self) -> Rejection {
        let r = &self.config["reject"];
        let mut rej = Rejection::new(
            r["code"].as_i64().unwrap_or(-32001) as i32,
            r["message"].as_str().unwrap_or("rejected by probe"),
        )
        .status(r["status"].as_u64().unwrap_or(200) as u16);
        if let Some(h) = r["headers"].as_object() {
            for (k, v) in h {
                rej = rej.header(k, v.as_str().unwrap_or_default());
            }
        }
        rej
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Responds with the `seen:{method}` counters.
fn stats() -> RequestDecision {
    let mut seen = serde_json::Map::new();
    for m in COUNTED {
        let n = kv::get(&format!("seen:{m}"))
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(0);
        seen.insert(m.to_owned(), n.into());
    }
    RequestDecision::respond(json!({
        "content": [{"type": "text", "text": Value::Object(seen.clone()).to_string()}],
        "seen": seen,
    }))
}

fn count_cas(key: &str) {
    loop {
        let current = kv::get(key);
        let n: i64 = current
            .as_deref()
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if kv::compare_and_swap(
            key,
            current.as_deref(),
            (n + 1).to_string().as_bytes(),
            None,
        ) {
            return;
        }
    }
}

impl Plugin for Probe {
    fn configure(config: Value) -> Result<Self, String> {
        Ok(Probe { config })
    }

    fn describe(&self) -> Description {
        let mut hooks = Hooks::NONE;
        let wanted = match self.config.get("hooks") {
            Some(h) => strings(h),
            None => vec!["request".into(), "response".into()],
        };
        for h in wanted {
            hooks |= match h.as_str() {
                "request" => Hooks::REQUEST,
                "response" => Hooks::RESPONSE,
                "notification" => Hooks::NOTIFICATION,
                _ => Hooks::NONE,
            };
        }
        Description {
            name: "probe".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            hooks,
            methods: strings(&self.config["methods"]),
            headers: strings(&self.config["headers"]),
            well_known: self.config["well_known"]
                .as_object()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
        }
    }

    fn on_request(&self, ctx: &Context, params: &Params) -> RequestDecision {
        // The benchmark's two baselines: look at the context only, or parse
        // the arguments as a real argument-checking policy would.
        match self.str("request") {
            Some("noop") => {
                return if ctx.target.as_deref() == Some("never") {
                    Rejection::new(-32000, "never").into()
                } else {
                    RequestDecision::proceed()
                };
            }
            // What the sandbox lets through: a file under a granted folder,
            // a write there, an environment variable.
            Some("read-file") => {
                let path = self.str("path").unwrap_or_default();
                let text = std::fs::read_to_string(path).unwrap_or_else(|e| format!("error: {e}"));
                return RequestDecision::respond(
                    json!({"content": [{"type": "text", "text": text}]}),
                );
            }
            Some("write-file") => {
                let path = self.str("path").unwrap_or_default();
                let text = match std::fs::write(path, "written") {
                    Ok(()) => "ok".to_owned(),
                    Err(e) => format!("error: {e}"),
                };
                return RequestDecision::respond(
                    json!({"content": [{"type": "text", "text": text}]}),
                );
            }
            Some("env") => {
                let name = self.str("name").unwrap_or_default();
                let text = std::env::var(name).unwrap_or_else(|_| "unset".into());
                return RequestDecision::respond(
                    json!({"content": [{"type": "text", "text": text}]}),
                );
            }
            Some("parse") => {
                let args = params
                    .value()
                    .map(|v| v["arguments"].as_object().map_or(0, |a| a.len()));
                return if args == Some(usize::MAX) {
                    Rejection::new(-32000, "impossible").into()
                } else {
                    RequestDecision::proceed()
                };
            }
            _ => {}
        }
        if self.str("stats_target").is_some() && ctx.target.as_deref() == self.str("stats_target") {
            return stats();
        }
        let trail = match ctx.attribute("trail") {
            Some(t) => format!("{t},{}", self.tag()),
            None => self.tag().to_owned(),
        };
        scratch::set("seen", format!("{}@{}", self.tag(), ctx.method).as_bytes());
        let mut next = Continuation::default().with_attribute("trail", trail.clone());
        let applies = match self.str("only_target") {
            Some(t) => ctx.target.as_deref() == Some(t),
            None => true,
        };
        let action = if applies {
            self.str("request").unwrap_or("continue")
        } else {
            "continue"
        };
        match action {
            "respond" => return RequestDecision::respond(&self.config["respond"]),
            "reject" => return self.rejection().into(),
            "context" => {
                let c = json!({
                    "request_id": ctx.request_id,
                    "route": ctx.route,
                    "upstream": ctx.upstream,
                    "method": ctx.method,
                    "target": ctx.target,
                    "principal": ctx.principal,
                    "attributes": ctx.attributes,
                    "headers": ctx.headers,
                    "client_address": ctx.client_address,
                    "era": format!("{:?}", ctx.era),
                    "protocol_version": ctx.protocol_version,
                    "trail": trail,
                });
                return RequestDecision::respond(json!({
                    "content": [{"type": "text", "text": c.to_string()}],
                    "context": c,
                }));
            }
            "stats" => return stats(),
            "count" => {
                if let Err(e) = kv::increment(&format!("seen:{}", ctx.method), 1, None) {
                    return Rejection::new(-32603, e).into();
                }
            }
            "count-cas" => count_cas(&format!("seen:{}", ctx.method)),
            _ => {}
        }
        if let Some(p) = self.str("principal") {
            next = next.with_principal(p);
        }
        if let Some(h) = self.str("principal_from_header")
            && let Some(p) = ctx.header(h)
        {
            next = next.with_principal(p);
        }
        if let Some(attrs) = self.config["attributes"].as_object() {
            for (k, v) in attrs {
                next = next.with_attribute(k, v.as_str().unwrap_or_default());
            }
        }
        if let Some(text) = self.str("rewrite")
            && let Some(mut p) = params.value()
        {
            p["arguments"]["message"] = text.into();
            next = next.with_params(p);
        }
        next.into()
    }

    fn on_response(&self, _ctx: &Context, _params: &Params, outcome: &Outcome) -> ResponseDecision {
        match self.str("response").unwrap_or("continue") {
            "trail" => {
                let Some(mut result) = outcome.result_value() else {
                    return ResponseDecision::Continue;
                };
                let seen = scratch::get("seen")
                    .and_then(|b| String::from_utf8(b).ok())
                    .unwrap_or_else(|| "-".into());
                let entry = format!("{}({seen})", self.tag());
                match result.get_mut("trail").and_then(Value::as_array_mut) {
                    Some(t) => t.push(entry.into()),
                    None => result["trail"] = json!([entry]),
                }
                ResponseDecision::Replace(result)
            }
            "replace" => ResponseDecision::Replace(self.config["replace"].clone()),
            "reject" => self.rejection().into(),
            _ => ResponseDecision::Continue,
        }
    }

    fn on_notification(&self, note: &Notification) -> NotificationDecision {
        match self.str("notification").unwrap_or("continue") {
            "drop" => NotificationDecision::Drop,
            "tag" => {
                let mut p = note.params.value().unwrap_or_else(|| json!({}));
                p["taggedBy"] = self.tag().into();
                NotificationDecision::Replace(p)
            }
            _ => NotificationDecision::Continue,
        }
    }
}

switchyard_sdk::export!(Probe);
