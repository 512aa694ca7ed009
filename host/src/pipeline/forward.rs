//! Forwarding: one request to one upstream, its notifications and
//! server→client requests relayed back, and the era bridge's rounds of
//! input toward a legacy client.

use serde_json::{Map, Value, json};

use super::*;

impl Gateway {
    /// Sends one request to one upstream and relays what comes back.
    pub(super) async fn forward(
        &self,
        up: &Upstream,
        ctx: &ClientCtx,
        method: &str,
        params: Option<Value>,
        sink: &Sink,
    ) -> Result<Value, Failure> {
        use tracing::Instrument;
        let span = tracing::debug_span!(
            target: crate::telemetry::TRACE_TARGET,
            "upstream.call",
            otel.name = %format!("upstream {method}"),
            otel.kind = "client",
            upstream = up.name().as_str(),
            method,
        );
        let mut result = self
            .forward_inner(up, ctx, method, params, sink)
            .instrument(span)
            .await;
        // A modern client's list and read results say how long they stay
        // fresh: the operator's hint for an upstream that gives none.
        if ctx.era == Era::Modern
            && (ListKind::of(method).is_some() || method == "resources/read")
            && let Some(hint) = up.spec().cache_hint
            && let Ok(Value::Object(obj)) = &mut result
            && obj.get("resultType").is_none_or(|t| t == "complete")
            && !obj.contains_key("ttlMs")
        {
            obj.insert("ttlMs".into(), hint.ttl_ms.into());
            obj.insert(
                "cacheScope".into(),
                if hint.public { "public" } else { "private" }.into(),
            );
        }
        result
    }

    async fn forward_inner(
        &self,
        up: &Upstream,
        ctx: &ClientCtx,
        method: &str,
        params: Option<Value>,
        sink: &Sink,
    ) -> Result<Value, Failure> {
        let live = up.live().await.map_err(Failure::upstream)?;
        // A modern upstream may answer a legacy client's request with an
        // InputRequiredResult: keep the request to retry it with the answers.
        let retry = (ctx.era == Era::Legacy
            && live.info.era == Era::Modern
            && matches!(method, "tools/call" | "prompts/get" | "resources/read"))
        .then(|| params.clone().unwrap_or_else(|| json!({})));
        let call = live
            .conn
            .call(
                method,
                adapt_params(params, ctx, &live.info),
                ctx.caller(),
                up.timeout(),
            )
            .map_err(Failure::upstream)?;
        let mut result = self.relay(call, up.name().as_str(), ctx, sink).await?;
        let Some(original) = retry else {
            return Ok(result);
        };
        for _ in 0..MAX_INPUT_ROUNDS {
            if result.get("resultType").and_then(Value::as_str) != Some("input_required") {
                return Ok(result);
            }
            let mut p = original.clone();
            p["inputResponses"] = ask_legacy_client(&result, ctx, sink, up.timeout()).await?;
            if let Some(state) = result.get("requestState") {
                p["requestState"] = state.clone();
            }
            let call = live
                .conn
                .call(
                    method,
                    adapt_params(Some(p), ctx, &live.info),
                    ctx.caller(),
                    up.timeout(),
                )
                .map_err(Failure::upstream)?;
            result = self.relay(call, up.name().as_str(), ctx, sink).await?;
        }
        Err(Failure::upstream(RpcError::new(
            code::INTERNAL_ERROR,
            format!(
                "upstream `{}` asked for input more than {MAX_INPUT_ROUNDS} times",
                up.name()
            ),
        )))
    }

    /// Relays one upstream call's events to the client until its result.
    /// A server request for a modern client suspends the call in a bridge
    /// round and answers the client with an `InputRequiredResult`.
    pub(super) async fn relay(
        &self,
        mut call: CallHandle,
        upstream: &str,
        ctx: &ClientCtx,
        sink: &Sink,
    ) -> Result<Value, Failure> {
        let caller = ctx.caller();
        while let Some(ev) = call.next().await {
            match ev {
                UpEvent::Response(r) => return r.map_err(Failure::upstream),
                UpEvent::Notification(n) => {
                    if ctx.wants(&n) {
                        let _ = sink.send(ClientEvent::Notification(n));
                    }
                }
                UpEvent::ServerRequest {
                    method: m,
                    params: p,
                    reply,
                } => {
                    let able = caller.can_answer(&m);
                    if ctx.era == Era::Modern {
                        if let Some(binding) = &ctx.binding {
                            let ttl = call.timeout();
                            return self
                                .bridge
                                .suspend(
                                    call,
                                    upstream,
                                    (m, p, reply),
                                    binding.clone(),
                                    ttl,
                                    caller,
                                )
                                .await
                                .map_err(Failure::upstream);
                        }
                        let error = if able {
                            RpcError::new(
                                code::INTERNAL_ERROR,
                                format!(
                                    "upstream `{upstream}` asked the client for {m} while serving a request that cannot carry input requests"
                                ),
                            )
                        } else {
                            mcp::missing_capability(&m)
                        };
                        reply.send(Err(RpcError::new(
                            code::METHOD_NOT_FOUND,
                            error.message.clone(),
                        )));
                        return Err(Failure::upstream(error));
                    }
                    if !able {
                        reply.send(Err(RpcError::new(
                            code::METHOD_NOT_FOUND,
                            format!("the client did not declare the capability for {m}"),
                        )));
                        continue;
                    }
                    if let Err(mpsc::error::SendError(ClientEvent::ServerRequest {
                        reply, ..
                    })) = sink.send(ClientEvent::ServerRequest {
                        method: m,
                        params: p,
                        reply,
                    }) {
                        reply.send(Err(RpcError::new(
                            code::INTERNAL_ERROR,
                            "the client went away",
                        )));
                    }
                }
            }
        }
        Err(Failure::upstream(RpcError::new(
            code::INTERNAL_ERROR,
            "the upstream call ended without a response",
        )))
    }
}

/// Rounds of input a modern upstream may ask a legacy client for in one
/// request before the gateway gives up (a loop guard, not a protocol limit).
const MAX_INPUT_ROUNDS: usize = 16;

/// The era bridge toward legacy clients: a modern upstream's
/// `inputRequests` become real server→client requests on the client's
/// session; their answers, keyed as the upstream keyed the requests, are the
/// `inputResponses` of the retry.
async fn ask_legacy_client(
    result: &Value,
    ctx: &ClientCtx,
    sink: &Sink,
    timeout: std::time::Duration,
) -> Result<Value, Failure> {
    let caller = ctx.caller();
    let mut waiting = Vec::new();
    let requests = result.get("inputRequests").and_then(Value::as_object);
    for (key, req) in requests.into_iter().flatten() {
        let method = req
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !caller.can_answer(method) {
            return Err(Failure::client(
                code::INVALID_REQUEST,
                format!(
                    "the upstream needs the client to answer {method}, a capability this session did not declare"
                ),
            ));
        }
        let (reply, answer) = Reply::local();
        sink.send(ClientEvent::ServerRequest {
            method: method.to_owned(),
            params: req.get("params").cloned(),
            reply,
        })
        .map_err(|_| Failure::client(code::INTERNAL_ERROR, "the client went away"))?;
        waiting.push((key.clone(), answer));
    }
    let mut responses = Map::new();
    for (key, answer) in waiting {
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(Ok(v))) => {
                responses.insert(key, v);
            }
            Ok(Ok(Err(e))) => return Err(Failure::client(e.code, e.message)),
            _ => {
                return Err(Failure::client(
                    code::INTERNAL_ERROR,
                    "the client did not answer the upstream's request in time",
                ));
            }
        }
    }
    Ok(Value::Object(responses))
}

/// Rewrites a request's params for the upstream's era: a legacy client's
/// request to a modern upstream gains the modern `_meta`; a modern client's
/// request to a legacy upstream loses the modern-only `_meta` keys.
fn adapt_params(params: Option<Value>, ctx: &ClientCtx, up: &PeerInfo) -> Option<Value> {
    match (ctx.era, up.era) {
        (Era::Legacy, Era::Modern) => {
            let mut p = params.unwrap_or_else(|| json!({}));
            let obj = p.as_object_mut()?;
            let meta = obj.entry("_meta").or_insert_with(|| json!({}));
            if let (Some(m), Value::Object(extra)) = (
                meta.as_object_mut(),
                upstream::modern_meta(&ctx.capabilities),
            ) {
                for (k, v) in extra {
                    m.entry(k).or_insert(v);
                }
            }
            Some(p)
        }
        (Era::Modern, Era::Legacy) => {
            let mut p = params?;
            if let Some(m) = p.get_mut("_meta").and_then(Value::as_object_mut) {
                m.retain(|k, _| !k.starts_with("io.modelcontextprotocol/"));
                if m.is_empty() {
                    p.as_object_mut()?.remove("_meta");
                }
            }
            Some(p)
        }
        _ => params,
    }
}
