//! `builtin:cache`: answers repeated reads from the gateway's key-value
//! store. See README.md.
//!
//! A cache key is the route, the method, a generation (bumped by change
//! notifications, so one `list_changed` invalidates every entry it concerns
//! at once) and a hash of the canonical params (keys sorted, `_meta`
//! dropped). A result the upstream marks `cacheScope: "private"` (or any
//! result, with `default_scope = "private"`) is stored under the principal
//! too, and only that principal's requests look there.

use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use switchyard_sdk::serde_json::{self, Value};
use switchyard_sdk::{
    Context, Description, Hooks, Notification, NotificationDecision, Outcome, Params, Plugin,
    RequestDecision, ResponseDecision, glob, kv, metrics, scratch,
};

/// The methods whose results may be cached.
const CACHEABLE: [&str; 6] = [
    "tools/list",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "tools/call",
];

/// The notifications that invalidate.
const INVALIDATING: [&str; 4] = [
    "notifications/tools/list_changed",
    "notifications/prompts/list_changed",
    "notifications/resources/list_changed",
    "notifications/resources/updated",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// TTL when the upstream gives none.
    #[serde(default = "sixty")]
    ttl_seconds: u64,
    /// Upper bound on any TTL, the upstream's `ttlMs` included.
    #[serde(default = "hour")]
    max_ttl_seconds: u64,
    /// Tools whose calls are cached (globs); none by default: a tool call
    /// may have effects.
    #[serde(default)]
    tools: Vec<String>,
    /// The scope of a result that does not say (`public` or `private`).
    #[serde(default = "private")]
    default_scope: String,
}

fn sixty() -> u64 {
    60
}

fn hour() -> u64 {
    3600
}

fn private() -> String {
    "private".into()
}

pub struct Cache {
    config: Config,
}

/// The invalidation family of a method or notification.
fn family(method: &str) -> &'static str {
    if method.contains("tools") {
        "tools"
    } else if method.contains("prompts") {
        "prompts"
    } else {
        "resources"
    }
}

fn generation(key: &str) -> i64 {
    kv::get(key)
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn family_gen_key(route: &str, family: &str) -> String {
    format!("gen|{route}|{family}")
}

fn uri_gen_key(route: &str, uri: &str) -> String {
    format!("gen|{route}|uri|{uri}")
}

/// Params with `_meta` dropped, keys sorted, hashed.
fn params_hash(params: &Params) -> String {
    let mut v = params.value().unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.remove("_meta");
    }
    let digest = Sha256::digest(v.to_string().as_bytes());
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

impl Cache {
    /// The key without its scope part, or none if this request is not cached.
    fn base_key(&self, ctx: &Context, params: &Params) -> Option<String> {
        if !CACHEABLE.contains(&ctx.method.as_str()) {
            return None;
        }
        if ctx.method == "tools/call"
            && !ctx
                .target
                .as_deref()
                .is_some_and(|t| glob::any(&self.config.tools, t))
        {
            return None;
        }
        let mut generations =
            generation(&family_gen_key(&ctx.route, family(&ctx.method))).to_string();
        if ctx.method == "resources/read"
            && let Some(uri) = ctx.target.as_deref()
        {
            generations = format!(
                "{generations}.{}",
                generation(&uri_gen_key(&ctx.route, uri))
            );
        }
        Some(format!(
            "c|{}|{}|{generations}|{}",
            ctx.route,
            ctx.method,
            params_hash(params)
        ))
    }

    fn ttl(&self, result: &Value) -> Option<Duration> {
        let max = Duration::from_secs(self.config.max_ttl_seconds);
        let ttl = match result.get("ttlMs").and_then(Value::as_u64) {
            Some(ms) => Duration::from_millis(ms),
            None => Duration::from_secs(self.config.ttl_seconds),
        };
        let ttl = ttl.min(max);
        (!ttl.is_zero()).then_some(ttl)
    }
}

fn private_key(base: &str, ctx: &Context) -> String {
    format!("{base}|p|{}", ctx.principal.as_deref().unwrap_or("-"))
}

fn public_key(base: &str) -> String {
    format!("{base}|public")
}

impl Plugin for Cache {
    const HOOKS: Hooks = Hooks::ALL;

    fn configure(config: Value) -> Result<Self, String> {
        let config: Config = serde_json::from_value(config).map_err(|e| format!("cache: {e}"))?;
        if !["public", "private"].contains(&config.default_scope.as_str()) {
            return Err(format!(
                "cache: default_scope must be `public` or `private`, not `{}`",
                config.default_scope
            ));
        }
        Ok(Cache { config })
    }

    fn describe(&self) -> Description {
        let mut d = Description::of::<Self>();
        d.methods = CACHEABLE
            .iter()
            .filter(|m| **m != "tools/call" || !self.config.tools.is_empty())
            .chain(INVALIDATING.iter())
            .map(|m| (*m).to_owned())
            .collect();
        d
    }

    fn on_request(&self, ctx: &Context, params: &Params) -> RequestDecision {
        let Some(base) = self.base_key(ctx, params) else {
            return RequestDecision::proceed();
        };
        let hit = kv::get(&private_key(&base, ctx)).or_else(|| kv::get(&public_key(&base)));
        if let Some(v) = hit.and_then(|b| serde_json::from_slice::<Value>(&b).ok()) {
            metrics::counter("cache_hits_total", 1, &[("method", &ctx.method)]);
            return RequestDecision::Respond(v);
        }
        metrics::counter("cache_misses_total", 1, &[("method", &ctx.method)]);
        scratch::set("key", base.as_bytes());
        RequestDecision::proceed()
    }

    fn on_response(&self, ctx: &Context, _params: &Params, outcome: &Outcome) -> ResponseDecision {
        let (Some(base), Some(raw)) = (
            scratch::get("key").and_then(|b| String::from_utf8(b).ok()),
            outcome.result_raw(),
        ) else {
            return ResponseDecision::Continue;
        };
        let Ok(result) = serde_json::from_str::<Value>(raw) else {
            return ResponseDecision::Continue;
        };
        // An interim answer (the client must say more) or a tool's own
        // failure is never an answer to repeat.
        if result.get("resultType").and_then(Value::as_str) == Some("input_required")
            || result.get("isError") == Some(&Value::Bool(true))
        {
            return ResponseDecision::Continue;
        }
        let Some(ttl) = self.ttl(&result) else {
            return ResponseDecision::Continue;
        };
        let scope = result
            .get("cacheScope")
            .and_then(Value::as_str)
            .unwrap_or(&self.config.default_scope);
        let key = if scope == "public" {
            public_key(&base)
        } else {
            private_key(&base, ctx)
        };
        kv::set(&key, raw.as_bytes(), Some(ttl));
        ResponseDecision::Continue
    }

    fn on_notification(&self, note: &Notification) -> NotificationDecision {
        let key = match (note.method.as_str(), note.params.value()) {
            ("notifications/resources/updated", Some(p)) => match p["uri"].as_str() {
                Some(uri) => uri_gen_key(&note.route, uri),
                None => family_gen_key(&note.route, "resources"),
            },
            (m, _) => family_gen_key(&note.route, family(m)),
        };
        // A failed increment (a corrupted generation) is replaced outright.
        if kv::increment(&key, 1, None).is_err() {
            kv::set(&key, b"1", None);
        }
        NotificationDecision::Continue
    }
}

switchyard_sdk::export!(Cache);

#[cfg(test)]
mod tests;
