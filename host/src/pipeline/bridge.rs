//! The era bridge for server→client requests, toward modern clients.
//!
//! A legacy upstream asks for sampling, elicitation or roots with a real
//! JSON-RPC request while it serves a call; a modern (2026-07-28) client
//! expects an `InputRequiredResult` instead and retries its request with the
//! answers. The [`Bridge`] keeps the upstream call waiting in a *round*,
//! answers the client with `inputRequests` and a `requestState` it signs
//! (HMAC-SHA256 with a key made at start), and on the retry verifies the
//! state, hands the answers to the waiting upstream requests and resumes the
//! call, which may end, or ask again (another round).
//!
//! The state binds the round to the route and to a digest of the original
//! request (method, target, arguments), carries an expiry, and is single
//! use: a forged, expired, replayed or mismatched state is refused.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::mcp::{self, RpcError, code};
use crate::upstream::{CallHandle, Caller, Reply, UpEvent};

/// Marks a `requestState` the gateway issued (others belong to a modern
/// upstream and pass through untouched).
const PREFIX: &str = "sy1.";

/// How long a round waits after the first server request for more that the
/// upstream sent at the same time, so that they go to the client together.
const GATHER: Duration = Duration::from_millis(20);

/// What a round is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub route: String,
    /// Hex SHA-256 of the canonical request (see [`digest`]).
    pub digest: String,
}

/// A suspended upstream call waiting for the client's answers.
struct Round {
    call: CallHandle,
    /// The upstream's name, for messages when the call resumes.
    upstream: String,
    /// Input key → the upstream request waiting for that answer.
    replies: Vec<(String, Reply)>,
    binding: Binding,
    expires_ms: u64,
}

/// See the module docs.
pub struct Bridge {
    key: [u8; 32],
    next: AtomicU64,
    rounds: Mutex<HashMap<u64, Round>>,
}

/// How a retry's state was judged.
pub enum Resumed {
    /// The call resumed (on this upstream): relay it on.
    Call(CallHandle, String),
    /// Not a state of ours: pass the request through unchanged.
    NotOurs,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The digest a round is bound to: who asked (the principal, when there is
/// one), the method, its target and arguments, without the retry's own
/// fields. serde_json's map keeps keys sorted, so
/// the serialization is canonical.
pub fn digest(
    route: &str,
    principal: Option<&str>,
    method: &str,
    params: Option<&Value>,
) -> Binding {
    let mut p = params.cloned().unwrap_or_else(|| json!({}));
    if let Some(obj) = p.as_object_mut() {
        for k in ["inputResponses", "requestState", "_meta"] {
            obj.remove(k);
        }
    }
    let canonical = json!({"principal": principal, "method": method, "params": p}).to_string();
    let hash = Sha256::digest(canonical.as_bytes());
    Binding {
        route: route.to_owned(),
        digest: hash.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

fn invalid(message: &str) -> RpcError {
    RpcError::new(
        code::INVALID_PARAMS,
        format!("invalid requestState: {message}"),
    )
}

/// The `_meta` key a legacy upstream may put on a server→client request to
/// name its input in the `InputRequiredResult` (letters, digits, `_`, `-`;
/// ignored if invalid or already used in the round).
pub const INPUT_KEY_HINT: &str = "io.switchyard/inputKey";

impl Default for Bridge {
    fn default() -> Self {
        Self::with_key(None)
    }
}

impl Bridge {
    /// A bridge signing with `key` (`[server] state_key`), or with a key
    /// made at start when `None`.
    pub fn with_key(key: Option<&[u8]>) -> Self {
        let key = match key {
            Some(k) => Sha256::digest(k).into(),
            None => {
                let mut key = [0u8; 32];
                rand::rng().fill_bytes(&mut key);
                key
            }
        };
        Self {
            key,
            next: AtomicU64::new(1),
            rounds: Mutex::new(HashMap::new()),
        }
    }
}

impl Bridge {
    fn mac(&self) -> Hmac<Sha256> {
        <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key).expect("HMAC takes any key length")
    }

    fn sign(&self, payload: &str) -> String {
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        let tag = mac.finalize().into_bytes();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!("{PREFIX}{}.{}", b64.encode(payload), b64.encode(tag))
    }

    /// Checks a state's signature and returns its payload.
    fn verify(&self, state: &str) -> Result<Value, RpcError> {
        let rest = state
            .strip_prefix(PREFIX)
            .ok_or_else(|| invalid("not issued here"))?;
        let (payload, tag) = rest.split_once('.').ok_or_else(|| invalid("malformed"))?;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let payload = b64.decode(payload).map_err(|_| invalid("malformed"))?;
        let tag = b64.decode(tag).map_err(|_| invalid("malformed"))?;
        let mut mac = self.mac();
        mac.update(&payload);
        mac.verify_slice(&tag)
            .map_err(|_| invalid("signature does not verify"))?;
        serde_json::from_slice(&payload).map_err(|_| invalid("malformed"))
    }

    /// Suspends `call`, whose upstream just asked the client for `first`
    /// (and perhaps more at once), and returns the `InputRequiredResult`.
    pub async fn suspend(
        &self,
        mut call: CallHandle,
        upstream: &str,
        first: (String, Option<Value>, Reply),
        binding: Binding,
        ttl: Duration,
        caller: Caller,
    ) -> Result<Value, RpcError> {
        let mut asked = vec![first];
        loop {
            match tokio::time::timeout(GATHER, call.next()).await {
                Ok(Some(UpEvent::ServerRequest {
                    method,
                    params,
                    reply,
                })) => {
                    asked.push((method, params, reply));
                }
                Ok(Some(UpEvent::Notification(_))) => {}
                Ok(Some(UpEvent::Response(r))) => {
                    for (_, _, reply) in asked {
                        reply.send(Err(RpcError::new(
                            code::INTERNAL_ERROR,
                            "the call already ended",
                        )));
                    }
                    return r;
                }
                Ok(None) | Err(_) => break,
            }
        }
        // Only what the client declared it can answer goes to it; the rest
        // is refused to the upstream. If nothing is left, the request needs
        // a capability the client lacks: -32021.
        let (asked, refused): (Vec<_>, Vec<_>) = asked
            .into_iter()
            .partition(|(method, _, _)| caller.can_answer(method));
        let first_refused = refused.first().map(|(m, _, _)| m.clone());
        for (method, _, reply) in refused {
            reply.send(Err(RpcError::new(
                code::METHOD_NOT_FOUND,
                mcp::missing_capability(&method).message,
            )));
        }
        if asked.is_empty() {
            return Err(mcp::missing_capability(
                first_refused.as_deref().unwrap_or(""),
            ));
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut requests = Map::new();
        let mut replies = Vec::with_capacity(asked.len());
        for (n, (method, params, reply)) in asked.into_iter().enumerate() {
            // The upstream may name the input (vendor `_meta` hint), so that a
            // modern client sees the key a native modern server would use.
            let hinted = params
                .as_ref()
                .and_then(|p| p.get("_meta"))
                .and_then(|m| m.get(INPUT_KEY_HINT))
                .and_then(Value::as_str)
                .filter(|k| {
                    !k.is_empty()
                        && k.len() <= 64
                        && k.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                        && !requests.contains_key(*k)
                });
            let key = match hinted {
                Some(k) => k.to_owned(),
                None => format!("input-{id}-{}", n + 1),
            };
            let mut req = json!({"method": method});
            if let Some(p) = params {
                req["params"] = p;
            }
            requests.insert(key.clone(), req);
            replies.push((key, reply));
        }
        call.park(true);
        let expires_ms = now_ms() + ttl.as_millis() as u64;
        let payload =
            json!({"r": id, "route": binding.route, "d": binding.digest, "exp": expires_ms});
        let state = self.sign(&payload.to_string());
        self.rounds.lock().expect("rounds lock").insert(
            id,
            Round {
                call,
                upstream: upstream.to_owned(),
                replies,
                binding,
                expires_ms,
            },
        );
        Ok(json!({
            "resultType": "input_required",
            "inputRequests": requests,
            "requestState": state,
        }))
    }

    /// A retry with `requestState`: verified against `binding`, its answers
    /// handed to the waiting upstream requests, the call resumed.
    pub fn resume(&self, params: &Value, binding: &Binding) -> Result<Resumed, RpcError> {
        let Some(state) = params.get("requestState").and_then(Value::as_str) else {
            return Ok(Resumed::NotOurs);
        };
        if !state.starts_with(PREFIX) {
            return Ok(Resumed::NotOurs);
        }
        let payload = self.verify(state)?;
        if payload["exp"].as_u64().is_none_or(|exp| exp <= now_ms()) {
            self.forget(payload["r"].as_u64());
            return Err(invalid("expired"));
        }
        if payload["route"].as_str() != Some(binding.route.as_str())
            || payload["d"].as_str() != Some(binding.digest.as_str())
        {
            return Err(invalid("it belongs to another request"));
        }
        let round = payload["r"]
            .as_u64()
            .and_then(|id| self.rounds.lock().expect("rounds lock").remove(&id))
            .ok_or_else(|| invalid("already used or unknown"))?;
        if round.binding != *binding {
            return Err(invalid("it belongs to another request"));
        }
        // Unparked before the answers go out: the upstream may ask again at
        // once, and that request belongs to this call.
        round.call.park(false);
        let responses = params.get("inputResponses");
        for (key, reply) in round.replies {
            match responses.and_then(|r| r.get(&key)) {
                Some(answer) => reply.send(Ok(answer.clone())),
                None => reply.send(Err(RpcError::new(
                    code::INVALID_PARAMS,
                    format!("the client gave no response for input `{key}`"),
                ))),
            }
        }
        Ok(Resumed::Call(round.call, round.upstream))
    }

    /// Drops rounds whose client never came back: the waiting upstream
    /// requests get an error and the call is cancelled.
    pub fn expire(&self) {
        let now = now_ms();
        let stale: Vec<Round> = {
            let mut rounds = self.rounds.lock().expect("rounds lock");
            let ids: Vec<u64> = rounds
                .iter()
                .filter(|(_, r)| r.expires_ms < now)
                .map(|(id, _)| *id)
                .collect();
            ids.into_iter()
                .filter_map(|id| rounds.remove(&id))
                .collect()
        };
        for round in stale {
            for (_, reply) in round.replies {
                reply.send(Err(RpcError::new(
                    code::INTERNAL_ERROR,
                    "the client did not answer in time",
                )));
            }
        }
    }

    fn forget(&self, id: Option<u64>) {
        if let Some(id) = id {
            self.rounds.lock().expect("rounds lock").remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::Dispatcher;
    use crate::upstream::conn::testing::Capture;

    const SAMPLING: Caller = Caller {
        client: 7,
        sampling: true,
        elicitation: false,
        roots: false,
    };

    /// A call whose upstream asked for sampling, suspended for `ttl`.
    async fn round(bridge: &Bridge, ttl: Duration) -> (Value, Capture, Binding) {
        round_with(bridge, ttl, json!({"maxTokens": 1})).await
    }

    /// [`round`] with the sampling request's params.
    async fn round_with(
        bridge: &Bridge,
        ttl: Duration,
        sampling: Value,
    ) -> (Value, Capture, Binding) {
        let out = Capture::default();
        let d = Dispatcher::new("u", out.clone(), |_| {});
        let mut call = d
            .call("tools/call", None, SAMPLING, Duration::from_secs(30))
            .unwrap();
        d.dispatch(
            json!({"jsonrpc":"2.0","id":"s1","method":"sampling/createMessage","params":sampling}),
        );
        let Some(UpEvent::ServerRequest {
            method,
            params,
            reply,
        }) = call.next().await
        else {
            panic!("the server request reaches the call")
        };
        let binding = digest("/mcp", None, "tools/call", Some(&json!({"name": "t"})));
        let result = bridge
            .suspend(
                call,
                "u",
                (method, params, reply),
                binding.clone(),
                ttl,
                SAMPLING,
            )
            .await
            .unwrap();
        (result, out, binding)
    }

    fn retry(result: &Value, state: &str) -> Value {
        let key = result["inputRequests"]
            .as_object()
            .unwrap()
            .keys()
            .next()
            .unwrap()
            .clone();
        json!({"name": "t", "requestState": state, "inputResponses": {key: {"role": "assistant", "content": {"type": "text", "text": "x"}, "model": "m"}}})
    }

    #[tokio::test]
    async fn a_configured_key_signs_the_same_everywhere() {
        let key = b"a-state-key-of-at-least-32-bytes!!".as_slice();
        let bridge = Bridge::with_key(Some(key));
        let (result, _, binding) = round(&bridge, Duration::from_secs(30)).await;
        let state = result["requestState"].as_str().unwrap();
        // Same key elsewhere: the signature holds (the round, in this
        // process's memory, is what the other one lacks).
        let twin = Bridge::with_key(Some(key));
        let Err(e) = twin.resume(&retry(&result, state), &binding) else {
            panic!("no round there")
        };
        assert!(e.message.contains("already used or unknown"), "{e}");
        // Another key: the signature fails first.
        let other = Bridge::with_key(Some(b"another-key-of-at-least-32-bytes!!!"));
        let Err(e) = other.resume(&retry(&result, state), &binding) else {
            panic!("another key must refuse")
        };
        assert!(!e.message.contains("already used or unknown"), "{e}");
    }

    #[tokio::test]
    async fn an_upstream_may_name_its_input() {
        let bridge = Bridge::default();
        let hinted = json!({"maxTokens": 1, "_meta": {INPUT_KEY_HINT: "user_name"}});
        let (result, _, _) = round_with(&bridge, Duration::from_secs(30), hinted).await;
        assert!(result["inputRequests"]["user_name"].is_object(), "{result}");
        // An invalid hint is ignored: the gateway names it.
        let bad = json!({"maxTokens": 1, "_meta": {INPUT_KEY_HINT: "no spaces allowed"}});
        let (result, _, _) = round_with(&bridge, Duration::from_secs(30), bad).await;
        let keys: Vec<&String> = result["inputRequests"]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        assert!(keys[0].starts_with("input-"), "{keys:?}");
    }

    #[tokio::test]
    async fn an_expired_state_is_refused_and_its_round_forgotten() {
        let bridge = Bridge::default();
        let (result, _, binding) = round(&bridge, Duration::ZERO).await;
        let state = result["requestState"].as_str().unwrap();
        let Err(e) = bridge.resume(&retry(&result, state), &binding) else {
            panic!("an expired state must be refused")
        };
        assert!(e.message.contains("expired"), "{e}");
        assert!(bridge.rounds.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_valid_state_answers_the_upstream_once() {
        let bridge = Bridge::default();
        let (result, out, binding) = round(&bridge, Duration::from_secs(30)).await;
        let state = result["requestState"].as_str().unwrap().to_owned();
        assert!(state.starts_with(PREFIX));
        // A state signed by another gateway (another key) is refused.
        let other = Bridge::default();
        assert!(other.resume(&retry(&result, &state), &binding).is_err());
        let Ok(Resumed::Call(..)) = bridge.resume(&retry(&result, &state), &binding) else {
            panic!("the round resumes")
        };
        let sent = out.0.lock().unwrap().clone();
        let answered = sent
            .iter()
            .find(|m| m["id"] == "s1")
            .expect("the upstream's request is answered")
            .clone();
        assert_eq!(answered["id"], "s1");
        assert_eq!(answered["result"]["content"]["text"], "x");
        assert!(
            bridge.resume(&retry(&result, &state), &binding).is_err(),
            "single use"
        );
        // Someone else's state (no prefix) is not ours: it passes through.
        assert!(matches!(
            bridge.resume(&json!({"requestState": "upstream-state"}), &binding),
            Ok(Resumed::NotOurs)
        ));
    }
}
