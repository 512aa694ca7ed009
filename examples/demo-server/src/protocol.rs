//! JSON-RPC framing and the MCP constants both protocol eras share.
//!
//! Everything here is pure: it builds and classifies `serde_json::Value`s and
//! knows nothing about sessions or I/O. The server works on raw JSON on
//! purpose, so that the exact wire shape of each era stays visible in the code
//! that produces it.

use serde_json::{Map, Value, json};

/// The one modern (per-request `_meta`) revision this server speaks.
pub const MODERN_VERSION: &str = "2026-07-28";

/// Legacy (`initialize` handshake) revisions, newest first. `initialize`
/// echoes any of these and answers [`LATEST_LEGACY_VERSION`] to anything else.
pub const LEGACY_VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// What `initialize` answers when the client asks for a version it does not know.
pub const LATEST_LEGACY_VERSION: &str = LEGACY_VERSIONS[0];

/// `_meta` keys defined by the 2026-07-28 revision.
pub mod meta {
    /// Request: the protocol version this request speaks (required).
    pub const PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
    /// Request: the client's capabilities for this request only (required).
    pub const CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
    /// Request: the lowest log level the client wants for this request; absent means no logs.
    pub const LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
    /// Result: who produced the response.
    pub const SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
    /// Notification and listen result: the `subscriptions/listen` request id it belongs to.
    pub const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";
}

/// JSON-RPC and MCP error codes used by this server.
pub mod code {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL_ERROR: i64 = -32603;
    /// Legacy era only: resources/read of an unknown URI. The modern era uses
    /// [`INVALID_PARAMS`] instead.
    pub const RESOURCE_NOT_FOUND: i64 = -32002;
    /// Modern era: the request needs a client capability it did not declare.
    pub const MISSING_CLIENT_CAPABILITY: i64 = -32021;
    /// Modern era: the `_meta` protocol version is not one this server speaks.
    pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
}

/// A JSON-RPC error object, ready to be put into an error response.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    pub fn parse_error(detail: impl std::fmt::Display) -> Self {
        Self::new(code::PARSE_ERROR, format!("Parse error: {detail}"))
    }

    pub fn invalid_request(detail: impl Into<String>) -> Self {
        Self::new(code::INVALID_REQUEST, detail)
    }

    pub fn method_not_found(method: &str) -> Self {
        Self::new(
            code::METHOD_NOT_FOUND,
            format!("Method not found: {method}"),
        )
    }

    pub fn invalid_params(detail: impl Into<String>) -> Self {
        Self::new(code::INVALID_PARAMS, detail)
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(code::INTERNAL_ERROR, detail)
    }

    /// `UnsupportedProtocolVersionError`: `data.supported` tells the client what to retry with.
    pub fn unsupported_version(requested: &str, supported: &[&str]) -> Self {
        Self::new(
            code::UNSUPPORTED_PROTOCOL_VERSION,
            "Unsupported protocol version",
        )
        .with_data(json!({ "supported": supported, "requested": requested }))
    }

    /// `MissingRequiredClientCapabilityError` for one top-level capability (e.g. `sampling`).
    pub fn missing_capability(capability: &str) -> Self {
        let mut required = Map::new();
        required.insert(capability.to_owned(), json!({}));
        Self::new(
            code::MISSING_CLIENT_CAPABILITY,
            format!("Server requires the {capability} capability for this request"),
        )
        .with_data(json!({ "requiredCapabilities": required }))
    }

    pub fn to_json(&self) -> Value {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(data) = &self.data {
            error["data"] = data.clone();
        }
        error
    }
}

/// One line read from the client, sorted by what the server must do with it.
#[derive(Debug, PartialEq)]
pub enum Incoming {
    /// A request: must be answered with the same `id` (unless cancelled).
    Request {
        id: Value,
        method: String,
        params: Value,
    },
    /// A notification: never answered.
    Notification { method: String, params: Value },
    /// The client's answer to a request this server sent (legacy sampling/elicitation).
    Response {
        id: Value,
        outcome: Result<Value, Value>,
    },
    /// Valid JSON that is not a JSON-RPC message we accept; answered with -32600.
    Invalid { id: Value, reason: String },
}

/// Sorts a parsed JSON value into an [`Incoming`] message.
pub fn classify(message: Value) -> Incoming {
    let Value::Object(mut obj) = message else {
        let reason = if message.is_array() {
            "JSON-RPC batches are not supported"
        } else {
            "a JSON-RPC message must be an object"
        };
        return Incoming::Invalid {
            id: Value::Null,
            reason: reason.into(),
        };
    };
    let id = obj.remove("id");
    let params = obj.remove("params").unwrap_or(Value::Null);
    match (obj.remove("method"), id) {
        (Some(Value::String(method)), Some(id)) if is_valid_id(&id) => {
            Incoming::Request { id, method, params }
        }
        (Some(Value::String(method)), None) => Incoming::Notification { method, params },
        (None, Some(id)) if obj.contains_key("result") || obj.contains_key("error") => {
            let outcome = match obj.remove("error") {
                Some(error) => Err(error),
                None => Ok(obj.remove("result").unwrap_or(Value::Null)),
            };
            Incoming::Response { id, outcome }
        }
        (_, id) => Incoming::Invalid {
            id: id.filter(is_valid_id).unwrap_or(Value::Null),
            reason: "not a JSON-RPC request, notification or response".into(),
        },
    }
}

/// MCP request ids are strings or integers (never null, unlike plain JSON-RPC).
fn is_valid_id(id: &Value) -> bool {
    id.is_string() || id.is_i64() || id.is_u64()
}

/// A key that tells ids apart exactly: `1` and `"1"` are different requests.
pub fn id_key(id: &Value) -> String {
    id.to_string()
}

pub fn response(id: &Value, result: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "result": result })
}

pub fn error_response(id: &Value, error: &RpcError) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": error.to_json() })
}

pub fn notification(method: &str, params: Value) -> Value {
    json!({ "jsonrpc": "2.0", "method": method, "params": params })
}

pub fn request(id: &Value, method: &str, params: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params })
}

/// `params._meta[key]` of a request, if present.
pub fn meta_field<'a>(params: &'a Value, key: &str) -> Option<&'a Value> {
    params.get("_meta").and_then(|meta| meta.get(key))
}

/// RFC 5424 severities as MCP names them, least severe first so that `>=`
/// means "at least as severe".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Debug,
    Info,
    Notice,
    Warning,
    Error,
    Critical,
    Alert,
    Emergency,
}

impl LogLevel {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "debug" => Self::Debug,
            "info" => Self::Info,
            "notice" => Self::Notice,
            "warning" => Self::Warning,
            "error" => Self::Error,
            "critical" => Self::Critical,
            "alert" => Self::Alert,
            "emergency" => Self::Emergency,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Notice => "notice",
            Self::Warning => "warning",
            Self::Error => "error",
            Self::Critical => "critical",
            Self::Alert => "alert",
            Self::Emergency => "emergency",
        }
    }
}

/// Lower-case hex, the encoding of every opaque token this server hands out
/// (cursors, request state). Hex keeps tokens ASCII-safe without a codec dependency.
pub fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 0xf)] as char);
    }
    out
}

pub fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_messages() {
        assert!(matches!(
            classify(json!({"jsonrpc":"2.0","id":"a","method":"ping"})),
            Incoming::Request { ref id, ref method, .. } if id == "a" && method == "ping"
        ));
        assert!(matches!(
            classify(json!({"jsonrpc":"2.0","method":"notifications/initialized"})),
            Incoming::Notification { .. }
        ));
        assert!(matches!(
            classify(json!({"jsonrpc":"2.0","id":"s-1","result":{}})),
            Incoming::Response { outcome: Ok(_), .. }
        ));
        assert!(matches!(
            classify(json!({"jsonrpc":"2.0","id":"s-1","error":{"code":1,"message":"x"}})),
            Incoming::Response {
                outcome: Err(_),
                ..
            }
        ));
        assert!(matches!(classify(json!([1, 2])), Incoming::Invalid { .. }));
        assert!(matches!(
            classify(json!({"jsonrpc":"2.0","id":null,"method":"ping"})),
            Incoming::Invalid { ref id, .. } if id.is_null()
        ));
    }

    #[test]
    fn ids_keep_their_type() {
        assert_ne!(id_key(&json!(1)), id_key(&json!("1")));
    }

    #[test]
    fn hex_round_trips() {
        let bytes = b"tools:10\x00\xff";
        assert_eq!(hex_decode(&hex_encode(bytes)).unwrap(), bytes);
        assert_eq!(hex_decode("abc"), None);
        assert_eq!(hex_decode("zz"), None);
    }

    #[test]
    fn log_levels_order_by_severity() {
        assert!(LogLevel::Emergency > LogLevel::Debug);
        assert_eq!(LogLevel::parse("warning"), Some(LogLevel::Warning));
        assert_eq!(LogLevel::parse("verbose"), None);
    }
}
