//! `stamp`: an example third-party plugin on the Switchyard SDK.
//!
//! - refuses `tools/call` for the tools in `blocked` (as if they did not
//!   exist: JSON-RPC -32602);
//! - stamps every tool result with how long the call took, in
//!   `_meta["example.com/elapsedMs"]` (the request hook notes the start time
//!   in the request's scratch space; the response hook reads it);
//! - counts calls per tool in the gateway's metrics
//!   (`switchyard_plugin_stamp_calls_total`).

use std::time::{Duration, UNIX_EPOCH};

use serde::Deserialize;
use switchyard_sdk::serde_json::{self, Value};
use switchyard_sdk::{
    Context, Hooks, Outcome, Params, Plugin, Rejection, RequestDecision, ResponseDecision, clock,
    codes, export, log, metrics, scratch,
};

/// The plugin's `config` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Tools nobody may call through this route.
    #[serde(default)]
    blocked: Vec<String>,
}

pub struct Stamp {
    config: Config,
}

fn now_micros() -> u64 {
    clock::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_micros() as u64
}

impl Plugin for Stamp {
    const HOOKS: Hooks = Hooks::REQUEST.union(Hooks::RESPONSE);
    const METHODS: &'static [&'static str] = &["tools/call"];

    fn configure(config: Value) -> Result<Self, String> {
        let config: Config =
            serde_json::from_value(config).map_err(|e| format!("stamp: bad config: {e}"))?;
        Ok(Stamp { config })
    }

    fn on_request(&self, ctx: &Context, _params: &Params) -> RequestDecision {
        let tool = ctx.target.as_deref().unwrap_or_default();
        if self.config.blocked.iter().any(|b| b == tool) {
            log::info(&format!("refused blocked tool {tool}"));
            return Rejection::new(codes::INVALID_PARAMS, format!("unknown tool: {tool}")).into();
        }
        metrics::counter("stamp_calls_total", 1, &[("tool", tool)]);
        scratch::set("started", &now_micros().to_le_bytes());
        RequestDecision::proceed()
    }

    fn on_response(&self, _ctx: &Context, _params: &Params, outcome: &Outcome) -> ResponseDecision {
        let (Some(mut result), Some(started)) = (outcome.result_value(), scratch::get("started"))
        else {
            return ResponseDecision::Continue;
        };
        let started = u64::from_le_bytes(started.try_into().unwrap_or_default());
        let elapsed_ms = now_micros().saturating_sub(started) as f64 / 1000.0;
        result["_meta"]["example.com/elapsedMs"] = elapsed_ms.into();
        ResponseDecision::Replace(result)
    }
}

export!(Stamp);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::serde_json::json;
    use switchyard_sdk::testing::Harness;

    #[test]
    fn blocked_tools_are_refused() {
        let h = Harness::<Stamp>::new(json!({"blocked": ["rm"]})).unwrap();
        let ctx = Context::new("tools/call").with_target("rm");
        assert!(matches!(
            h.on_request(&ctx, &Params::none()),
            RequestDecision::Reject(_)
        ));
    }

    #[test]
    fn results_are_stamped_with_the_elapsed_time() {
        let h = Harness::<Stamp>::new(json!({})).unwrap();
        // The harness clock stands still unless the test moves it.
        h.set_time(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        let ctx = Context::new("tools/call").with_target("echo");
        assert!(matches!(
            h.on_request(&ctx, &Params::none()),
            RequestDecision::Continue(_)
        ));
        h.advance(Duration::from_millis(25));
        let outcome = Outcome::ok(&json!({"content": []}));
        match h.on_response(&ctx, &Params::none(), &outcome) {
            ResponseDecision::Replace(r) => {
                assert_eq!(r["_meta"]["example.com/elapsedMs"], 25.0);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_unknown_config_key_is_refused() {
        assert!(Harness::<Stamp>::new(json!({"blokced": []})).is_err());
    }
}
