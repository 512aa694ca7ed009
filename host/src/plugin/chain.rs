//! A route's chain: the order rule and the failure modes.
//!
//! The order rule:
//! 1. `on-request` runs in configured order over the plugins that asked for
//!    the hook and the method. Each may continue (with new params, principal,
//!    attributes for the ones after it), respond or reject.
//! 2. A respond or reject ends the request phase: later plugins and the
//!    upstream never see the request.
//! 3. `on-response` runs in reverse order over the plugins the request phase
//!    reached before it ended (a plugin that responded or rejected is not
//!    among them), so a plugin sees the outcome of what it let through —
//!    including a later plugin's rejection.
//! 4. `on-notification` runs in configured order; a drop ends it.
//!
//! A failing plugin (trap, deadline, memory cap, malformed output) fails only
//! the request at hand: `closed` turns it into an error naming the plugin,
//! `open` skips the plugin (logged, counted).

use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use serde_json::Value;

use super::bindings::{Scratch, types};
use super::instance::{Answer, Call, Fault, Loaded};
use crate::config::FailureMode;
use crate::mcp::{Era, RpcError, code};

/// The attribute naming the verified subject of the client's certificate.
pub const CLIENT_SUBJECT: &str = "tls.client-subject";

/// What the gateway knows about a request before the chain runs.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The gateway's id of this request, for logs.
    pub request_id: &'a str,
    pub route: &'a str,
    pub upstream: Option<&'a str>,
    pub method: &'a str,
    /// Tool or prompt name, or resource URI.
    pub target: Option<&'a str>,
    pub headers: Option<&'a HeaderMap>,
    pub client_address: Option<std::net::SocketAddr>,
    /// The verified subject of the client's TLS certificate (attribute
    /// [`CLIENT_SUBJECT`]).
    pub client_cert: Option<&'a str>,
    pub era: Era,
    pub protocol_version: &'a str,
}

/// A refusal as the client will see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub error: RpcError,
    /// The HTTP status; 200 keeps the error inside an ordinary reply.
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl Refusal {
    fn failed(plugin: &Loaded, fault: &Fault) -> Self {
        Self {
            error: RpcError::new(
                code::INTERNAL_ERROR,
                format!("plugin `{}` failed: {fault}", plugin.name()),
            ),
            status: 200,
            headers: Vec::new(),
        }
    }
}

/// What the request phase decided.
#[derive(Debug)]
pub enum Decision {
    /// Call the upstream with these params.
    Continue(Option<Value>),
    /// Answer with this result.
    Respond(Value),
    /// Answer with this error.
    Reject(Refusal),
}

/// The outcome the response phase works on.
pub type Outcome = Result<Value, Refusal>;

/// One request's passage through a chain: who the plugins said is asking,
/// their attributes, how far the request phase got, and each plugin's
/// scratch space.
#[derive(Debug, Default)]
pub struct Passage {
    pub principal: Option<String>,
    pub attributes: Vec<(String, String)>,
    /// How many plugins (from the front) the request phase reached.
    reached: usize,
    scratch: Vec<Scratch>,
}

/// A route's plugin instances in order, at one version.
#[derive(Debug, Default, Clone)]
pub struct Chain {
    plugins: Vec<Arc<Loaded>>,
}

impl Chain {
    pub fn new(plugins: Vec<Arc<Loaded>>) -> Self {
        Self { plugins }
    }

    /// Whether both chains are the same plugin versions in the same order.
    pub fn same_as(&self, other: &Chain) -> bool {
        self.plugins.len() == other.plugins.len()
            && self
                .plugins
                .iter()
                .zip(&other.plugins)
                .all(|(a, b)| Arc::ptr_eq(a, b))
    }

    pub fn is_empty(&self) -> bool {
        self.plugins.is_empty()
    }

    pub fn plugins(&self) -> &[Arc<Loaded>] {
        &self.plugins
    }

    /// Whether any plugin wants to see requests for `method` (so the caller
    /// can skip building facts).
    pub fn wants_request(&self, method: &str) -> bool {
        self.plugins
            .iter()
            .any(|p| (p.interest.on_request || p.interest.on_response) && p.interest.wants(method))
    }

    /// Whether any plugin wants the outcome of `method`.
    pub fn wants_response(&self, method: &str) -> bool {
        self.plugins
            .iter()
            .any(|p| p.interest.on_response && p.interest.wants(method))
    }

    /// The document a plugin of this chain serves at
    /// `/.well-known/{name}{route}` (the first that has one).
    pub fn well_known(&self, name: &str) -> Option<&Value> {
        self.plugins.iter().find_map(|p| {
            p.interest
                .well_known
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, doc)| doc)
        })
    }

    /// Whether any plugin wants notifications of `method`.
    pub fn wants_notification(&self, method: &str) -> bool {
        self.plugins
            .iter()
            .any(|p| p.interest.on_notification && p.interest.wants(method))
    }

    fn context(&self, p: &Loaded, facts: &Facts<'_>, passage: &Passage) -> types::Context {
        let headers = match facts.headers {
            Some(h) if !p.interest.headers.is_empty() => p
                .interest
                .headers
                .iter()
                .flat_map(|name| {
                    h.get_all(name.as_str())
                        .iter()
                        .filter_map(move |v| v.to_str().ok().map(|v| (name.clone(), v.to_owned())))
                })
                .collect(),
            _ => Vec::new(),
        };
        types::Context {
            request_id: facts.request_id.to_owned(),
            route: facts.route.to_owned(),
            upstream: facts.upstream.map(str::to_owned),
            method: facts.method.to_owned(),
            target: facts.target.map(str::to_owned),
            principal: passage.principal.clone(),
            attributes: match facts.client_cert {
                // The gateway's own attribute comes first: a plugin's
                // later value for the name replaces it.
                Some(subject) => std::iter::once((CLIENT_SUBJECT.to_owned(), subject.to_owned()))
                    .chain(passage.attributes.iter().cloned())
                    .collect(),
                None => passage.attributes.clone(),
            },
            headers,
            client_address: facts.client_address.map(|a| a.to_string()),
            era: match facts.era {
                Era::Legacy => types::Era::Legacy,
                Era::Modern => types::Era::Modern,
            },
            protocol_version: facts.protocol_version.to_owned(),
        }
    }

    fn scratch(passage: &mut Passage, i: usize) -> Scratch {
        while passage.scratch.len() <= i {
            passage
                .scratch
                .push(Arc::new(Mutex::new(Default::default())));
        }
        Arc::clone(&passage.scratch[i])
    }

    /// The request phase (rules 1 and 2).
    pub async fn on_request(
        &self,
        facts: &Facts<'_>,
        passage: &mut Passage,
        mut params: Option<Value>,
    ) -> Decision {
        // The params as JSON text, made once and again only after a plugin
        // replaced them.
        let mut text: Option<Option<String>> = None;
        for (i, p) in self.plugins.iter().enumerate() {
            passage.reached = i;
            if !(p.interest.on_request && p.interest.wants(facts.method)) {
                continue;
            }
            let ctx = self.context(p, facts, passage);
            let text_now = text
                .get_or_insert_with(|| params.as_ref().map(Value::to_string))
                .as_ref();
            let scratch = Self::scratch(passage, i);
            let answer = p
                .invoke(
                    Call::Request {
                        ctx: &ctx,
                        params: text_now,
                    },
                    &scratch,
                )
                .await;
            let decision = match answer {
                Ok(Answer::Request(d)) => d,
                Ok(_) => unreachable!("a request call answers with a request decision"),
                Err(fault) => match self.failed(p, "on-request", &fault) {
                    Some(refusal) => return Decision::Reject(refusal),
                    None => continue,
                },
            };
            match decision {
                types::RequestDecision::Continue(c) => {
                    if let Some(new) = c.params {
                        match parse(&new, "continue params") {
                            Ok(v) => {
                                params = Some(v);
                                text = Some(Some(new));
                            }
                            Err(fault) => match self.failed(p, "on-request", &fault) {
                                Some(refusal) => return Decision::Reject(refusal),
                                None => continue,
                            },
                        }
                    }
                    if let Some(principal) = c.principal {
                        passage.principal = Some(principal);
                    }
                    for (k, v) in c.attributes {
                        passage.attributes.retain(|(n, _)| *n != k);
                        passage.attributes.push((k, v));
                    }
                }
                types::RequestDecision::Respond(result) => match parse_result(&result, "respond") {
                    Ok(v) => return Decision::Respond(v),
                    // Open: as if the plugin had continued unchanged.
                    Err(fault) => match self.failed(p, "on-request", &fault) {
                        Some(refusal) => return Decision::Reject(refusal),
                        None => continue,
                    },
                },
                types::RequestDecision::Reject(r) => match refusal(r) {
                    Ok(r) => return Decision::Reject(r),
                    Err(fault) => match self.failed(p, "on-request", &fault) {
                        Some(refusal) => return Decision::Reject(refusal),
                        None => continue,
                    },
                },
            }
        }
        passage.reached = self.plugins.len();
        Decision::Continue(params)
    }

    /// The response phase (rule 3).
    pub async fn on_response(
        &self,
        facts: &Facts<'_>,
        passage: &mut Passage,
        params: Option<&Value>,
        mut outcome: Outcome,
    ) -> Outcome {
        let params_text = params.map(Value::to_string);
        let mut text: Option<Result<String, types::RpcError>> = None;
        for i in (0..passage.reached.min(self.plugins.len())).rev() {
            let p = &self.plugins[i];
            if !(p.interest.on_response && p.interest.wants(facts.method)) {
                continue;
            }
            let ctx = self.context(p, facts, passage);
            let wit_outcome = text.get_or_insert_with(|| match &outcome {
                Ok(v) => Ok(v.to_string()),
                Err(r) => Err(types::RpcError {
                    code: r.error.code as i32,
                    message: r.error.message.clone(),
                    data: r.error.data.as_ref().map(Value::to_string),
                }),
            });
            let scratch = Self::scratch(passage, i);
            let answer = p
                .invoke(
                    Call::Response {
                        ctx: &ctx,
                        params: params_text.as_ref(),
                        outcome: wit_outcome,
                    },
                    &scratch,
                )
                .await;
            let decision = match answer {
                Ok(Answer::Response(d)) => d,
                Ok(_) => unreachable!("a response call answers with a response decision"),
                Err(fault) => {
                    if let Some(r) = self.failed(p, "on-response", &fault) {
                        outcome = Err(r);
                        text = None;
                    }
                    continue;
                }
            };
            match decision {
                types::ResponseDecision::Continue => {}
                types::ResponseDecision::Replace(result) => {
                    match parse_result(&result, "replace") {
                        Ok(v) => {
                            outcome = Ok(v);
                            text = Some(Ok(result));
                        }
                        Err(fault) => {
                            if let Some(r) = self.failed(p, "on-response", &fault) {
                                outcome = Err(r);
                                text = None;
                            }
                        }
                    }
                }
                types::ResponseDecision::Reject(r) => {
                    match refusal(r) {
                        Ok(r) => outcome = Err(r),
                        Err(fault) => {
                            if let Some(r) = self.failed(p, "on-response", &fault) {
                                outcome = Err(r);
                            }
                        }
                    }
                    text = None;
                }
            }
        }
        outcome
    }

    /// The notification phase (rule 4): `None` means dropped.
    pub async fn on_notification(
        &self,
        route: &str,
        upstream: Option<&str>,
        method: &str,
        mut params: Option<Value>,
    ) -> Option<Option<Value>> {
        for p in &self.plugins {
            if !(p.interest.on_notification && p.interest.wants(method)) {
                continue;
            }
            let note = types::Notification {
                route: route.to_owned(),
                upstream: upstream.map(str::to_owned),
                method: method.to_owned(),
                params: params.as_ref().map(Value::to_string),
            };
            let scratch: Scratch = Default::default();
            match p.invoke(Call::Notification(&note), &scratch).await {
                Ok(Answer::Notification(d)) => match d {
                    types::NotificationDecision::Continue => {}
                    types::NotificationDecision::Drop => return None,
                    types::NotificationDecision::Replace(new) => match parse(&new, "replace") {
                        Ok(v) => params = Some(v),
                        Err(fault) => self.log_notification_failure(p, &fault),
                    },
                },
                Ok(_) => unreachable!("a notification call answers with a notification decision"),
                // A notification has no requester to answer: a failing
                // plugin is skipped whatever its mode, and logged.
                Err(fault) => self.log_notification_failure(p, &fault),
            }
        }
        Some(params)
    }

    fn log_notification_failure(&self, p: &Loaded, fault: &Fault) {
        tracing::warn!(plugin = %p.name(), hook = "on-notification", %fault, "plugin failed; notification delivered without it");
        count_failure(p, "on-notification", "skipped");
    }

    /// Applies the plugin's failure mode: `Some` is the refusal the client
    /// gets (closed), `None` means skip it (open).
    fn failed(&self, p: &Loaded, hook: &'static str, fault: &Fault) -> Option<Refusal> {
        match p.spec.failure {
            FailureMode::Closed => {
                tracing::warn!(plugin = %p.name(), hook, %fault, "plugin failed; request refused (failure = closed)");
                count_failure(p, hook, "refused");
                Some(Refusal::failed(p, fault))
            }
            FailureMode::Open => {
                tracing::warn!(plugin = %p.name(), hook, %fault, "plugin failed; skipped (failure = open)");
                count_failure(p, hook, "skipped");
                None
            }
        }
    }
}

fn count_failure(p: &Loaded, hook: &'static str, outcome: &'static str) {
    metrics::counter!(
        "switchyard_plugin_failures_total",
        "plugin" => p.name().as_str().to_owned(),
        "hook" => hook,
        "outcome" => outcome,
    )
    .increment(1);
}

fn parse(text: &str, what: &str) -> Result<Value, Fault> {
    serde_json::from_str(text).map_err(|e| Fault::Malformed(format!("{what} is not JSON: {e}")))
}

/// A result a plugin answers with: JSON, and an object (every MCP result is).
fn parse_result(text: &str, what: &str) -> Result<Value, Fault> {
    match parse(text, what)? {
        v @ Value::Object(_) => Ok(v),
        other => Err(Fault::Malformed(format!(
            "{what}: a result must be a JSON object, not {other}"
        ))),
    }
}

/// Checks a plugin's rejection: a real HTTP status, valid header names and
/// values, JSON `data`.
fn refusal(r: types::Rejection) -> Result<Refusal, Fault> {
    if !(200..=599).contains(&r.http_status) {
        return Err(Fault::Malformed(format!(
            "reject: HTTP status {} is not between 200 and 599",
            r.http_status
        )));
    }
    for (k, v) in &r.headers {
        if axum::http::HeaderName::from_bytes(k.as_bytes()).is_err()
            || axum::http::HeaderValue::from_str(v).is_err()
        {
            return Err(Fault::Malformed(format!(
                "reject: `{k}: {v}` is not a valid header"
            )));
        }
    }
    let mut error = RpcError::new(r.error.code.into(), r.error.message);
    if let Some(d) = r.error.data {
        error = error.with_data(parse(&d, "reject data")?);
    }
    Ok(Refusal {
        error,
        status: r.http_status,
        headers: r.headers,
    })
}
