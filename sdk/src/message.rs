//! The JSON a hook receives: request [`Params`], a response's [`Outcome`]
//! ([`RpcError`] on failure), and a server→client [`Notification`].
//!
//! Payloads cross the component boundary as JSON text and stay text until a
//! plugin asks for them parsed: parsing inside a component costs about 25 µs
//! per KB, and many policies need only the fields already in
//! [`Context`](crate::Context).

use std::fmt;

use serde::de::DeserializeOwned;
use serde_json::Value;

/// A request's or notification's params, as the raw JSON text the gateway
/// passed (none when the message had no params).
///
/// Parse on demand with [`value`](Params::value) or [`parse`](Params::parse).
/// Absent params parse as JSON `null`, so read optional params as an
/// `Option<T>`:
///
/// ```
/// use serde::Deserialize;
/// use switchyard_sdk::Params;
/// use switchyard_sdk::mcp::CallToolParams;
///
/// let params = Params::from_value(&serde_json::json!({"name": "search", "arguments": {"q": "rust"}}));
/// let call: CallToolParams = params.parse().unwrap();
/// assert_eq!(call.name, "search");
///
/// #[derive(Deserialize)]
/// struct Cursor { cursor: Option<String> }
/// let none = Params::none();
/// assert!(none.parse::<Option<Cursor>>().unwrap().is_none());
/// assert!(none.value().is_none());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params(Option<String>);

impl Params {
    /// No params.
    pub const fn none() -> Params {
        Params(None)
    }

    /// Params holding `raw` JSON text as given (not checked here; the
    /// gateway's text is always well formed).
    pub fn from_raw(raw: impl Into<String>) -> Params {
        Params(Some(raw.into()))
    }

    /// Params holding `value` serialized.
    pub fn from_value(value: &Value) -> Params {
        Params(Some(value.to_string()))
    }

    /// The raw JSON text, if any.
    pub fn raw(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// True if there are no params.
    pub fn is_none(&self) -> bool {
        self.0.is_none()
    }

    /// The params parsed; none if absent or not valid JSON.
    pub fn value(&self) -> Option<Value> {
        self.0
            .as_deref()
            .and_then(|raw| serde_json::from_str(raw).ok())
    }

    /// The params parsed as `T`; absent params parse as `null`.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.0.as_deref().unwrap_or("null"))
    }

    /// Consumes the params, returning the raw JSON text.
    pub fn into_raw(self) -> Option<String> {
        self.0
    }
}

impl From<Option<String>> for Params {
    fn from(raw: Option<String>) -> Params {
        Params(raw)
    }
}

/// Common JSON-RPC 2.0 error codes, for [`RpcError::code`].
pub mod codes {
    /// The message was not valid JSON.
    pub const PARSE_ERROR: i32 = -32700;
    /// The JSON was not a valid JSON-RPC request.
    pub const INVALID_REQUEST: i32 = -32600;
    /// The method does not exist or is not available.
    pub const METHOD_NOT_FOUND: i32 = -32601;
    /// The params are invalid for the method (also: an unknown tool).
    pub const INVALID_PARAMS: i32 = -32602;
    /// An internal error; what a plugin reports when it cannot decide.
    pub const INTERNAL_ERROR: i32 = -32603;
}

/// A JSON-RPC error object: what an upstream answered instead of a result,
/// or what a plugin answers in a [`Rejection`](crate::Rejection).
#[derive(Clone, Debug, PartialEq)]
pub struct RpcError {
    /// The JSON-RPC error code (see [`codes`]).
    pub code: i32,
    /// A short, human-readable message.
    pub message: String,
    /// Optional structured detail.
    pub data: Option<Value>,
}

impl RpcError {
    /// An error with `code` and `message` and no data.
    ///
    /// ```
    /// use switchyard_sdk::{RpcError, codes};
    /// let e = RpcError::new(codes::INVALID_PARAMS, "unknown tool").with_data(serde_json::json!({"tool": "x"}));
    /// assert_eq!(e.to_string(), "unknown tool (code -32602)");
    /// ```
    pub fn new(code: i32, message: impl Into<String>) -> RpcError {
        RpcError {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// Adds structured detail.
    pub fn with_data(mut self, data: Value) -> RpcError {
        self.data = Some(data);
        self
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (code {})", self.message, self.code)
    }
}

impl std::error::Error for RpcError {}

/// How a request ended upstream: a result (raw JSON text) or an error.
///
/// ```
/// use switchyard_sdk::{Outcome, RpcError, codes};
/// use switchyard_sdk::mcp::CallToolResult;
///
/// let ok = Outcome::ok(&serde_json::json!({"content": [{"type": "text", "text": "hi"}]}));
/// let result: CallToolResult = ok.parse_result().unwrap().unwrap();
/// assert_eq!(result.content.len(), 1);
///
/// let err = Outcome::Error(RpcError::new(codes::INTERNAL_ERROR, "boom"));
/// assert_eq!(err.error().map(|e| e.code), Some(codes::INTERNAL_ERROR));
/// assert!(err.parse_result::<CallToolResult>().is_none());
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The upstream's (or an earlier plugin's) result, as JSON text.
    Result(String),
    /// The JSON-RPC error the request ended with.
    Error(RpcError),
}

impl Outcome {
    /// A result outcome holding `value` serialized (for tests).
    pub fn ok(value: &Value) -> Outcome {
        Outcome::Result(value.to_string())
    }

    /// The result's raw JSON text; none for an error.
    pub fn result_raw(&self) -> Option<&str> {
        match self {
            Outcome::Result(raw) => Some(raw),
            Outcome::Error(_) => None,
        }
    }

    /// The result parsed; none for an error or JSON that does not parse.
    pub fn result_value(&self) -> Option<Value> {
        self.result_raw()
            .and_then(|raw| serde_json::from_str(raw).ok())
    }

    /// The result parsed as `T`; none for an error.
    pub fn parse_result<T: DeserializeOwned>(&self) -> Option<Result<T, serde_json::Error>> {
        self.result_raw().map(serde_json::from_str)
    }

    /// The error; none for a result.
    pub fn error(&self) -> Option<&RpcError> {
        match self {
            Outcome::Result(_) => None,
            Outcome::Error(e) => Some(e),
        }
    }

    /// True if the request ended in an error.
    pub fn is_error(&self) -> bool {
        matches!(self, Outcome::Error(_))
    }
}

/// A server→client notification the gateway is about to deliver on a route.
///
/// ```
/// use switchyard_sdk::Notification;
/// let note = Notification::new("notifications/message")
///     .with_upstream("files")
///     .with_params(&serde_json::json!({"level": "info", "data": "hi"}));
/// assert_eq!(note.params.value().unwrap()["level"], "info");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    /// The route it is delivered on.
    pub route: String,
    /// The upstream that sent it.
    pub upstream: Option<String>,
    /// E.g. `notifications/tools/list_changed`.
    pub method: String,
    /// Its params, if any.
    pub params: Params,
}

impl Notification {
    /// A notification for `method` on route `/mcp`, with no upstream and no
    /// params (for tests).
    pub fn new(method: impl Into<String>) -> Notification {
        Notification {
            route: "/mcp".to_string(),
            upstream: None,
            method: method.into(),
            params: Params::none(),
        }
    }

    /// Sets the upstream that sent it.
    pub fn with_upstream(mut self, upstream: impl Into<String>) -> Notification {
        self.upstream = Some(upstream.into());
        self
    }

    /// Sets its params.
    pub fn with_params(mut self, params: &Value) -> Notification {
        self.params = Params::from_value(params);
        self
    }

    /// Sets the route it is delivered on.
    pub fn with_route(mut self, route: impl Into<String>) -> Notification {
        self.route = route.into();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Args {
        name: String,
        #[serde(default)]
        limit: Option<u32>,
    }

    #[test]
    fn params_parse_typed_and_raw() {
        let p = Params::from_value(&json!({"name": "a", "limit": 3}));
        assert_eq!(p.raw(), Some(r#"{"limit":3,"name":"a"}"#));
        assert_eq!(
            p.parse::<Args>().unwrap(),
            Args {
                name: "a".into(),
                limit: Some(3)
            }
        );
        assert_eq!(p.value().unwrap()["limit"], 3);
        assert!(!p.is_none());
    }

    #[test]
    fn absent_params_parse_as_null() {
        let p = Params::none();
        assert!(p.is_none());
        assert_eq!(p.raw(), None);
        assert_eq!(p.value(), None);
        assert_eq!(p.parse::<Option<Args>>().unwrap(), None);
        assert_eq!(p.parse::<Value>().unwrap(), Value::Null);
        assert!(p.parse::<Args>().is_err());
    }

    #[test]
    fn invalid_params_are_none_or_error() {
        let p = Params::from_raw("{not json");
        assert_eq!(p.raw(), Some("{not json"));
        assert_eq!(p.value(), None);
        assert!(p.parse::<Value>().is_err());
        let wrong = Params::from_raw(r#"{"name": 5}"#);
        assert!(wrong.parse::<Args>().is_err());
        assert_eq!(
            Params::from(Some("1".to_string())).into_raw().as_deref(),
            Some("1")
        );
    }

    #[test]
    fn outcome_helpers() {
        let ok = Outcome::Result(r#"{"name":"x"}"#.into());
        assert!(!ok.is_error());
        assert_eq!(ok.result_value().unwrap()["name"], "x");
        assert_eq!(ok.parse_result::<Args>().unwrap().unwrap().name, "x");
        assert_eq!(ok.error(), None);
        let err = Outcome::Error(RpcError::new(codes::METHOD_NOT_FOUND, "nope"));
        assert!(err.is_error());
        assert_eq!(err.result_raw(), None);
        assert_eq!(err.result_value(), None);
        assert_eq!(err.error().unwrap().message, "nope");
    }
}
