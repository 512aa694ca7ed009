//! `builtin:rate-limit`: token buckets, one per key, kept in the gateway's
//! key-value store (so a plugin swap loses no window, and gateways sharing a
//! store share limits). See README.md for every config key.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use serde::Deserialize;
use switchyard_sdk::serde_json::{self, Value, json};
use switchyard_sdk::{
    Context, Description, Hooks, Params, Plugin, Rejection, RequestDecision, clock, kv, metrics,
};

/// The JSON-RPC code of a refusal (implementation-defined server error).
const RATE_LIMITED: i32 = -32029;

/// One bucket's size and refill.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Bucket {
    pub capacity: f64,
    pub refill_per_second: f64,
}

/// The `config` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    capacity: f64,
    refill_per_second: f64,
    /// What a bucket is per: any of `principal`, `route`, `tool`, `client`.
    #[serde(default = "default_key")]
    key: Vec<String>,
    /// Buckets for principals with a role (the `roles` attribute an auth
    /// plugin sets, comma-separated); the largest capacity among a
    /// principal's roles wins.
    #[serde(default)]
    tiers: BTreeMap<String, Bucket>,
    /// Which methods are limited (exact or `prefix*`).
    #[serde(default = "default_methods")]
    methods: Vec<String>,
}

fn default_key() -> Vec<String> {
    vec!["principal".into()]
}

fn default_methods() -> Vec<String> {
    vec!["tools/call".into()]
}

pub struct RateLimit {
    config: Config,
}

impl RateLimit {
    /// The bucket size for this request: the default, or the best tier.
    fn bucket(&self, ctx: &Context) -> Bucket {
        let roles = ctx.attribute("roles").unwrap_or_default();
        roles
            .split(',')
            .filter_map(|r| self.config.tiers.get(r.trim()))
            .copied()
            .max_by(|a, b| a.capacity.total_cmp(&b.capacity))
            .unwrap_or(Bucket {
                capacity: self.config.capacity,
                refill_per_second: self.config.refill_per_second,
            })
    }

    /// The kv key of the bucket this request draws from.
    fn key(&self, ctx: &Context) -> String {
        let mut key = String::from("bucket");
        for part in &self.config.key {
            let value = match part.as_str() {
                "principal" => ctx.principal.as_deref().unwrap_or("-"),
                "route" => ctx.route.as_str(),
                "tool" => ctx.target.as_deref().unwrap_or("-"),
                // The address without its port: one client, many connections.
                "client" => ctx
                    .client_address
                    .as_deref()
                    .map(|a| a.rsplit_once(':').map_or(a, |(ip, _)| ip))
                    .unwrap_or("-"),
                _ => "-",
            };
            key.push('|');
            key.push_str(&value.replace('|', "||"));
        }
        key
    }
}

fn now_ms() -> f64 {
    clock::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
        * 1000.0
}

/// A bucket's state as stored: `tokens;last_refill_ms`.
fn parse_state(bytes: &[u8]) -> Option<(f64, f64)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let (tokens, at) = text.split_once(';')?;
    Some((tokens.parse().ok()?, at.parse().ok()?))
}

/// Takes one token; `Err(seconds)` says how long until one is there.
/// Compare-and-swap makes concurrent requests on the same bucket safe.
pub fn take(key: &str, bucket: Bucket) -> Result<(), f64> {
    // Long enough for an idle bucket to refill completely, then it may go.
    let ttl = Duration::from_secs_f64(
        (bucket.capacity / bucket.refill_per_second).clamp(1.0, 86_400.0) + 1.0,
    );
    loop {
        let now = now_ms();
        let stored = kv::get(key);
        let (tokens, at) = stored
            .as_deref()
            .and_then(parse_state)
            .unwrap_or((bucket.capacity, now));
        let refilled =
            (tokens + (now - at).max(0.0) / 1000.0 * bucket.refill_per_second).min(bucket.capacity);
        if refilled < 1.0 {
            return Err((1.0 - refilled) / bucket.refill_per_second);
        }
        let next = format!("{};{now}", refilled - 1.0);
        if kv::compare_and_swap(key, stored.as_deref(), next.as_bytes(), Some(ttl)) {
            return Ok(());
        }
    }
}

impl Plugin for RateLimit {
    const HOOKS: Hooks = Hooks::REQUEST;

    fn configure(config: Value) -> Result<Self, String> {
        let config: Config =
            serde_json::from_value(config).map_err(|e| format!("rate-limit: {e}"))?;
        let valid = |b: Bucket| b.capacity >= 1.0 && b.refill_per_second > 0.0;
        if !valid(Bucket {
            capacity: config.capacity,
            refill_per_second: config.refill_per_second,
        }) || !config.tiers.values().all(|b| valid(*b))
        {
            return Err(
                "rate-limit: capacity must be at least 1 and refill_per_second above 0".into(),
            );
        }
        if let Some(k) = config
            .key
            .iter()
            .find(|k| !["principal", "route", "tool", "client"].contains(&k.as_str()))
        {
            return Err(format!(
                "rate-limit: key part `{k}` is not one of principal, route, tool, client"
            ));
        }
        Ok(RateLimit { config })
    }

    fn describe(&self) -> Description {
        let mut d = Description::of::<Self>();
        d.methods = self.config.methods.clone();
        d
    }

    fn on_request(&self, ctx: &Context, _params: &Params) -> RequestDecision {
        match take(&self.key(ctx), self.bucket(ctx)) {
            Ok(()) => RequestDecision::proceed(),
            Err(wait) => {
                // Whole seconds, rounded up: a client that waits this long
                // finds a token.
                let retry = wait.ceil().max(1.0) as u64;
                metrics::counter("rate_limit_rejections_total", 1, &[("route", &ctx.route)]);
                Rejection::new(
                    RATE_LIMITED,
                    format!("rate limit exceeded; retry in {retry} s"),
                )
                .status(429)
                .header("retry-after", retry.to_string())
                .data(json!({"retryAfterSeconds": retry}))
                .into()
            }
        }
    }
}

switchyard_sdk::export!(RateLimit);

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;
    use switchyard_sdk::testing::Harness;

    fn harness(config: Value) -> Harness<RateLimit> {
        let h = Harness::new(config).unwrap();
        h.set_time(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000));
        h
    }

    fn call(h: &Harness<RateLimit>, ctx: &Context) -> Result<(), Rejection> {
        match h.on_request(ctx, &Params::none()) {
            RequestDecision::Continue(_) => Ok(()),
            RequestDecision::Reject(r) => Err(r),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_bucket_empties_refills_and_says_when() {
        let h = harness(json!({"capacity": 2, "refill_per_second": 0.5}));
        let ctx = Context::new("tools/call")
            .with_principal("alice")
            .with_target("echo");
        assert!(call(&h, &ctx).is_ok());
        assert!(call(&h, &ctx).is_ok());
        let r = call(&h, &ctx).unwrap_err();
        assert_eq!(r.http_status, 429);
        assert_eq!(r.headers, vec![("retry-after".to_owned(), "2".to_owned())]);
        assert_eq!(r.error.data, Some(json!({"retryAfterSeconds": 2})));
        h.advance(Duration::from_millis(1500));
        assert_eq!(call(&h, &ctx).unwrap_err().headers[0].1, "1");
        h.advance(Duration::from_millis(500));
        assert!(call(&h, &ctx).is_ok());
    }

    #[test]
    fn keys_separate_principals_and_tiers_raise_the_limit() {
        let h = harness(
            json!({"capacity": 1, "refill_per_second": 0.1, "key": ["principal", "tool"],
                               "tiers": {"admin": {"capacity": 3, "refill_per_second": 1}}}),
        );
        let alice = Context::new("tools/call")
            .with_principal("alice")
            .with_target("echo");
        let bob = Context::new("tools/call")
            .with_principal("bob")
            .with_target("echo");
        assert!(call(&h, &alice).is_ok());
        assert!(call(&h, &alice).is_err());
        assert!(call(&h, &bob).is_ok());
        assert!(call(&h, &alice.clone().with_target("add")).is_ok());
        let admin = Context::new("tools/call")
            .with_principal("root")
            .with_target("echo")
            .with_attribute("roles", "dev,admin");
        for _ in 0..3 {
            assert!(call(&h, &admin).is_ok());
        }
        assert!(call(&h, &admin).is_err());
    }

    #[test]
    fn bad_configs_are_refused() {
        for bad in [
            json!({"capacity": 0, "refill_per_second": 1}),
            json!({"capacity": 5, "refill_per_second": 0}),
            json!({"capacity": 5, "refill_per_second": 1, "key": ["ip"]}),
            json!({"capacity": 5}),
            json!({"capacity": 5, "refill_per_second": 1, "burst": 3}),
        ] {
            assert!(Harness::<RateLimit>::new(bad.clone()).is_err(), "{bad}");
        }
    }
}
