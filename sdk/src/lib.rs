//! Write Switchyard gateway policies (auth, rate limits, filters, rewrites,
//! caches) in Rust, compiled to WebAssembly components.
//!
//! # Overview
//!
//! A plugin is a type implementing [`Plugin`], exported with [`export!`]:
//!
//! - [`Plugin`] is built once per instance by
//!   [`configure`](Plugin::configure) from its TOML `config` table, says what
//!   it wants to see in a [`Description`] (its [`Hooks`], methods and
//!   headers), and has one method per hook, each defaulting to "let it
//!   through".
//! - A request hook receives a [`Context`] (method, target, principal,
//!   attributes, headers: the fields most policies need, already extracted)
//!   and the request's [`Params`] as raw JSON, parsed only if asked
//!   ([`mcp`] has typed views of both protocol eras). A response hook also
//!   receives the [`Outcome`]: a result, or an [`RpcError`].
//! - Hooks answer with a decision whose variants say what the gateway does
//!   next: [`RequestDecision`] (continue with a [`Continuation`], respond, or
//!   reject with a [`Rejection`]), [`ResponseDecision`] (continue, replace,
//!   reject) and [`NotificationDecision`] (continue, replace, drop).
//! - A plugin keeps no state between calls. State that outlives a call lives
//!   in the gateway's [`kv`] store (with a TTL); state passed from
//!   `on_request` to `on_response` lives in [`scratch`]. [`log`],
//!   [`metrics`] and [`clock`] complete the host services.
//! - [`testing::Harness`] runs a plugin natively, with in-memory host
//!   services and a controllable clock, so plugins are unit-tested with
//!   `cargo test`.
//!
//! # The smallest plugin
//!
//! ```
//! use switchyard_sdk::{Context, Params, Plugin, Rejection, RequestDecision, Value, codes, export};
//!
//! struct NoDelete;
//! impl Plugin for NoDelete {
//!     fn configure(_config: Value) -> Result<Self, String> {
//!         Ok(NoDelete)
//!     }
//!     fn on_request(&self, ctx: &Context, _params: &Params) -> RequestDecision {
//!         match ctx.target.as_deref() {
//!             Some("delete_everything") => Rejection::new(codes::INVALID_PARAMS, "tool disabled").into(),
//!             _ => RequestDecision::proceed(),
//!         }
//!     }
//! }
//! export!(NoDelete);
//! # let h = switchyard_sdk::testing::Harness::<NoDelete>::new(serde_json::json!({})).unwrap();
//! # let ctx = Context::new("tools/call").with_target("delete_everything");
//! # assert!(matches!(h.on_request(&ctx, &Params::none()), RequestDecision::Reject(_)));
//! ```
//!
//! The plugin crate is a `cdylib` depending on this one; build the component
//! with `cargo build --target wasm32-wasip2 --release` and point a
//! `[plugins.NAME]` entry of the gateway's configuration at the `.wasm`.
//! Natively (`cargo test`), [`export!`] only checks the type, and the host
//! services are the [`testing`] backend.
//!
//! # Layout
//!
//! | module | what it holds |
//! | --- | --- |
//! | `plugin` | [`Plugin`], [`Hooks`], [`Description`] |
//! | `context`, `message` | hook inputs: [`Context`], [`Era`], [`Params`], [`Outcome`], [`RpcError`], [`Notification`] |
//! | `decision` | hook outputs: the decisions, [`Continuation`], [`Rejection`] |
//! | [`kv`], [`scratch`], [`log`], [`metrics`], [`clock`] | host services (WIT imports in a component, the test backend natively) |
//! | [`mcp`] | typed MCP messages, both eras, lossless |
//! | [`testing`] | [`testing::Harness`] (native only) |
//! | `bindings`, `adapter` | hidden: the generated WIT bindings and the only code that converts to and from them (wasm only) |
//!
//! # Adding a hook
//!
//! 1. Declare it in `wit/handler.wit` (and its flag in `types.wit`'s `hooks`).
//! 2. The bindings regenerate on build; implement the new `Guest` method in
//!    [`export!`]'s expansion, calling a runner in `adapter`.
//! 3. Convert its arguments and decision in `adapter`.
//! 4. Add the [`Plugin`] method with a default that lets the message
//!    through, a [`Hooks`] constant, and its decision type.
//! 5. Add the [`testing::Harness`] method and test it; the gateway side
//!    needs the chain call and an end-to-end test.
#![warn(missing_docs)]

mod context;
mod decision;
mod message;
mod plugin;

pub mod clock;
pub mod fetch;
pub mod glob;
pub mod kv;
pub mod log;
pub mod mcp;
pub mod metrics;
pub mod scratch;

// Native only, but also documented when docs are built for wasm32 (a plugin
// crate whose default target is wasm32-wasip2).
#[cfg(any(not(target_arch = "wasm32"), doc))]
mod native;
#[cfg(any(not(target_arch = "wasm32"), doc))]
pub mod testing;

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
#[path = "adapter.rs"]
pub mod __private;

/// The generated WIT bindings (wasm only). Hidden: their types never appear
/// in the SDK's API, and they may change with any wit-bindgen release.
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "plugin",
        // `export!` invokes the generated export macro from the plugin's
        // crate, naming these bindings through `$crate`.
        pub_export_macro: true,
        export_macro_name: "__export_switchyard_plugin",
        default_bindings_module: "switchyard_sdk::bindings",
        // Plugin crates do not depend on wit-bindgen; the generated code
        // reaches its runtime through this crate.
        runtime_path: "crate::bindings::__rt",
    });

    pub use wit_bindgen::rt as __rt;
}

pub use context::{Context, Era};
pub use decision::{
    Continuation, NotificationDecision, Rejection, RequestDecision, ResponseDecision,
};
pub use message::{Notification, Outcome, Params, RpcError, codes};
pub use plugin::{Description, Hooks, Plugin};

/// The JSON value type of the plugin API, re-exported so that a plugin needs
/// no direct `serde_json` dependency for [`Plugin::configure`].
pub use serde_json::Value;

/// Re-exported for plugins that build or parse JSON (`json!`, `from_value`).
pub use serde_json;

/// Exports a [`Plugin`] type as the component's `handler`.
///
/// Invoke it once, at the top level of the plugin crate (a `cdylib`):
/// `export!(MyPlugin);`. The crate's `CARGO_PKG_NAME` and
/// `CARGO_PKG_VERSION` become the default [`Description`]'s name and
/// version.
///
/// On `wasm32` it expands to, in an anonymous `const` block:
///
/// 1. a `thread_local!` `RefCell<Option<MyPlugin>>` holding the instance
///    `configure` built (one per component instance; the gateway calls
///    `configure` first on every new instance);
/// 2. a hidden adapter type implementing the generated `Guest` trait of the
///    `handler` interface, each method converting the generated types to
///    the SDK's and calling the plugin. A hook called before `configure`
///    succeeded rejects with an internal error (a notification is dropped)
///    rather than panicking;
/// 3. wit-bindgen's export macro for that adapter, which emits the
///    component's exports.
///
/// Natively it expands to a check that the type implements [`Plugin`], so
/// `cargo test` and `cargo clippy` of a plugin crate work without a wasm
/// target.
///
/// ```
/// use switchyard_sdk::{Plugin, Value, export};
///
/// struct Noop;
/// impl Plugin for Noop {
///     fn configure(_: Value) -> Result<Self, String> {
///         Ok(Noop)
///     }
/// }
/// export!(Noop);
/// ```
#[macro_export]
macro_rules! export {
    ($plugin:ty $(,)?) => {
        $crate::__export_impl!($plugin);
    };
}

/// The native expansion of [`export!`]: a type check.
#[cfg(not(target_arch = "wasm32"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __export_impl {
    ($plugin:ty) => {
        const _: fn() = || {
            fn is_a_plugin<P: $crate::Plugin>() {}
            is_a_plugin::<$plugin>();
        };
    };
}

/// The component expansion of [`export!`].
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
#[macro_export]
macro_rules! __export_impl {
    ($plugin:ty) => {
        const _: () = {
            ::std::thread_local! {
                static __SWITCHYARD_PLUGIN: ::core::cell::RefCell<::core::option::Option<$plugin>> =
                    const { ::core::cell::RefCell::new(::core::option::Option::None) };
            }

            const __SWITCHYARD_NAME: &str = ::core::env!("CARGO_PKG_NAME");
            const __SWITCHYARD_VERSION: &str = ::core::env!("CARGO_PKG_VERSION");

            struct __SwitchyardAdapter;

            impl $crate::bindings::exports::switchyard::plugin::handler::Guest for __SwitchyardAdapter {
                fn configure(
                    config: $crate::__private::WitJson,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    $crate::__private::configure::<$plugin>(
                        &__SWITCHYARD_PLUGIN,
                        __SWITCHYARD_NAME,
                        __SWITCHYARD_VERSION,
                        config,
                    )
                }

                fn describe() -> $crate::__private::WitDescription {
                    $crate::__private::describe::<$plugin>(&__SWITCHYARD_PLUGIN, __SWITCHYARD_NAME, __SWITCHYARD_VERSION)
                }

                fn on_request(
                    ctx: $crate::__private::WitContext,
                    params: ::core::option::Option<$crate::__private::WitJson>,
                ) -> $crate::__private::WitRequestDecision {
                    $crate::__private::on_request::<$plugin>(&__SWITCHYARD_PLUGIN, ctx, params)
                }

                fn on_response(
                    ctx: $crate::__private::WitContext,
                    params: ::core::option::Option<$crate::__private::WitJson>,
                    outcome: ::core::result::Result<$crate::__private::WitJson, $crate::__private::WitRpcError>,
                ) -> $crate::__private::WitResponseDecision {
                    $crate::__private::on_response::<$plugin>(&__SWITCHYARD_PLUGIN, ctx, params, outcome)
                }

                fn on_notification(
                    note: $crate::__private::WitNotification,
                ) -> $crate::__private::WitNotificationDecision {
                    $crate::__private::on_notification::<$plugin>(&__SWITCHYARD_PLUGIN, note)
                }
            }

            $crate::bindings::__export_switchyard_plugin!(__SwitchyardAdapter with_types_in $crate::bindings);
        };
    };
}
