//! The [`Plugin`] trait, the [`Hooks`] a plugin asks for, and the
//! [`Description`] it gives the gateway at load.

use std::fmt;
use std::ops::{BitOr, BitOrAssign};

use serde_json::Value;

use crate::context::Context;
use crate::decision::{NotificationDecision, RequestDecision, ResponseDecision};
use crate::message::{Notification, Outcome, Params};

/// A gateway policy: configured once per instance, then called for each
/// request, response and notification it asked for.
///
/// Only [`configure`](Plugin::configure) is required; every hook defaults to
/// letting the message through unchanged. The associated constants say what
/// the plugin wants to see and build the default
/// [`describe`](Plugin::describe); the gateway never calls a hook, nor passes a
/// header, that the description does not ask for.
///
/// A plugin keeps no state between calls: the gateway may run each call in a
/// fresh instance or reuse one for many. What must outlive a call goes in
/// [`kv`](crate::kv) (with a TTL); what passes from `on_request` to
/// `on_response` of one request goes in [`scratch`](crate::scratch).
///
/// ```
/// use switchyard_sdk::{Context, Hooks, Params, Plugin, Rejection, RequestDecision, codes};
///
/// /// Refuses tool calls to the tools named in `deny`.
/// struct DenyTools {
///     deny: Vec<String>,
/// }
///
/// impl Plugin for DenyTools {
///     const HOOKS: Hooks = Hooks::REQUEST;
///     const METHODS: &'static [&'static str] = &["tools/call"];
///
///     fn configure(config: serde_json::Value) -> Result<Self, String> {
///         let deny = serde_json::from_value(config["deny"].clone()).unwrap_or_default();
///         Ok(DenyTools { deny })
///     }
///
///     fn on_request(&self, ctx: &Context, _params: &Params) -> RequestDecision {
///         match &ctx.target {
///             Some(tool) if self.deny.contains(tool) => {
///                 Rejection::new(codes::INVALID_PARAMS, format!("tool `{tool}` is not allowed")).into()
///             }
///             _ => RequestDecision::proceed(),
///         }
///     }
/// }
/// # let p = DenyTools::configure(serde_json::json!({"deny": ["rm"]})).unwrap();
/// # let ctx = Context::new("tools/call").with_target("rm");
/// # assert!(matches!(p.on_request(&ctx, &Params::none()), RequestDecision::Reject(_)));
/// ```
pub trait Plugin: Sized + 'static {
    /// The hooks the gateway calls. Asking only for what the plugin uses
    /// saves the gateway a call per message.
    const HOOKS: Hooks = Hooks::ALL;

    /// The methods the plugin sees: exact names (`tools/call`) or prefixes
    /// ending in `*` (`tools/*`, `notifications/*`). Empty means every method.
    const METHODS: &'static [&'static str] = &[];

    /// The request headers the plugin wants in [`Context::headers`], in lower
    /// case (`authorization`, `x-api-key`). The gateway passes only these.
    const HEADERS: &'static [&'static str] = &[];

    /// Builds the plugin from its `config` table in the gateway's TOML, given
    /// as JSON (an empty object when none is configured).
    ///
    /// Called once per instance, before anything else, always with the same
    /// configuration. An error refuses the plugin's load and the gateway shows
    /// the message to the operator, so say which key is wrong and why.
    fn configure(config: Value) -> Result<Self, String>;

    /// Names the plugin and says what it wants to see; read once per load,
    /// after [`configure`](Plugin::configure).
    ///
    /// The default is [`Description::of::<Self>()`](Description::of): the
    /// crate's package name and version with [`HOOKS`](Plugin::HOOKS),
    /// [`METHODS`](Plugin::METHODS) and [`HEADERS`](Plugin::HEADERS).
    /// Override it when what the plugin sees depends on its configuration:
    ///
    /// ```
    /// # use switchyard_sdk::{Description, Plugin};
    /// struct ApiKey { header: String }
    ///
    /// impl Plugin for ApiKey {
    ///     fn configure(config: serde_json::Value) -> Result<Self, String> {
    ///         let header = config["header"].as_str().unwrap_or("x-api-key");
    ///         Ok(ApiKey { header: header.to_ascii_lowercase() })
    ///     }
    ///
    ///     fn describe(&self) -> Description {
    ///         let mut description = Description::of::<Self>();
    ///         description.headers.push(self.header.clone());
    ///         description
    ///     }
    /// }
    /// # let p = ApiKey::configure(serde_json::json!({"header": "X-Key"})).unwrap();
    /// # assert_eq!(p.describe().headers, ["x-key"]);
    /// ```
    fn describe(&self) -> Description {
        Description::of::<Self>()
    }

    /// A client request, before the upstream sees it. `params` are the
    /// request's params as left by earlier plugins.
    ///
    /// The default lets the request through unchanged.
    fn on_request(&self, ctx: &Context, params: &Params) -> RequestDecision {
        let _ = (ctx, params);
        RequestDecision::proceed()
    }

    /// The outcome of a request this plugin let through: a result or an
    /// error. `params` are the params the upstream was called with.
    ///
    /// The default passes the outcome on unchanged.
    fn on_response(&self, ctx: &Context, params: &Params, outcome: &Outcome) -> ResponseDecision {
        let _ = (ctx, params, outcome);
        ResponseDecision::Continue
    }

    /// A server→client notification about to be delivered on a route.
    ///
    /// The default delivers it unchanged.
    fn on_notification(&self, note: &Notification) -> NotificationDecision {
        let _ = note;
        NotificationDecision::Continue
    }
}

/// A set of hooks: which of [`Plugin`]'s hooks the gateway calls.
///
/// Combine with `|` at run time, or with [`union`](Hooks::union) in a
/// `const` (trait operators are not `const` in stable Rust):
///
/// ```
/// use switchyard_sdk::Hooks;
///
/// const MINE: Hooks = Hooks::REQUEST.union(Hooks::RESPONSE);
/// assert!(MINE.contains(Hooks::RESPONSE));
/// assert!(!MINE.contains(Hooks::NOTIFICATION));
/// assert_eq!(Hooks::REQUEST | Hooks::RESPONSE, MINE);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Hooks(u8);

impl Hooks {
    /// No hook: the plugin is loaded but never called.
    pub const NONE: Hooks = Hooks(0);
    /// [`Plugin::on_request`].
    pub const REQUEST: Hooks = Hooks(1);
    /// [`Plugin::on_response`].
    pub const RESPONSE: Hooks = Hooks(1 << 1);
    /// [`Plugin::on_notification`].
    pub const NOTIFICATION: Hooks = Hooks(1 << 2);
    /// Every hook.
    pub const ALL: Hooks = Hooks(0b111);

    /// The hooks in `self` or `other`.
    pub const fn union(self, other: Hooks) -> Hooks {
        Hooks(self.0 | other.0)
    }

    /// True if every hook in `other` is in `self`.
    pub const fn contains(self, other: Hooks) -> bool {
        self.0 & other.0 == other.0
    }

    /// True if no hook is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl BitOr for Hooks {
    type Output = Hooks;

    fn bitor(self, rhs: Hooks) -> Hooks {
        self.union(rhs)
    }
}

impl BitOrAssign for Hooks {
    fn bitor_assign(&mut self, rhs: Hooks) {
        *self = self.union(rhs);
    }
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (Hooks::REQUEST, "REQUEST"),
            (Hooks::RESPONSE, "RESPONSE"),
            (Hooks::NOTIFICATION, "NOTIFICATION"),
        ];
        let set: Vec<&str> = names
            .iter()
            .filter(|(hook, _)| self.contains(*hook))
            .map(|(_, name)| *name)
            .collect();
        if set.is_empty() {
            write!(f, "Hooks(NONE)")
        } else {
            write!(f, "Hooks({})", set.join(" | "))
        }
    }
}

/// What a plugin says about itself: its name and what it wants to see.
///
/// The gateway reads it once per load, after `configure`, and calls only the
/// listed [`hooks`](Description::hooks) for the listed
/// [`methods`](Description::methods), passing only the listed
/// [`headers`](Description::headers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Description {
    /// The plugin's name, for logs and errors.
    pub name: String,
    /// The plugin's own version (semver), for logs.
    pub version: String,
    /// Which hooks the gateway calls.
    pub hooks: Hooks,
    /// Exact method names or prefixes ending in `*`; empty means every method.
    pub methods: Vec<String>,
    /// Lower-case request header names the plugin wants in its context.
    pub headers: Vec<String>,
    /// Documents the gateway serves at `/.well-known/{name}{route}` for each
    /// route using this plugin (e.g. `oauth-protected-resource`).
    pub well_known: Vec<(String, Value)>,
}

impl Description {
    /// The description built from `P`'s constants, named after the package
    /// that exported the plugin.
    ///
    /// Inside a component the name and version are the plugin crate's
    /// `CARGO_PKG_NAME` and `CARGO_PKG_VERSION`, passed in by
    /// [`export!`](crate::export). In native tests they come from the same
    /// variables as `cargo test` sets them at run time (see
    /// [`Harness::with_package`](crate::testing::Harness::with_package)).
    pub fn of<P: Plugin>() -> Description {
        let (name, version) = package::current();
        Description {
            name,
            version,
            hooks: P::HOOKS,
            methods: P::METHODS.iter().map(|m| m.to_string()).collect(),
            headers: P::HEADERS.iter().map(|h| h.to_ascii_lowercase()).collect(),
            well_known: Vec::new(),
        }
    }

    /// True if the gateway calls this plugin for `method`: the method is
    /// listed exactly, matches a listed prefix ending in `*`, or no method is
    /// listed.
    ///
    /// ```
    /// # use switchyard_sdk::{Description, Hooks};
    /// let d = Description {
    ///     name: "p".into(), version: "1.0.0".into(), hooks: Hooks::ALL,
    ///     methods: vec!["tools/*".into(), "prompts/get".into()], headers: vec![],
    ///     well_known: vec![],
    /// };
    /// assert!(d.wants_method("tools/call"));
    /// assert!(d.wants_method("prompts/get"));
    /// assert!(!d.wants_method("prompts/list"));
    /// ```
    pub fn wants_method(&self, method: &str) -> bool {
        self.methods.is_empty()
            || self.methods.iter().any(|m| match m.strip_suffix('*') {
                Some(prefix) => method.starts_with(prefix),
                None => m == method,
            })
    }
}

/// Which package exported the plugin: its name and version feed the default
/// [`Description`].
pub(crate) mod package {
    /// The name and version used when nothing better is known.
    const FALLBACK: (&str, &str) = ("plugin", "0.0.0");

    #[cfg(target_arch = "wasm32")]
    std::thread_local! {
        static PACKAGE: std::cell::Cell<Option<(&'static str, &'static str)>> =
            const { std::cell::Cell::new(None) };
    }

    /// Records the exporting crate's name and version (the export macro
    /// passes its `CARGO_PKG_NAME` and `CARGO_PKG_VERSION`).
    #[cfg(target_arch = "wasm32")]
    pub(crate) fn set(name: &'static str, version: &'static str) {
        PACKAGE.with(|p| p.set(Some((name, version))));
    }

    /// The exporting crate's name and version.
    #[cfg(target_arch = "wasm32")]
    pub(crate) fn current() -> (String, String) {
        let (name, version) = PACKAGE.with(|p| p.get()).unwrap_or(FALLBACK);
        (name.to_string(), version.to_string())
    }

    /// The test harness's package (by default the one `cargo test` names in
    /// `CARGO_PKG_NAME` and `CARGO_PKG_VERSION` at run time).
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn current() -> (String, String) {
        crate::native::with(|backend| backend.package.clone())
    }

    /// The package named by the environment `cargo test` and `cargo run`
    /// set, or a placeholder.
    #[cfg(any(not(target_arch = "wasm32"), doc))]
    pub(crate) fn from_env() -> (String, String) {
        let var = |name: &str, fallback: &str| {
            std::env::var(name).unwrap_or_else(|_| fallback.to_string())
        };
        (
            var("CARGO_PKG_NAME", FALLBACK.0),
            var("CARGO_PKG_VERSION", FALLBACK.1),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_combine_and_contain() {
        let mut hooks = Hooks::NONE;
        assert!(hooks.is_empty());
        hooks |= Hooks::REQUEST;
        assert!(hooks.contains(Hooks::REQUEST));
        assert!(!hooks.contains(Hooks::RESPONSE));
        assert_eq!(
            Hooks::REQUEST | Hooks::RESPONSE | Hooks::NOTIFICATION,
            Hooks::ALL
        );
        assert!(Hooks::ALL.contains(Hooks::NONE));
        assert_eq!(
            format!("{:?}", Hooks::REQUEST | Hooks::NOTIFICATION),
            "Hooks(REQUEST | NOTIFICATION)"
        );
        assert_eq!(format!("{:?}", Hooks::NONE), "Hooks(NONE)");
    }

    #[test]
    fn wants_method_matches_exact_prefix_and_empty() {
        let mut d = Description {
            name: "p".into(),
            version: "0".into(),
            hooks: Hooks::ALL,
            methods: vec![],
            headers: vec![],
            well_known: vec![],
        };
        assert!(d.wants_method("anything"));
        d.methods = vec!["notifications/*".into(), "tools/call".into()];
        assert!(d.wants_method("notifications/tools/list_changed"));
        assert!(d.wants_method("tools/call"));
        assert!(!d.wants_method("tools/call2"));
        assert!(!d.wants_method("tools/list"));
        d.methods = vec!["*".into()];
        assert!(d.wants_method("ping"));
    }
}
