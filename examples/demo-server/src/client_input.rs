//! Asking the client for input (sampling, elicitation) in either era.
//!
//! - **Legacy**: a real JSON-RPC request goes to the client on stdout (ids
//!   `s-1`, `s-2`, …) and the tool waits for the answer on stdin.
//! - **Modern** (2026-07-28): the server must not send requests. The tool
//!   instead returns an `InputRequiredResult` (`resultType: "input_required"`)
//!   whose `inputRequests` names what it needs and whose `requestState` is an
//!   opaque, sealed token; the client retries the same `tools/call` with
//!   `inputResponses` and that `requestState`, and this time gets the answer.
//!
//! A tool calls [`ask`] once and handles the three outcomes of [`Asked`]; it
//! never sees which era it is in.

use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::LazyLock;
use std::time::Duration;

use serde_json::{Value, json};

use crate::protocol::{RpcError, hex_decode, hex_encode};
use crate::request::{Request, RequestEra};

/// How long a legacy tool waits for the client to answer its request.
const CLIENT_ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

/// One thing a tool needs from the client.
pub(crate) struct InputNeed {
    /// Key in `inputRequests` / `inputResponses` (modern era).
    pub key: &'static str,
    /// `sampling/createMessage` or `elicitation/create`.
    pub method: &'static str,
    pub params: Value,
    /// The client capability the method requires (`sampling`, `elicitation`).
    pub capability: &'static str,
}

/// What became of asking.
pub(crate) enum Asked {
    /// The client's result (`CreateMessageResult`, `ElicitResult`).
    Answered(Value),
    /// Legacy only: the client could not or would not answer; the tool reports
    /// this as a tool error, as the reference fixture does.
    Failed(String),
    /// Modern only: return this `InputRequiredResult` as the tool's result.
    InputRequired(Value),
}

/// Gets `need` answered by the client of `req`, as its era allows; see the module docs.
///
/// Errors are protocol errors for the modern era: -32021 when the request's
/// client capabilities lack `need.capability`, -32602 for a forged or foreign
/// `requestState`.
pub(crate) async fn ask(req: &Request, tool: &str, need: InputNeed) -> Result<Asked, RpcError> {
    match &req.era {
        RequestEra::Legacy => Ok(ask_legacy(req, need).await),
        RequestEra::Modern(meta) => {
            if meta.client_capabilities.get(need.capability).is_none() {
                return Err(RpcError::missing_capability(need.capability));
            }
            ask_modern(req, tool, need)
        }
    }
}

async fn ask_legacy(req: &Request, need: InputNeed) -> Asked {
    // Before `initialize` nothing is known, so try; after it, honour what was declared.
    if let Some(capabilities) = req.session.legacy_client_capabilities()
        && capabilities.get(need.capability).is_none()
    {
        return Asked::Failed(format!(
            "the client did not declare the {} capability",
            need.capability
        ));
    }
    match req
        .session
        .request_client(need.method, need.params, CLIENT_ANSWER_TIMEOUT)
        .await
    {
        Ok(result) => Asked::Answered(result),
        Err(error) => Asked::Failed(error.message),
    }
}

fn ask_modern(req: &Request, tool: &str, need: InputNeed) -> Result<Asked, RpcError> {
    if let Some(state) = req.params.get("requestState") {
        let state = state.as_str().and_then(unseal).ok_or_else(|| {
            RpcError::invalid_params("requestState is not one this server issued")
        })?;
        if state.get("tool").and_then(Value::as_str) != Some(tool)
            || state.get("key").and_then(Value::as_str) != Some(need.key)
        {
            return Err(RpcError::invalid_params(format!(
                "requestState does not belong to tool {tool}"
            )));
        }
        if let Some(answer) = req
            .params
            .get("inputResponses")
            .and_then(|responses| responses.get(need.key))
        {
            return Ok(Asked::Answered(answer.clone()));
        }
        // A retry without the answer we need: ask again below.
    } else if req.params.get("inputResponses").is_some() {
        return Err(RpcError::invalid_params(
            "inputResponses must come with the requestState they answer",
        ));
    }
    let state = seal(&json!({ "tool": tool, "key": need.key }));
    Ok(Asked::InputRequired(json!({
        "resultType": "input_required",
        "inputRequests": { need.key: { "method": need.method, "params": need.params } },
        "requestState": state,
    })))
}

/// The per-process key of the seal: a respawned server rejects its
/// predecessor's states, as a real server with rotating keys would.
static SEAL_KEY: LazyLock<RandomState> = LazyLock::new(RandomState::new);

/// `hex(json) "." hex(keyed hash)`. The keyed SipHash of std is a demo-grade
/// MAC: enough to make tampering and foreign tokens fail visibly in tests.
fn seal(state: &Value) -> String {
    let body = hex_encode(state.to_string().as_bytes());
    format!("{body}.{:016x}", tag(&body))
}

fn unseal(token: &str) -> Option<Value> {
    let (body, mac) = token.split_once('.')?;
    if format!("{:016x}", tag(body)) != mac {
        return None;
    }
    serde_json::from_slice(&hex_decode(body)?).ok()
}

fn tag(body: &str) -> u64 {
    let mut hasher = SEAL_KEY.build_hasher();
    hasher.write(body.as_bytes());
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trips_and_rejects_tampering() {
        let state = json!({ "tool": "test_sampling", "key": "sampling" });
        let token = seal(&state);
        assert_eq!(unseal(&token), Some(state));
        let forged = format!(
            "{}.0000000000000000",
            hex_encode(br#"{"tool":"x","key":"y"}"#)
        );
        assert_eq!(unseal(&forged), None);
        assert_eq!(unseal("garbage"), None);
    }
}
