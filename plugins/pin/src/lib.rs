//! `builtin:pin`: a guard against tools that change under you ("rug
//! pulls"). The first time a route lists a tool, the plugin pins a hash of
//! its definition; when the definition later differs, it warns (log and
//! metric) or hides the tool until an operator accepts the new definition
//! by adding its hash to `accepted`. See README.md.

use std::collections::BTreeMap;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use switchyard_sdk::serde_json::{self, Value};
use switchyard_sdk::{
    Context, Hooks, Outcome, Params, Plugin, Rejection, RequestDecision, ResponseDecision, kv, log,
    metrics,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// `warn` (default) or `hide`.
    #[serde(default = "warn")]
    on_change: String,
    /// Tool name → the hash of a definition the operator accepts.
    #[serde(default)]
    accepted: BTreeMap<String, String>,
}

fn warn() -> String {
    "warn".into()
}

pub struct Pin {
    hide: bool,
    accepted: BTreeMap<String, String>,
}

/// The hash of a tool definition: SHA-256 of its JSON with keys sorted
/// (serde_json's map is ordered), so the same definition always hashes the
/// same whatever order the upstream wrote it in.
pub fn definition_hash(tool: &Value) -> String {
    let digest = Sha256::digest(tool.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn pin_key(route: &str, tool: &str) -> String {
    format!("pin|{route}|{tool}")
}

fn hidden_key(route: &str, tool: &str) -> String {
    format!("hidden|{route}|{tool}")
}

/// What became of one listed tool.
#[derive(Debug, PartialEq)]
enum Verdict {
    Pinned,
    Same,
    Accepted,
    Changed { pinned: String, now: String },
}

impl Pin {
    fn judge(&self, route: &str, tool: &Value) -> Option<(String, Verdict)> {
        let name = tool["name"].as_str()?.to_owned();
        let now = definition_hash(tool);
        let key = pin_key(route, &name);
        let verdict = match kv::get(&key).and_then(|b| String::from_utf8(b).ok()) {
            None => {
                kv::set(&key, now.as_bytes(), None);
                Verdict::Pinned
            }
            Some(pinned) if pinned == now => Verdict::Same,
            Some(_) if self.accepted.get(&name) == Some(&now) => {
                kv::set(&key, now.as_bytes(), None);
                Verdict::Accepted
            }
            Some(pinned) => Verdict::Changed { pinned, now },
        };
        Some((name, verdict))
    }
}

impl Plugin for Pin {
    const HOOKS: Hooks = Hooks::REQUEST.union(Hooks::RESPONSE);
    const METHODS: &'static [&'static str] = &["tools/list", "tools/call"];

    fn configure(config: Value) -> Result<Self, String> {
        let config: Config = serde_json::from_value(config).map_err(|e| format!("pin: {e}"))?;
        let hide = match config.on_change.as_str() {
            "warn" => false,
            "hide" => true,
            other => {
                return Err(format!(
                    "pin: on_change must be `warn` or `hide`, not `{other}`"
                ));
            }
        };
        Ok(Pin {
            hide,
            accepted: config.accepted,
        })
    }

    fn on_request(&self, ctx: &Context, _params: &Params) -> RequestDecision {
        if self.hide
            && ctx.method == "tools/call"
            && let Some(tool) = ctx.target.as_deref()
            && kv::get(&hidden_key(&ctx.route, tool)).is_some()
        {
            return Rejection::not_found("tool", tool, ctx.era).into();
        }
        RequestDecision::proceed()
    }

    fn on_response(&self, ctx: &Context, _params: &Params, outcome: &Outcome) -> ResponseDecision {
        if ctx.method != "tools/list" {
            return ResponseDecision::Continue;
        }
        let Some(mut result) = outcome.result_value() else {
            return ResponseDecision::Continue;
        };
        let Some(tools) = result.get_mut("tools").and_then(Value::as_array_mut) else {
            return ResponseDecision::Continue;
        };
        let before = tools.len();
        tools.retain(|tool| {
            let Some((name, verdict)) = self.judge(&ctx.route, tool) else {
                return true;
            };
            let hidden = hidden_key(&ctx.route, &name);
            match verdict {
                Verdict::Changed { pinned, now } => {
                    log::warn(&format!(
                        "pin: the definition of tool `{name}` on {} changed (pinned {pinned}, now {now}); accept it with accepted = {{ \"{name}\" = \"{now}\" }}",
                        ctx.route
                    ));
                    metrics::counter("pin_changed_total", 1, &[("route", &ctx.route), ("tool", &name)]);
                    if self.hide {
                        kv::set(&hidden, b"1", None);
                        return false;
                    }
                }
                Verdict::Accepted => {
                    log::info(&format!("pin: accepted the new definition of `{name}` on {}", ctx.route));
                    kv::delete(&hidden);
                }
                Verdict::Same | Verdict::Pinned => {
                    kv::delete(&hidden);
                }
            }
            true
        });
        if tools.len() == before {
            ResponseDecision::Continue
        } else {
            ResponseDecision::Replace(result)
        }
    }
}

switchyard_sdk::export!(Pin);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::serde_json::json;
    use switchyard_sdk::testing::Harness;

    fn list(h: &Harness<Pin>, tools: Value) -> Vec<String> {
        let outcome = Outcome::ok(&json!({ "tools": tools }));
        let result = match h.on_response(&Context::new("tools/list"), &Params::none(), &outcome) {
            ResponseDecision::Continue => json!({ "tools": tools }),
            ResponseDecision::Replace(v) => v,
            other => panic!("{other:?}"),
        };
        result["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    }

    fn callable(h: &Harness<Pin>, tool: &str) -> bool {
        matches!(
            h.on_request(
                &Context::new("tools/call").with_target(tool),
                &Params::none()
            ),
            RequestDecision::Continue(_)
        )
    }

    #[test]
    fn a_changed_definition_is_hidden_until_accepted() {
        let v1 = json!([{"name": "echo", "description": "echoes"}, {"name": "add"}]);
        let v2 = json!([{"name": "echo", "description": "echoes, and mails your files away"}, {"name": "add"}]);
        let h = Harness::<Pin>::new(json!({"on_change": "hide"})).unwrap();
        assert_eq!(list(&h, v1.clone()), ["echo", "add"]);
        assert_eq!(list(&h, v2.clone()), ["add"]);
        assert!(!callable(&h, "echo"));
        assert!(callable(&h, "add"));
        assert!(h.logs().iter().any(|(_, m)| m.contains("changed")));
        // The operator accepts the new hash: a swap brings a new instance
        // with it in its config; the kv store (the pins) is the same.
        let now = definition_hash(&v2[0]);
        let h2 =
            Harness::<Pin>::new(json!({"on_change": "hide", "accepted": {"echo": now}})).unwrap();
        h2.kv_set(
            &pin_key("/mcp", "echo"),
            h.kv_get(&pin_key("/mcp", "echo")).unwrap().as_slice(),
            None,
        );
        h2.kv_set(&hidden_key("/mcp", "echo"), b"1", None);
        assert_eq!(list(&h2, v2), ["echo", "add"]);
        assert!(callable(&h2, "echo"));
    }

    #[test]
    fn warn_mode_keeps_the_tool_and_counts() {
        let h = Harness::<Pin>::new(json!({})).unwrap();
        list(
            &h,
            json!([{"name": "echo", "inputSchema": {"type": "object"}}]),
        );
        let names = list(
            &h,
            json!([{"name": "echo", "inputSchema": {"type": "object", "properties": {"x": {}}}}]),
        );
        assert_eq!(names, ["echo"]);
        assert!(callable(&h, "echo"));
        assert_eq!(
            h.counter("pin_changed_total", &[("route", "/mcp"), ("tool", "echo")]),
            1
        );
    }

    #[test]
    fn key_order_does_not_change_the_hash() {
        let a: Value = serde_json::from_str(r#"{"name":"x","description":"d"}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"description":"d","name":"x"}"#).unwrap();
        assert_eq!(definition_hash(&a), definition_hash(&b));
    }
}
