//! The one place generated bindings meet SDK types: conversions both ways,
//! and the hook runners the [`export!`](crate::export) expansion calls.
//!
//! Everything here is `#[doc(hidden)]` support for the macro; nothing in it
//! is part of the SDK's API.

use std::cell::RefCell;
use std::thread::LocalKey;

use serde_json::Value;

use crate::bindings::switchyard::plugin::types as wit;
use crate::context::{Context, Era};
use crate::decision::{
    Continuation, NotificationDecision, Rejection, RequestDecision, ResponseDecision,
};
use crate::message::{Notification, Outcome, Params, RpcError, codes};
use crate::plugin::{Description, Hooks, Plugin, package};

pub use wit::{
    Context as WitContext, Description as WitDescription, Json as WitJson,
    Notification as WitNotification, NotificationDecision as WitNotificationDecision,
    RequestDecision as WitRequestDecision, ResponseDecision as WitResponseDecision,
    RpcError as WitRpcError,
};

/// Where the export macro keeps the configured plugin: one per instance.
pub type Slot<P> = LocalKey<RefCell<Option<P>>>;

/// `configure`: parses the JSON, builds the plugin, stores it.
pub fn configure<P: Plugin>(
    slot: &'static Slot<P>,
    name: &'static str,
    version: &'static str,
    config: String,
) -> Result<(), String> {
    package::set(name, version);
    let config: Value = serde_json::from_str(&config)
        .map_err(|e| format!("the plugin's configuration is not valid JSON: {e}"))?;
    let plugin = P::configure(config)?;
    slot.with(|cell| *cell.borrow_mut() = Some(plugin));
    Ok(())
}

/// `describe`: the configured plugin's description, or (called before
/// `configure`, which the gateway never does) the one its constants give.
pub fn describe<P: Plugin>(
    slot: &'static Slot<P>,
    name: &'static str,
    version: &'static str,
) -> WitDescription {
    package::set(name, version);
    let description = slot.with(|cell| match &*cell.borrow() {
        Some(plugin) => plugin.describe(),
        None => Description::of::<P>(),
    });
    description_into(description)
}

/// `on-request`: a rejection if the plugin is not configured.
pub fn on_request<P: Plugin>(
    slot: &'static Slot<P>,
    ctx: WitContext,
    params: Option<WitJson>,
) -> WitRequestDecision {
    let ctx = context_from(ctx);
    let params = Params::from(params);
    let decision = slot.with(|cell| match &*cell.borrow() {
        Some(plugin) => plugin.on_request(&ctx, &params),
        None => RequestDecision::Reject(not_configured("on-request")),
    });
    request_decision_into(decision)
}

/// `on-response`: a rejection if the plugin is not configured.
pub fn on_response<P: Plugin>(
    slot: &'static Slot<P>,
    ctx: WitContext,
    params: Option<WitJson>,
    outcome: Result<WitJson, WitRpcError>,
) -> WitResponseDecision {
    let ctx = context_from(ctx);
    let params = Params::from(params);
    let outcome = match outcome {
        Ok(raw) => Outcome::Result(raw),
        Err(e) => Outcome::Error(rpc_error_from(e)),
    };
    let decision = slot.with(|cell| match &*cell.borrow() {
        Some(plugin) => plugin.on_response(&ctx, &params, &outcome),
        None => ResponseDecision::Reject(not_configured("on-response")),
    });
    response_decision_into(decision)
}

/// `on-notification`: dropped (with an error logged) if the plugin is not
/// configured: a notification has no error to answer with, and delivering
/// what an unconfigured policy has not seen would fail open.
pub fn on_notification<P: Plugin>(
    slot: &'static Slot<P>,
    note: WitNotification,
) -> WitNotificationDecision {
    let note = Notification {
        route: note.route,
        upstream: note.upstream,
        method: note.method,
        params: Params::from(note.params),
    };
    let decision = slot.with(|cell| match &*cell.borrow() {
        Some(plugin) => plugin.on_notification(&note),
        None => {
            crate::log::error(&not_configured("on-notification").error.message);
            NotificationDecision::Drop
        }
    });
    match decision {
        NotificationDecision::Continue => WitNotificationDecision::Continue,
        NotificationDecision::Replace(params) => {
            WitNotificationDecision::Replace(params.to_string())
        }
        NotificationDecision::Drop => WitNotificationDecision::Drop,
    }
}

/// The rejection for a hook called before `configure`.
fn not_configured(hook: &str) -> Rejection {
    let (name, _) = package::current();
    Rejection::new(
        codes::INTERNAL_ERROR,
        format!("plugin `{name}` was called ({hook}) before `configure` succeeded"),
    )
}

fn description_into(d: Description) -> WitDescription {
    let mut hooks = wit::Hooks::empty();
    for (ours, theirs) in [
        (Hooks::REQUEST, wit::Hooks::ON_REQUEST),
        (Hooks::RESPONSE, wit::Hooks::ON_RESPONSE),
        (Hooks::NOTIFICATION, wit::Hooks::ON_NOTIFICATION),
    ] {
        if d.hooks.contains(ours) {
            hooks |= theirs;
        }
    }
    WitDescription {
        name: d.name,
        version: d.version,
        hooks,
        methods: d.methods,
        headers: d.headers,
        well_known: d
            .well_known
            .into_iter()
            .map(|(name, doc)| (name, doc.to_string()))
            .collect(),
    }
}

fn context_from(c: WitContext) -> Context {
    Context {
        request_id: c.request_id,
        route: c.route,
        upstream: c.upstream,
        method: c.method,
        target: c.target,
        principal: c.principal,
        attributes: c.attributes,
        headers: c.headers,
        client_address: c.client_address,
        era: match c.era {
            wit::Era::Legacy => Era::Legacy,
            wit::Era::Modern => Era::Modern,
        },
        protocol_version: c.protocol_version,
    }
}

fn rpc_error_from(e: WitRpcError) -> RpcError {
    RpcError {
        code: e.code,
        message: e.message,
        // The gateway's JSON is well formed; keep anything else as text
        // rather than lose it.
        data: e
            .data
            .map(|raw| serde_json::from_str(&raw).unwrap_or(Value::String(raw))),
    }
}

fn rpc_error_into(e: RpcError) -> WitRpcError {
    WitRpcError {
        code: e.code,
        message: e.message,
        data: e.data.map(|v| v.to_string()),
    }
}

fn rejection_into(r: Rejection) -> wit::Rejection {
    wit::Rejection {
        error: rpc_error_into(r.error),
        http_status: r.http_status,
        headers: r.headers,
    }
}

fn continuation_into(c: Continuation) -> wit::Continuation {
    wit::Continuation {
        params: c.params.map(|v| v.to_string()),
        principal: c.principal,
        attributes: c.attributes,
    }
}

fn request_decision_into(d: RequestDecision) -> WitRequestDecision {
    match d {
        RequestDecision::Continue(c) => WitRequestDecision::Continue(continuation_into(c)),
        RequestDecision::Respond(v) => WitRequestDecision::Respond(v.to_string()),
        RequestDecision::Reject(r) => WitRequestDecision::Reject(rejection_into(r)),
    }
}

fn response_decision_into(d: ResponseDecision) -> WitResponseDecision {
    match d {
        ResponseDecision::Continue => WitResponseDecision::Continue,
        ResponseDecision::Replace(v) => WitResponseDecision::Replace(v.to_string()),
        ResponseDecision::Reject(r) => WitResponseDecision::Reject(rejection_into(r)),
    }
}
