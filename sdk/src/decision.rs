//! What a hook answers: each variant says what the gateway does next.
//!
//! - [`RequestDecision`]: [`Continue`](RequestDecision::Continue) to the next
//!   plugin and the upstream (optionally with a [`Continuation`] that changes
//!   params, principal or attributes), [`Respond`](RequestDecision::Respond)
//!   with a result, or [`Reject`](RequestDecision::Reject) with a
//!   [`Rejection`].
//! - [`ResponseDecision`]: pass the outcome on, replace it, or reject.
//! - [`NotificationDecision`]: deliver, replace the params, or drop.

use serde::Serialize;
use serde_json::Value;

use crate::message::{RpcError, codes};

/// What the gateway does after [`Plugin::on_request`](crate::Plugin::on_request).
///
/// ```
/// use switchyard_sdk::{Continuation, Rejection, RequestDecision, codes};
///
/// // Let it through unchanged.
/// let _ = RequestDecision::proceed();
/// // Let it through, naming the principal for later plugins.
/// let _: RequestDecision = Continuation::new().with_principal("alice").with_attribute("role", "admin").into();
/// // Answer from the plugin; the upstream is not called.
/// let _ = RequestDecision::respond(serde_json::json!({"tools": []}));
/// // Refuse with HTTP 401 and a challenge.
/// let _: RequestDecision = Rejection::new(codes::INVALID_REQUEST, "missing API key")
///     .status(401)
///     .header("www-authenticate", "Bearer")
///     .into();
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum RequestDecision {
    /// Go on to the next plugin, then the upstream.
    Continue(Continuation),
    /// Answer the client with this result; the upstream is not called and
    /// later plugins do not see the request.
    Respond(Value),
    /// Answer the client with this error; the request phase ends.
    Reject(Rejection),
}

impl RequestDecision {
    /// Continue with nothing changed.
    pub fn proceed() -> RequestDecision {
        RequestDecision::Continue(Continuation::new())
    }

    /// Respond with `result` serialized. A value that cannot be serialized
    /// (a map with non-string keys) becomes an internal-error rejection.
    pub fn respond(result: impl Serialize) -> RequestDecision {
        match serde_json::to_value(result) {
            Ok(value) => RequestDecision::Respond(value),
            Err(e) => RequestDecision::Reject(unserializable(e)),
        }
    }

    /// Reject with `rejection`.
    pub fn reject(rejection: Rejection) -> RequestDecision {
        RequestDecision::Reject(rejection)
    }
}

impl From<Continuation> for RequestDecision {
    fn from(continuation: Continuation) -> RequestDecision {
        RequestDecision::Continue(continuation)
    }
}

impl From<Rejection> for RequestDecision {
    fn from(rejection: Rejection) -> RequestDecision {
        RequestDecision::Reject(rejection)
    }
}

/// How a request goes on: what a plugin changes for later plugins and the
/// upstream. The default changes nothing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Continuation {
    /// Replacement params; none keeps them as they are.
    pub params: Option<Value>,
    /// The principal for later plugins and the gateway; none keeps the
    /// current one.
    pub principal: Option<String>,
    /// Attributes added for later plugins (appended; a later value for a name
    /// replaces the earlier).
    pub attributes: Vec<(String, String)>,
}

impl Continuation {
    /// A continuation that changes nothing.
    pub fn new() -> Continuation {
        Continuation::default()
    }

    /// Replaces the request's params.
    pub fn with_params(mut self, params: Value) -> Continuation {
        self.params = Some(params);
        self
    }

    /// Names the principal.
    pub fn with_principal(mut self, principal: impl Into<String>) -> Continuation {
        self.principal = Some(principal.into());
        self
    }

    /// Adds an attribute.
    pub fn with_attribute(
        mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Continuation {
        self.attributes.push((name.into(), value.into()));
        self
    }
}

/// A refusal: the client gets [`error`](Rejection::error) with the HTTP
/// status and extra headers.
///
/// Status 200 (the default) keeps the error inside an ordinary JSON-RPC
/// reply; 401, 403 or 429 also tell HTTP clients and proxies.
///
/// ```
/// use switchyard_sdk::{Rejection, codes};
/// let r = Rejection::new(codes::INVALID_REQUEST, "rate limit exceeded")
///     .status(429)
///     .header("retry-after", "30")
///     .data(serde_json::json!({"limit": 10}));
/// assert_eq!(r.http_status, 429);
/// assert_eq!(r.error.data.unwrap()["limit"], 10);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Rejection {
    /// The JSON-RPC error the client gets.
    pub error: RpcError,
    /// The HTTP status of the reply.
    pub http_status: u16,
    /// Extra response headers, e.g. `www-authenticate` or `retry-after`.
    pub headers: Vec<(String, String)>,
}

impl Rejection {
    /// What a client gets for a tool, prompt or resource that does not
    /// exist, exactly as the gateway answers one: `-32602 unknown tool: NAME`
    /// (or `prompt`); for a resource "Resource not found" with the URI in
    /// `data`, `-32002` for legacy clients and `-32602` for modern ones.
    /// Policies that hide an item answer its use with this, so hidden and
    /// absent look the same.
    ///
    /// ```
    /// use switchyard_sdk::{Era, Rejection};
    ///
    /// let r = Rejection::not_found("tool", "delete_everything", Era::Legacy);
    /// assert_eq!(r.error.code, -32602);
    /// assert_eq!(r.error.message, "unknown tool: delete_everything");
    /// assert_eq!(Rejection::not_found("resource", "file:///x", Era::Legacy).error.code, -32002);
    /// ```
    pub fn not_found(kind: &str, name: &str, era: crate::Era) -> Rejection {
        match (kind, era) {
            ("resource", crate::Era::Legacy) => Rejection::new(-32002, "Resource not found")
                .data(serde_json::json!({ "uri": name })),
            ("resource", crate::Era::Modern) => {
                Rejection::new(crate::codes::INVALID_PARAMS, "Resource not found")
                    .data(serde_json::json!({ "uri": name }))
            }
            _ => Rejection::new(
                crate::codes::INVALID_PARAMS,
                format!("unknown {kind}: {name}"),
            ),
        }
    }

    /// A rejection with `code` and `message`, HTTP status 200, no headers.
    pub fn new(code: i32, message: impl Into<String>) -> Rejection {
        Rejection::from(RpcError::new(code, message))
    }

    /// Sets the HTTP status.
    pub fn status(mut self, http_status: u16) -> Rejection {
        self.http_status = http_status;
        self
    }

    /// Adds a response header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Rejection {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the error's structured detail.
    pub fn data(mut self, data: Value) -> Rejection {
        self.error.data = Some(data);
        self
    }
}

impl From<RpcError> for Rejection {
    fn from(error: RpcError) -> Rejection {
        Rejection {
            error,
            http_status: 200,
            headers: Vec::new(),
        }
    }
}

/// What the gateway does after [`Plugin::on_response`](crate::Plugin::on_response).
///
/// ```
/// use switchyard_sdk::ResponseDecision;
/// let _ = ResponseDecision::Continue;
/// let _ = ResponseDecision::replace(serde_json::json!({"content": [], "isError": true}));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum ResponseDecision {
    /// Pass the outcome on unchanged.
    Continue,
    /// Replace the result (or turn an error into this result).
    Replace(Value),
    /// Answer the client with this error instead.
    Reject(Rejection),
}

impl ResponseDecision {
    /// Replace the result with `result` serialized. A value that cannot be
    /// serialized becomes an internal-error rejection.
    pub fn replace(result: impl Serialize) -> ResponseDecision {
        match serde_json::to_value(result) {
            Ok(value) => ResponseDecision::Replace(value),
            Err(e) => ResponseDecision::Reject(unserializable(e)),
        }
    }
}

impl From<Rejection> for ResponseDecision {
    fn from(rejection: Rejection) -> ResponseDecision {
        ResponseDecision::Reject(rejection)
    }
}

/// What the gateway does with a server→client notification, after
/// [`Plugin::on_notification`](crate::Plugin::on_notification).
///
/// ```
/// use switchyard_sdk::NotificationDecision;
/// let _ = NotificationDecision::Drop;
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum NotificationDecision {
    /// Deliver it unchanged.
    Continue,
    /// Deliver it with these params instead.
    Replace(Value),
    /// Do not deliver it.
    Drop,
}

/// The rejection for a plugin value that `serde_json` cannot serialize.
fn unserializable(e: serde_json::Error) -> Rejection {
    Rejection::new(
        codes::INTERNAL_ERROR,
        format!("plugin produced a value that is not JSON: {e}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;

    #[test]
    fn respond_serializes_or_rejects() {
        assert_eq!(
            RequestDecision::respond(json!({"a": 1})),
            RequestDecision::Respond(json!({"a": 1}))
        );
        let bad: HashMap<(u8, u8), u8> = HashMap::from([((1, 2), 3)]);
        match RequestDecision::respond(&bad) {
            RequestDecision::Reject(r) => assert_eq!(r.error.code, codes::INTERNAL_ERROR),
            other => panic!("expected a rejection, got {other:?}"),
        }
        assert!(matches!(
            ResponseDecision::replace(&bad),
            ResponseDecision::Reject(_)
        ));
    }

    #[test]
    fn builders_and_conversions() {
        let d: RequestDecision = Continuation::new()
            .with_params(json!({"x": 1}))
            .with_principal("p")
            .with_attribute("k", "v")
            .into();
        let RequestDecision::Continue(c) = d else {
            panic!()
        };
        assert_eq!(c.params, Some(json!({"x": 1})));
        assert_eq!(c.principal.as_deref(), Some("p"));
        assert_eq!(c.attributes, [("k".to_string(), "v".to_string())]);

        let r = Rejection::new(codes::INVALID_PARAMS, "no")
            .status(403)
            .header("x", "y");
        assert_eq!(r.http_status, 403);
        assert_eq!(r.headers, [("x".to_string(), "y".to_string())]);
        assert_eq!(Rejection::new(1, "m").http_status, 200);
        assert!(matches!(
            RequestDecision::from(r.clone()),
            RequestDecision::Reject(_)
        ));
        assert!(matches!(
            ResponseDecision::from(r),
            ResponseDecision::Reject(_)
        ));
        assert_eq!(
            RequestDecision::proceed(),
            RequestDecision::Continue(Continuation::default())
        );
    }
}
