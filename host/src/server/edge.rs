//! The one place where errors become HTTP replies, and the modern era's
//! header checks.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::Value;

use crate::mcp::{self, Era, RpcError, code};
use crate::pipeline::Side;

/// A JSON body with a status.
pub fn reply(status: StatusCode, body: Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// Maps an error for the client to its HTTP reply, keeping the request id.
///
/// - a plugin's rejection uses the status the plugin chose;
/// - malformed input, header mismatches and unsupported versions: 400;
/// - an unknown method on a modern request: 404 (legacy clients expect 200);
/// - everything else (including upstream errors): 200 with the JSON-RPC
///   error, as JSON-RPC over HTTP does.
pub fn error_reply(
    id: Value,
    error: RpcError,
    side: Side,
    era: Era,
    http_status: Option<u16>,
    headers: &[(String, String)],
) -> Response {
    let status = match (http_status.and_then(|s| StatusCode::from_u16(s).ok()), side) {
        (Some(s), _) => s,
        _ => match error.code {
            code::PARSE_ERROR
            | code::INVALID_REQUEST
            | code::HEADER_MISMATCH
            | code::UNSUPPORTED_VERSION
            | code::MISSING_CAPABILITY => StatusCode::BAD_REQUEST,
            code::METHOD_NOT_FOUND if era == Era::Modern && side != Side::Plugin => {
                StatusCode::NOT_FOUND
            }
            _ => StatusCode::OK,
        },
    };
    let mut resp = reply(status, mcp::response(id, Err(error)));
    for (k, v) in headers {
        // Checked when the plugin answered; a bad one is dropped, not fatal.
        if let (Ok(k), Ok(v)) = (
            axum::http::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            resp.headers_mut().append(k, v);
        }
    }
    resp
}

/// 400 with a JSON-RPC error.
pub fn bad_request(id: Value, error: RpcError) -> Response {
    reply(StatusCode::BAD_REQUEST, mcp::response(id, Err(error)))
}

/// 403 with a JSON-RPC error (Origin / Host refused).
pub fn forbidden(message: String) -> Response {
    reply(
        StatusCode::FORBIDDEN,
        mcp::response(
            Value::Null,
            Err(RpcError::new(code::INVALID_REQUEST, message)),
        ),
    )
}

/// 404 for an unknown or ended session: the client must start a new one.
pub fn session_not_found(id: Value) -> Response {
    reply(
        StatusCode::NOT_FOUND,
        mcp::response(
            id,
            Err(RpcError::new(
                code::UPSTREAM_ERROR,
                "session not found: it ended or never existed; send initialize again",
            )),
        ),
    )
}

/// 405 with the methods that are allowed.
pub fn method_not_allowed(allowed: &[Method]) -> Response {
    let list = allowed
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    let mut resp = reply(
        StatusCode::METHOD_NOT_ALLOWED,
        mcp::response(
            Value::Null,
            Err(RpcError::new(
                code::INVALID_REQUEST,
                "method not allowed: GET and DELETE need a legacy Mcp-Session-Id",
            )),
        ),
    );
    if let Ok(v) = HeaderValue::from_str(&list) {
        resp.headers_mut().insert(header::ALLOW, v);
    }
    resp
}

/// Decodes a header value that may use the `=?base64?…?=` form (strict
/// base64: canonical padding, standard alphabet). A value without both the
/// prefix and the suffix is literal. `None`: the wrapped part is not valid
/// base64 of UTF-8 text.
fn decode_header_text(v: &str) -> Option<String> {
    match v
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
    {
        Some(b64) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .ok()
            .and_then(|b| String::from_utf8(b).ok()),
        None => Some(v.to_owned()),
    }
}

/// A modern `tools/call` mirrors each `x-mcp-header` argument that has a
/// value in `Mcp-Param-{Header}`: the header must be there and equal the
/// body (strings as text, numbers and booleans as their JSON text), else
/// `-32020` HeaderMismatch.
pub fn validate_param_headers(
    headers: &HeaderMap,
    declared: &[crate::pipeline::HeaderParam],
    arguments: Option<&Value>,
) -> Result<(), RpcError> {
    for p in declared {
        let value = arguments
            .and_then(|a| a.get(&p.param))
            .filter(|v| !v.is_null());
        let Some(value) = value else { continue };
        let expected = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => continue,
        };
        let name = format!("mcp-param-{}", p.header.to_ascii_lowercase());
        let mismatch = |why: String| Err(RpcError::new(code::HEADER_MISMATCH, why));
        let Some(raw) = headers.get(&name) else {
            return mismatch(format!(
                "missing Mcp-Param-{} header for argument `{}`",
                p.header, p.param
            ));
        };
        let Some(text) = raw
            .to_str()
            .ok()
            .map(str::trim)
            .and_then(decode_header_text)
        else {
            return mismatch(format!(
                "Mcp-Param-{} is not valid text or base64",
                p.header
            ));
        };
        if text != expected {
            return mismatch(format!(
                "Mcp-Param-{} header does not match argument `{}`",
                p.header, p.param
            ));
        }
    }
    Ok(())
}

/// The modern era requires `MCP-Protocol-Version`, `Mcp-Method` and (for
/// `tools/call`, `resources/read`, `prompts/get`) `Mcp-Name`, each equal to
/// the body. Any absence or difference is `-32020` HeaderMismatch.
pub fn validate_modern_headers(
    headers: &HeaderMap,
    method: &str,
    params: Option<&Value>,
    version: &str,
) -> Result<(), RpcError> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let mismatch = |what: String| Err(RpcError::new(code::HEADER_MISMATCH, what));
    match get("mcp-protocol-version") {
        None => return mismatch("missing MCP-Protocol-Version header".into()),
        Some(h) if h != version => {
            return mismatch(format!(
                "MCP-Protocol-Version header `{h}` does not match _meta protocolVersion `{version}`"
            ));
        }
        _ => {}
    }
    match get("mcp-method") {
        None => return mismatch("missing Mcp-Method header".into()),
        Some(h) if h != method => {
            return mismatch(format!(
                "Mcp-Method header `{h}` does not match method `{method}`"
            ));
        }
        _ => {}
    }
    if matches!(method, "tools/call" | "resources/read" | "prompts/get") {
        let body = mcp::target_name(method, params);
        match (get("mcp-name").map(decode_header_text), body) {
            (None, _) => return mismatch("missing Mcp-Name header".into()),
            (Some(None), _) => return mismatch("Mcp-Name header is not valid base64 text".into()),
            (Some(Some(h)), Some(b)) if h == b => {}
            (Some(Some(h)), b) => {
                return mismatch(format!(
                    "Mcp-Name header `{h}` does not match the body's `{}`",
                    b.unwrap_or("")
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn modern_headers_must_match_the_body() {
        let p = json!({"name": "héllo"});
        let v = mcp::MODERN_VERSION;
        let ok = headers(&[
            ("mcp-protocol-version", v),
            ("mcp-method", "tools/call"),
            ("mcp-name", "=?base64?aMOpbGxv?="),
        ]);
        assert!(validate_modern_headers(&ok, "tools/call", Some(&p), v).is_ok());
        for bad in [
            headers(&[("mcp-method", "tools/call"), ("mcp-name", "x")]),
            headers(&[
                ("mcp-protocol-version", v),
                ("mcp-method", "tools/list"),
                ("mcp-name", "hello"),
            ]),
            headers(&[
                ("mcp-protocol-version", v),
                ("mcp-method", "tools/call"),
                ("mcp-name", "other"),
            ]),
            headers(&[("mcp-protocol-version", v), ("mcp-method", "tools/call")]),
        ] {
            let e = validate_modern_headers(&bad, "tools/call", Some(&p), v).unwrap_err();
            assert_eq!(e.code, code::HEADER_MISMATCH);
        }
    }
}
