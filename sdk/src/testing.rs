//! Unit-test plugins natively, without a gateway or a WebAssembly runtime.
//! (Not compiled for `wasm32`: tests run on the build machine.)
//!
//! A [`Harness`] configures a plugin as the gateway would, then calls its
//! hooks with the harness's own backend installed: its key-value store, its
//! scratch space, its clock, and the log lines and metrics the plugin writes.
//! Two harnesses never share state, so one test can run two plugin instances
//! side by side.
//!
//! Like the gateway, the harness calls a hook only if the plugin's
//! [`Description`] asks for it and for the method, and passes only the
//! headers it lists; otherwise it returns what the gateway would do
//! (continue) without calling the plugin. Call the plugin directly through
//! [`Harness::plugin`] to bypass that.
//!
//! ```
//! use std::time::Duration;
//! use switchyard_sdk::testing::Harness;
//! use switchyard_sdk::{kv, Context, Hooks, Params, Plugin, Rejection, RequestDecision};
//!
//! /// At most `limit` calls per principal per minute.
//! struct RateLimit { limit: i64 }
//!
//! impl Plugin for RateLimit {
//!     const HOOKS: Hooks = Hooks::REQUEST;
//!     const METHODS: &'static [&'static str] = &["tools/call"];
//!
//!     fn configure(config: serde_json::Value) -> Result<Self, String> {
//!         let limit = config["limit"].as_i64().ok_or("`limit` must be an integer")?;
//!         Ok(RateLimit { limit })
//!     }
//!
//!     fn on_request(&self, ctx: &Context, _: &Params) -> RequestDecision {
//!         let key = format!("calls:{}", ctx.principal.as_deref().unwrap_or("anonymous"));
//!         match kv::increment(&key, 1, Some(Duration::from_secs(60))) {
//!             Ok(n) if n <= self.limit => RequestDecision::proceed(),
//!             _ => Rejection::new(-32000, "rate limit exceeded").status(429).into(),
//!         }
//!     }
//! }
//!
//! let h = Harness::<RateLimit>::new(serde_json::json!({"limit": 1})).unwrap();
//! let ctx = Context::new("tools/call").with_principal("alice");
//! assert!(matches!(h.on_request(&ctx, &Params::none()), RequestDecision::Continue(_)));
//! assert!(matches!(h.on_request(&ctx, &Params::none()), RequestDecision::Reject(_)));
//! h.advance(Duration::from_secs(60));
//! assert!(matches!(h.on_request(&ctx, &Params::none()), RequestDecision::Continue(_)));
//! // Not a method it asked for: the plugin is not called.
//! assert!(matches!(h.on_request(&Context::new("tools/list"), &Params::none()), RequestDecision::Continue(_)));
//! ```

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::context::Context;
use crate::decision::{NotificationDecision, RequestDecision, ResponseDecision};
use crate::log::Level;
use crate::message::{Notification, Outcome, Params};
use crate::native::{self, Backend};
use crate::plugin::{Description, Hooks, Plugin};

/// A metric's labels as the harness reports them: (name, value), sorted.
pub type Labels = Vec<(String, String)>;

/// One log line a plugin wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRecord {
    /// Its level.
    pub level: Level,
    /// Its message.
    pub message: String,
    /// Its structured fields, in the order given.
    pub fields: Vec<(String, String)>,
}

/// A configured plugin with its own in-memory gateway services.
///
/// Every method that runs plugin code (hooks, [`describe`](Harness::describe),
/// [`run`](Harness::run)) installs this harness's backend for the duration,
/// on the calling thread.
pub struct Harness<P: Plugin> {
    plugin: P,
    description: Description,
    backend: Rc<RefCell<Backend>>,
}

impl<P: Plugin> Harness<P> {
    /// Configures `P` with `config` (the `config` table as JSON; pass
    /// `json!({})` for none) and reads its description, as the gateway does
    /// at load. An error is `configure`'s.
    pub fn new(config: Value) -> Result<Harness<P>, String> {
        let backend = Rc::new(RefCell::new(Backend::new()));
        let (plugin, description) = {
            let _installed = native::install(&backend);
            let plugin = P::configure(config)?;
            let description = plugin.describe();
            (plugin, description)
        };
        Ok(Harness {
            plugin,
            description,
            backend,
        })
    }

    /// Sets the package name and version the default description reports
    /// (by default `CARGO_PKG_NAME` and `CARGO_PKG_VERSION` as `cargo test`
    /// sets them at run time), and reads the description again.
    pub fn with_package(mut self, name: &str, version: &str) -> Harness<P> {
        self.backend.borrow_mut().package = (name.to_string(), version.to_string());
        self.description = self.run(|plugin| plugin.describe());
        self
    }

    /// The configured plugin, to call directly (bypassing the description's
    /// filters) or to inspect.
    pub fn plugin(&self) -> &P {
        &self.plugin
    }

    /// The description the plugin gave after `configure`.
    pub fn describe(&self) -> Description {
        self.description.clone()
    }

    /// Runs `f` on the plugin with this harness's backend installed: what
    /// `f` does through [`kv`](crate::kv), [`scratch`](crate::scratch),
    /// [`log`](crate::log), [`metrics`](crate::metrics) and
    /// [`clock`](crate::clock) lands here.
    pub fn run<R>(&self, f: impl FnOnce(&P) -> R) -> R {
        let _installed = native::install(&self.backend);
        f(&self.plugin)
    }

    /// Calls `on_request` as the gateway would: only if the description asks
    /// for the hook and the method, with only the headers it lists.
    pub fn on_request(&self, ctx: &Context, params: &Params) -> RequestDecision {
        if !self.wants(Hooks::REQUEST, &ctx.method) {
            return RequestDecision::proceed();
        }
        let ctx = self.visible(ctx);
        self.run(|plugin| plugin.on_request(&ctx, params))
    }

    /// Calls `on_response` as the gateway would (see
    /// [`on_request`](Harness::on_request)).
    pub fn on_response(
        &self,
        ctx: &Context,
        params: &Params,
        outcome: &Outcome,
    ) -> ResponseDecision {
        if !self.wants(Hooks::RESPONSE, &ctx.method) {
            return ResponseDecision::Continue;
        }
        let ctx = self.visible(ctx);
        self.run(|plugin| plugin.on_response(&ctx, params, outcome))
    }

    /// Calls `on_notification` as the gateway would: only if the description
    /// asks for the hook and the notification's method.
    pub fn on_notification(&self, note: &Notification) -> NotificationDecision {
        if !self.wants(Hooks::NOTIFICATION, &note.method) {
            return NotificationDecision::Continue;
        }
        self.run(|plugin| plugin.on_notification(note))
    }

    /// Fixes the plugin's clock at `time`.
    pub fn set_time(&self, time: SystemTime) {
        self.backend.borrow_mut().clock = Some(time);
    }

    /// Moves the plugin's clock forward by `by` (from the real time, the
    /// first time, and fixed after).
    pub fn advance(&self, by: Duration) {
        let mut backend = self.backend.borrow_mut();
        backend.clock = Some(backend.now() + by);
    }

    /// The plugin's current time.
    pub fn now(&self) -> SystemTime {
        self.backend.borrow().now()
    }

    /// The value the plugin's key-value store holds under `key`, if live.
    pub fn kv_get(&self, key: &str) -> Option<Vec<u8>> {
        self.backend.borrow_mut().kv_get(key)
    }

    /// Stores a value as if the plugin had (to seed a test).
    pub fn kv_set(&self, key: &str, value: &[u8], ttl: Option<Duration>) {
        self.run(|_| crate::kv::set(key, value, ttl))
    }

    /// What [`fetch::get`](crate::fetch::get) answers for `url` from now on
    /// (a body, or an error such as an HTTP status).
    ///
    /// ```
    /// # use switchyard_sdk::{Context, Params, Plugin, RequestDecision, Value, fetch};
    /// # struct P;
    /// # impl Plugin for P {
    /// #     fn configure(_: Value) -> Result<Self, String> { Ok(P) }
    /// # }
    /// let h = switchyard_sdk::testing::Harness::<P>::new(serde_json::json!({})).unwrap();
    /// h.set_fetch("https://idp.test/jwks.json", Ok(r#"{"keys":[]}"#.into()));
    /// assert_eq!(h.run(|_| fetch::get("https://idp.test/jwks.json")).unwrap(), r#"{"keys":[]}"#);
    /// ```
    pub fn set_fetch(&self, url: &str, answer: Result<String, String>) {
        self.backend
            .borrow_mut()
            .fetches
            .insert(url.to_owned(), answer);
    }

    /// The value the current request's scratch space holds under `key`.
    pub fn scratch_get(&self, key: &str) -> Option<Vec<u8>> {
        self.backend.borrow().scratch.get(key).cloned()
    }

    /// Empties the scratch space, as the gateway does when a request ends:
    /// call it between one request's hooks and the next request's.
    pub fn clear_scratch(&self) {
        self.backend.borrow_mut().scratch.clear();
    }

    /// The log lines written so far: level and message.
    pub fn logs(&self) -> Vec<(Level, String)> {
        let backend = self.backend.borrow();
        backend
            .logs
            .iter()
            .map(|r| (r.level, r.message.clone()))
            .collect()
    }

    /// The log lines written so far, with their fields.
    pub fn log_records(&self) -> Vec<LogRecord> {
        self.backend.borrow().logs.clone()
    }

    /// Every counter series written so far: name, labels (sorted) and total.
    pub fn counters(&self) -> Vec<(String, Labels, u64)> {
        let backend = self.backend.borrow();
        backend
            .counters
            .iter()
            .map(|((name, labels), total)| (name.clone(), labels.clone(), *total))
            .collect()
    }

    /// The total of counter `name` with exactly these labels (in any order);
    /// 0 if never written.
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let backend = self.backend.borrow();
        backend
            .counters
            .get(&native::series(name, labels))
            .copied()
            .unwrap_or(0)
    }

    /// The values recorded in histogram `name` with exactly these labels, in
    /// order.
    pub fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        let backend = self.backend.borrow();
        backend
            .histograms
            .get(&native::series(name, labels))
            .cloned()
            .unwrap_or_default()
    }

    /// True if the gateway would call `hook` for `method`.
    fn wants(&self, hook: Hooks, method: &str) -> bool {
        self.description.hooks.contains(hook) && self.description.wants_method(method)
    }

    /// `ctx` as the gateway would pass it: only the headers the plugin asked
    /// for, names lower case.
    fn visible(&self, ctx: &Context) -> Context {
        let mut ctx = ctx.clone();
        ctx.headers.retain(|(name, _)| {
            self.description
                .headers
                .iter()
                .any(|wanted| wanted.eq_ignore_ascii_case(name))
        });
        for (name, _) in &mut ctx.headers {
            name.make_ascii_lowercase();
        }
        ctx
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::RpcError;
    use crate::message::codes;
    use crate::{Rejection, clock, kv, log, metrics, scratch};
    use serde_json::json;

    /// Checks an API key header against `keys`, names the principal, counts
    /// and times calls, and hides errors' data.
    struct KeyCheck {
        keys: Vec<String>,
    }

    impl Plugin for KeyCheck {
        const HOOKS: Hooks = Hooks::REQUEST.union(Hooks::RESPONSE);
        const METHODS: &'static [&'static str] = &["tools/*"];
        const HEADERS: &'static [&'static str] = &["x-api-key"];

        fn configure(config: Value) -> Result<Self, String> {
            let keys = serde_json::from_value(config["keys"].clone())
                .map_err(|e| format!("`keys`: {e}"))?;
            Ok(KeyCheck { keys })
        }

        fn on_request(&self, ctx: &Context, _params: &Params) -> RequestDecision {
            match ctx.header("x-api-key") {
                Some(key) if self.keys.iter().any(|k| k == key) => {
                    metrics::counter("accepted_total", 1, &[("method", &ctx.method)]);
                    let started = clock::now()
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .unwrap()
                        .as_millis();
                    scratch::set("started", started.to_string().as_bytes());
                    kv::increment(&format!("uses:{key}"), 1, None).unwrap();
                    crate::Continuation::new().with_principal(key).into()
                }
                _ => {
                    log::log(log::Level::Warn, "bad key", &[("method", &ctx.method)]);
                    Rejection::new(codes::INVALID_REQUEST, "missing or unknown API key")
                        .status(401)
                        .into()
                }
            }
        }

        fn on_response(
            &self,
            _ctx: &Context,
            _params: &Params,
            outcome: &Outcome,
        ) -> ResponseDecision {
            let started: u128 = String::from_utf8(scratch::get("started").unwrap())
                .unwrap()
                .parse()
                .unwrap();
            let now = clock::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_millis();
            metrics::histogram("latency_ms", (now - started) as f64, &[]);
            match outcome.error() {
                Some(e) if e.data.is_some() => {
                    ResponseDecision::Reject(Rejection::new(e.code, e.message.clone()))
                }
                _ => ResponseDecision::Continue,
            }
        }
    }

    fn key_check() -> Harness<KeyCheck> {
        Harness::new(json!({"keys": ["k1", "k2"]})).unwrap()
    }

    #[test]
    fn configure_errors_surface() {
        let err = Harness::<KeyCheck>::new(json!({"keys": "nope"}))
            .err()
            .unwrap();
        assert!(err.starts_with("`keys`:"), "{err}");
    }

    #[test]
    fn describe_reports_constants_and_package() {
        let h = key_check();
        let d = h.describe();
        let expected = std::env::var("CARGO_PKG_NAME").unwrap_or_else(|_| "plugin".into());
        assert_eq!(d.name, expected, "CARGO_PKG_NAME at run time");
        assert_eq!(d.hooks, Hooks::REQUEST | Hooks::RESPONSE);
        assert_eq!(d.methods, ["tools/*"]);
        assert_eq!(d.headers, ["x-api-key"]);
        let d = h.with_package("key-check", "1.2.3").describe();
        assert_eq!(
            (d.name.as_str(), d.version.as_str()),
            ("key-check", "1.2.3")
        );
    }

    #[test]
    fn a_plugin_driven_through_the_harness() {
        let h = key_check();
        h.set_time(SystemTime::UNIX_EPOCH + Duration::from_secs(100));
        let ctx = Context::new("tools/call").with_target("search");

        // No key: rejected with 401, a warning logged.
        let RequestDecision::Reject(r) = h.on_request(&ctx, &Params::none()) else {
            panic!("expected a rejection")
        };
        assert_eq!((r.http_status, r.error.code), (401, codes::INVALID_REQUEST));
        assert_eq!(h.logs(), [(Level::Warn, "bad key".to_string())]);
        assert_eq!(
            h.log_records()[0].fields,
            [("method".to_string(), "tools/call".to_string())]
        );

        // A good key: continues as that principal; state lands in the harness.
        let ctx = ctx.with_header("X-Api-Key", "k1");
        let RequestDecision::Continue(c) = h.on_request(&ctx, &Params::none()) else {
            panic!("expected to continue")
        };
        assert_eq!(c.principal.as_deref(), Some("k1"));
        assert_eq!(h.kv_get("uses:k1").as_deref(), Some(&b"1"[..]));
        assert_eq!(h.scratch_get("started").as_deref(), Some(&b"100000"[..]));
        assert_eq!(h.counter("accepted_total", &[("method", "tools/call")]), 1);
        assert_eq!(
            h.counters(),
            [(
                "accepted_total".to_string(),
                vec![("method".to_string(), "tools/call".to_string())],
                1
            )]
        );

        // The response of the same request reads the scratch space.
        h.advance(Duration::from_millis(250));
        let outcome =
            Outcome::Error(RpcError::new(codes::INTERNAL_ERROR, "boom").with_data(json!("secret")));
        let ResponseDecision::Reject(r) = h.on_response(&ctx, &Params::none(), &outcome) else {
            panic!("expected the error to be replaced")
        };
        assert_eq!(r.error.data, None);
        assert_eq!(h.histogram("latency_ms", &[]), [250.0]);
        assert_eq!(
            h.on_response(&ctx, &Params::none(), &Outcome::ok(&json!({}))),
            ResponseDecision::Continue
        );

        h.clear_scratch();
        assert_eq!(h.scratch_get("started"), None);
    }

    #[test]
    fn the_harness_filters_like_the_gateway() {
        let h = key_check();
        // A method the plugin did not ask for: not called, so no rejection.
        let ctx = Context::new("prompts/get");
        assert_eq!(
            h.on_request(&ctx, &Params::none()),
            RequestDecision::proceed()
        );
        // A hook it did not ask for.
        let note = Notification::new("notifications/tools/list_changed");
        assert_eq!(h.on_notification(&note), NotificationDecision::Continue);
        assert!(h.logs().is_empty());

        // A header it did not ask for never reaches it.
        struct Echo;
        impl Plugin for Echo {
            const HEADERS: &'static [&'static str] = &["Authorization"];
            fn configure(_: Value) -> Result<Self, String> {
                Ok(Echo)
            }
            fn on_request(&self, ctx: &Context, _: &Params) -> RequestDecision {
                RequestDecision::respond(&ctx.headers)
            }
        }
        let h = Harness::<Echo>::new(json!({})).unwrap();
        let ctx = Context::new("ping")
            .with_header("authorization", "Bearer t")
            .with_header("cookie", "c");
        assert_eq!(
            h.on_request(&ctx, &Params::none()),
            RequestDecision::Respond(json!([["authorization", "Bearer t"]]))
        );
        // Calling the plugin directly bypasses the filter.
        assert_eq!(
            h.plugin().on_request(&ctx, &Params::none()),
            RequestDecision::Respond(json!([["authorization", "Bearer t"], ["cookie", "c"]]))
        );
    }

    #[test]
    fn harnesses_are_isolated() {
        let a = key_check();
        let b = key_check();
        let ctx = Context::new("tools/call").with_header("x-api-key", "k2");
        a.on_request(&ctx, &Params::none());
        a.on_request(&ctx, &Params::none());
        b.on_request(&ctx, &Params::none());
        assert_eq!(a.kv_get("uses:k2").as_deref(), Some(&b"2"[..]));
        assert_eq!(b.kv_get("uses:k2").as_deref(), Some(&b"1"[..]));
        assert_eq!(a.counter("accepted_total", &[("method", "tools/call")]), 2);
        assert_eq!(b.counter("accepted_total", &[("method", "tools/call")]), 1);

        // Clocks are separate too, and nothing leaks to the thread's default
        // backend once a hook returns.
        a.set_time(SystemTime::UNIX_EPOCH);
        assert!(b.now() > SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000));
        assert_eq!(kv::get("uses:k2"), None);
        a.kv_set("shared?", b"no", None);
        assert_eq!(b.kv_get("shared?"), None);
    }

    #[test]
    fn nested_runs_restore_the_outer_backend() {
        let a = key_check();
        let b = key_check();
        a.run(|_| {
            kv::set("x", b"a", None);
            b.run(|_| kv::set("x", b"b", None));
            assert_eq!(kv::get("x").as_deref(), Some(&b"a"[..]));
        });
        assert_eq!(b.kv_get("x").as_deref(), Some(&b"b"[..]));
    }
}
