//! JSON-RPC and MCP message shapes for both protocol eras. Pure: no I/O.
//!
//! The gateway relays MCP messages mostly untouched, so payloads stay
//! [`serde_json::Value`]; only the envelope is typed. The principal types:
//!
//! - [`Message`]: one JSON-RPC message (request, notification or response),
//!   parsed from and written back to a `Value`;
//! - [`RpcError`]: a JSON-RPC error object with the MCP codes in [`code`];
//! - [`Era`]: legacy (sessions, `initialize`) or modern (2026-07-28, stateless);
//! - [`meta`]: the `_meta` keys of the modern era.

use serde_json::{Map, Value, json};

/// The one modern revision this gateway speaks.
pub const MODERN_VERSION: &str = "2026-07-28";
/// Legacy revisions a client may negotiate with `initialize`, newest first.
pub const LEGACY_VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
/// The revision the gateway offers when a legacy client asks for one it does not know.
pub const LATEST_LEGACY: &str = LEGACY_VERSIONS[0];

/// Every revision the gateway accepts, newest first (reported with `-32022`).
pub fn supported_versions() -> Vec<&'static str> {
    let mut all = vec![MODERN_VERSION];
    all.extend(LEGACY_VERSIONS);
    all
}

/// Which generation of the protocol a peer speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Era {
    /// 2024-11-05 … 2025-11-25: `initialize`, sessions, server→client requests.
    Legacy,
    /// 2026-07-28: per-request `_meta`, `server/discover`, no sessions.
    Modern,
}

impl std::fmt::Display for Era {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Era::Legacy => "legacy",
            Era::Modern => "modern",
        })
    }
}

/// JSON-RPC and MCP error codes.
pub mod code {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL_ERROR: i64 = -32603;
    /// Legacy servers' "resource not found" (modern servers use -32602).
    pub const RESOURCE_NOT_FOUND: i64 = -32002;
    /// Gateway-specific: the upstream is down, timed out or failed (server error range).
    pub const UPSTREAM_ERROR: i64 = -32001;
    /// Modern: HTTP headers do not match the body.
    pub const HEADER_MISMATCH: i64 = -32020;
    /// Modern: the client lacks a capability the request needs.
    pub const MISSING_CAPABILITY: i64 = -32021;
    /// Modern: the requested protocol version is not supported.
    pub const UNSUPPORTED_VERSION: i64 = -32022;
}

/// The `_meta` keys of the modern era.
pub mod meta {
    pub const PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
    pub const CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
    pub const CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
    pub const LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
    pub const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";
    pub const SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
}

/// A JSON-RPC error object.
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

    pub fn to_value(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("code".into(), self.code.into());
        obj.insert("message".into(), self.message.clone().into());
        if let Some(data) = &self.data {
            obj.insert("data".into(), data.clone());
        }
        Value::Object(obj)
    }

    fn from_value(v: &Value) -> Self {
        Self {
            code: v
                .get("code")
                .and_then(Value::as_i64)
                .unwrap_or(code::INTERNAL_ERROR),
            message: v
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            data: v.get("data").cloned(),
        }
    }
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

/// One JSON-RPC message. Ids are kept as raw JSON (number or string).
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Request {
        id: Value,
        method: String,
        params: Option<Value>,
    },
    Notification {
        method: String,
        params: Option<Value>,
    },
    Response {
        id: Value,
        result: Result<Value, RpcError>,
    },
}

impl Message {
    /// Classifies a parsed JSON value. Anything that is not a well-formed
    /// JSON-RPC 2.0 message is an `-32600` invalid request.
    pub fn from_value(v: Value) -> Result<Message, RpcError> {
        let Value::Object(mut obj) = v else {
            return Err(RpcError::new(
                code::INVALID_REQUEST,
                "a JSON-RPC message must be an object (batches are not supported)",
            ));
        };
        if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
            return Err(RpcError::new(
                code::INVALID_REQUEST,
                "the message lacks \"jsonrpc\": \"2.0\"",
            ));
        }
        let id = obj.remove("id");
        if let Some(id) = &id
            && !(id.is_string() || id.is_i64() || id.is_u64())
        {
            return Err(RpcError::new(
                code::INVALID_REQUEST,
                "\"id\" must be a string or an integer",
            ));
        }
        match obj.remove("method") {
            Some(Value::String(method)) => {
                let params = obj.remove("params");
                if let Some(p) = &params
                    && !(p.is_object() || p.is_array())
                {
                    return Err(RpcError::new(
                        code::INVALID_REQUEST,
                        "\"params\" must be an object",
                    ));
                }
                Ok(match id {
                    Some(id) => Message::Request { id, method, params },
                    None => Message::Notification { method, params },
                })
            }
            Some(_) => Err(RpcError::new(
                code::INVALID_REQUEST,
                "\"method\" must be a string",
            )),
            None => {
                let Some(id) = id else {
                    return Err(RpcError::new(
                        code::INVALID_REQUEST,
                        "the message has neither \"method\" nor \"id\"",
                    ));
                };
                if let Some(result) = obj.remove("result") {
                    Ok(Message::Response {
                        id,
                        result: Ok(result),
                    })
                } else if let Some(err) = obj.get("error") {
                    Ok(Message::Response {
                        id,
                        result: Err(RpcError::from_value(err)),
                    })
                } else {
                    Err(RpcError::new(
                        code::INVALID_REQUEST,
                        "a response needs \"result\" or \"error\"",
                    ))
                }
            }
        }
    }

    pub fn to_value(&self) -> Value {
        match self {
            Message::Request { id, method, params } => request(id.clone(), method, params.clone()),
            Message::Notification { method, params } => notification(method, params.clone()),
            Message::Response { id, result } => response(id.clone(), result.clone()),
        }
    }
}

/// A request envelope.
pub fn request(id: Value, method: &str, params: Option<Value>) -> Value {
    let mut obj = Map::with_capacity(4);
    obj.insert("jsonrpc".into(), "2.0".into());
    obj.insert("id".into(), id);
    obj.insert("method".into(), method.into());
    if let Some(p) = params {
        obj.insert("params".into(), p);
    }
    Value::Object(obj)
}

/// A notification envelope.
pub fn notification(method: &str, params: Option<Value>) -> Value {
    let mut obj = Map::with_capacity(3);
    obj.insert("jsonrpc".into(), "2.0".into());
    obj.insert("method".into(), method.into());
    if let Some(p) = params {
        obj.insert("params".into(), p);
    }
    Value::Object(obj)
}

/// A response envelope (`id` may be `null` when the request's id is unknown).
pub fn response(id: Value, result: Result<Value, RpcError>) -> Value {
    match result {
        Ok(r) => json!({"jsonrpc": "2.0", "id": id, "result": r}),
        Err(e) => json!({"jsonrpc": "2.0", "id": id, "error": e.to_value()}),
    }
}

/// `params._meta`, when present.
pub fn params_meta(params: Option<&Value>) -> Option<&Map<String, Value>> {
    params?.get("_meta")?.as_object()
}

/// The modern protocol version a request declares in `_meta`, if any.
pub fn modern_version(params: Option<&Value>) -> Option<&str> {
    params_meta(params)?
        .get(meta::PROTOCOL_VERSION)
        .and_then(Value::as_str)
}

/// The name that identifies what a request acts on: the tool or prompt name,
/// or the resource URI. This is what the `Mcp-Name` header mirrors.
pub fn target_name<'a>(method: &str, params: Option<&'a Value>) -> Option<&'a str> {
    let key = match method {
        "tools/call" | "prompts/get" => "name",
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => "uri",
        _ => return None,
    };
    params?.get(key)?.as_str()
}

/// The client capability a server→client request needs.
pub fn capability_for(method: &str) -> Option<&'static str> {
    Some(match method {
        "sampling/createMessage" => "sampling",
        "elicitation/create" => "elicitation",
        "roots/list" => "roots",
        _ => return None,
    })
}

/// `-32021`: the request needs a client capability that was not declared.
pub fn missing_capability(method: &str) -> RpcError {
    let capability = capability_for(method).unwrap_or("unknown");
    RpcError::new(
        code::MISSING_CAPABILITY,
        format!("this request needs the client capability `{capability}` ({method})"),
    )
    .with_data(json!({"requiredCapabilities": {capability: {}}}))
}

/// Whether a method is one of the server→client "list changed" or
/// "resource updated" notifications that go to listeners, not to a request.
pub fn is_change_notification(method: &str) -> bool {
    matches!(
        method,
        "notifications/tools/list_changed"
            | "notifications/prompts/list_changed"
            | "notifications/resources/list_changed"
            | "notifications/resources/updated"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_messages() {
        let req = Message::from_value(json!({"jsonrpc":"2.0","id":1,"method":"ping"})).unwrap();
        assert!(matches!(req, Message::Request { ref method, .. } if method == "ping"));
        let note = Message::from_value(json!({"jsonrpc":"2.0","method":"x"})).unwrap();
        assert!(matches!(note, Message::Notification { .. }));
        let resp = Message::from_value(json!({"jsonrpc":"2.0","id":"a","result":{}})).unwrap();
        assert!(matches!(resp, Message::Response { result: Ok(_), .. }));
        let err = Message::from_value(
            json!({"jsonrpc":"2.0","id":2,"error":{"code":-32601,"message":"nope"}}),
        )
        .unwrap();
        let Message::Response { result: Err(e), .. } = err else {
            panic!("expected an error response")
        };
        assert_eq!(e.code, code::METHOD_NOT_FOUND);
    }

    #[test]
    fn rejects_non_jsonrpc() {
        for bad in [
            json!([]),
            json!({"id":1,"method":"x"}),
            json!({"jsonrpc":"2.0","id":1.5,"method":"x"}),
            json!({"jsonrpc":"2.0","method":7}),
            json!({"jsonrpc":"2.0"}),
            json!({"jsonrpc":"2.0","id":1}),
            json!({"jsonrpc":"2.0","id":1,"method":"x","params":3}),
        ] {
            let e = Message::from_value(bad.clone()).unwrap_err();
            assert_eq!(e.code, code::INVALID_REQUEST, "{bad}");
        }
    }

    #[test]
    fn round_trips() {
        let v = json!({"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"a"}});
        assert_eq!(Message::from_value(v.clone()).unwrap().to_value(), v);
    }

    #[test]
    fn target_names() {
        let p = json!({"name":"t","uri":"u"});
        assert_eq!(target_name("tools/call", Some(&p)), Some("t"));
        assert_eq!(target_name("resources/read", Some(&p)), Some("u"));
        assert_eq!(target_name("tools/list", Some(&p)), None);
    }
}
