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
//! never sees which era it is in. A tool that needs several answers, possibly
//! over several rounds, calls [`gather`] instead (the `test_input_required_result_*`
//! fixture): legacy sends each round's requests together and waits for all of
//! them; modern returns one `InputRequiredResult` per round, the answers so far
//! sealed into `requestState`.

use std::future::Future;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::Poll;
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::protocol::{RpcError, hex_decode, hex_encode};
use crate::request::{Request, RequestEra};

/// How long a legacy tool waits for the client to answer its request.
const CLIENT_ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

/// One thing a tool needs from the client.
pub(crate) struct InputNeed {
    /// Key in `inputRequests` / `inputResponses` (modern era).
    pub key: &'static str,
    /// `sampling/createMessage`, `elicitation/create` or `roots/list`.
    pub method: &'static str,
    pub params: Value,
    /// The client capability the method requires (`sampling`, `elicitation`, `roots`).
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
    // A vendor hint naming the input: a gateway that turns this request into
    // a modern `InputRequiredResult` (Switchyard's era bridge) uses it as the
    // key, the one a modern client of this server would see.
    let mut params = need.params;
    params["_meta"] = serde_json::json!({ "io.switchyard/inputKey": need.key });
    match req
        .session
        .request_client(need.method, params, CLIENT_ANSWER_TIMEOUT)
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

/// What became of [`gather`]ing.
pub(crate) enum Gathered {
    /// Every round answered: the client's results keyed by [`InputNeed::key`].
    Answered(Map<String, Value>),
    /// Legacy only: the client could not or would not answer one of the requests.
    Failed(String),
    /// Modern only: return this `InputRequiredResult` as the result.
    InputRequired(Value),
}

/// Gets every need of every round answered, round after round; see the module docs.
///
/// Modern rules: a need whose capability the request's client capabilities
/// lack is -32021; `inputResponses` must be an object (-32602) and the answer
/// to a requested key must look like that method's result (-32602); extra keys
/// are ignored. Without `requestState` a retry is taken as round 1, with its
/// answers accepted unless `state_required`; missing answers are asked for
/// again (a new `InputRequiredResult`, not an error). A forged, tampered or
/// foreign `requestState` is -32602.
pub(crate) async fn gather(
    req: &Request,
    tool: &str,
    rounds: Vec<Vec<InputNeed>>,
    state_required: bool,
) -> Result<Gathered, RpcError> {
    match &req.era {
        RequestEra::Legacy => Ok(gather_legacy(req, rounds).await),
        RequestEra::Modern(meta) => {
            if let Some(need) = rounds
                .iter()
                .flatten()
                .find(|need| meta.client_capabilities.get(need.capability).is_none())
            {
                return Err(RpcError::missing_capability(need.capability));
            }
            gather_modern(req, tool, &rounds, state_required)
        }
    }
}

async fn gather_legacy(req: &Request, rounds: Vec<Vec<InputNeed>>) -> Gathered {
    // Refuse before sending anything rather than half-way through a round.
    if let Some(capabilities) = req.session.legacy_client_capabilities()
        && let Some(need) = rounds
            .iter()
            .flatten()
            .find(|need| capabilities.get(need.capability).is_none())
    {
        return Gathered::Failed(format!(
            "the client did not declare the {} capability",
            need.capability
        ));
    }
    let mut answers = Map::new();
    for round in rounds {
        let keys: Vec<&str> = round.iter().map(|need| need.key).collect();
        // All requests of a round are outstanding together, as the modern
        // era's `inputRequests` are.
        let asked = join_all(
            round
                .into_iter()
                .map(|need| ask_legacy(req, need))
                .collect(),
        )
        .await;
        for (key, asked) in keys.into_iter().zip(asked) {
            match asked {
                Asked::Answered(answer) => {
                    answers.insert(key.to_owned(), answer);
                }
                Asked::Failed(reason) => return Gathered::Failed(reason),
                Asked::InputRequired(result) => return Gathered::InputRequired(result),
            }
        }
    }
    Gathered::Answered(answers)
}

fn gather_modern(
    req: &Request,
    tool: &str,
    rounds: &[Vec<InputNeed>],
    state_required: bool,
) -> Result<Gathered, RpcError> {
    let responses = match req.params.get("inputResponses") {
        None => None,
        Some(Value::Object(responses)) => Some(responses),
        Some(_) => {
            return Err(RpcError::invalid_params(
                "inputResponses must be an object keyed by the ids of inputRequests",
            ));
        }
    };
    let (mut round, mut answers, verified) = match req.params.get("requestState") {
        None => (0, Map::new(), false),
        Some(token) => {
            let foreign = || RpcError::invalid_params("requestState is not one this server issued");
            let state = token.as_str().and_then(unseal).ok_or_else(foreign)?;
            if state.get("tool").and_then(Value::as_str) != Some(tool) {
                return Err(RpcError::invalid_params(format!(
                    "requestState does not belong to {tool}"
                )));
            }
            let round = state
                .get("round")
                .and_then(Value::as_u64)
                .and_then(|round| usize::try_from(round).ok())
                .filter(|round| *round < rounds.len())
                .ok_or_else(foreign)?;
            let answers = state
                .get("answers")
                .and_then(Value::as_object)
                .cloned()
                .ok_or_else(foreign)?;
            (round, answers, true)
        }
    };
    if let Some(responses) = responses
        && (verified || !state_required)
    {
        for need in &rounds[round] {
            if let Some(answer) = responses.get(need.key) {
                check_answer(need, answer)?;
                answers.insert(need.key.to_owned(), answer.clone());
            }
        }
    }
    let mut missing: Vec<&InputNeed> = rounds[round]
        .iter()
        .filter(|need| !answers.contains_key(need.key))
        .collect();
    if missing.is_empty() {
        round += 1;
        if round == rounds.len() {
            return Ok(Gathered::Answered(answers));
        }
        missing = rounds[round].iter().collect();
    }
    let requests: Map<String, Value> = missing
        .into_iter()
        .map(|need| {
            let request = json!({ "method": need.method, "params": need.params });
            (need.key.to_owned(), request)
        })
        .collect();
    let state = seal(&json!({ "tool": tool, "round": round, "answers": answers }));
    Ok(Gathered::InputRequired(json!({
        "resultType": "input_required",
        "inputRequests": requests,
        "requestState": state,
    })))
}

/// -32602 unless `answer` looks like a result of `need.method`.
fn check_answer(need: &InputNeed, answer: &Value) -> Result<(), RpcError> {
    let key = need.key;
    let invalid = |what: &str| {
        Err(RpcError::invalid_params(format!(
            "inputResponses.{key} must be {what} (the result of {})",
            need.method
        )))
    };
    let Value::Object(answer) = answer else {
        return invalid("an object");
    };
    match need.method {
        "elicitation/create" => match answer.get("action").and_then(Value::as_str) {
            Some("accept" | "decline" | "cancel") => Ok(()),
            _ => invalid("an object whose action is accept, decline or cancel"),
        },
        "sampling/createMessage" if !answer.contains_key("content") => {
            invalid("an object with content")
        }
        "roots/list" if !answer.get("roots").is_some_and(Value::is_array) => {
            invalid("an object with a roots array")
        }
        _ => Ok(()),
    }
}

/// Polls every future in turn until all are done: their first polls (which
/// send the requests) happen in order, without spawning tasks.
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => done = false,
                }
            }
        }
        if done { Poll::Ready(()) } else { Poll::Pending }
    })
    .await;
    outputs.into_iter().flatten().collect()
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
