//! One JSON-RPC connection to an upstream, shared by every client.
//!
//! The [`Dispatcher`] owns the id space of the connection: each call gets a
//! fresh upstream id (clients' own ids never travel upstream, so two clients
//! that both send `id: 1` cannot collide), progress tokens are rewritten to
//! that id and restored on the way down, and every message the upstream sends
//! is delivered to exactly one place:
//!
//! - a response, to the [`CallHandle`] that is waiting for it;
//! - `notifications/progress`, to the call whose token it carries;
//! - a change notification (`list_changed`, `resources/updated`), to the
//!   connection's change sink, which fans out to listening clients;
//! - anything else that belongs to a request (log messages, server→client
//!   requests such as sampling) but carries no link to it, to the call it is
//!   attributed to (see [`Dispatcher::attribute`]).
//!
//! Dropping a [`CallHandle`] before its response arrives cancels the call
//! upstream with `notifications/cancelled`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::mcp::{self, RpcError, code};

/// Sends one message to the upstream. Fire and forget: transport failures
/// surface as the connection dying, which fails every pending call.
pub trait Outbound: Send + Sync + 'static {
    fn send(&self, msg: Value);

    /// Cancels call `id`, whose caller went away. On stdio (and legacy HTTP)
    /// that is a `notifications/cancelled`; a modern HTTP transport instead
    /// closes the request's stream, which is how that era cancels.
    fn cancel(&self, id: u64) {
        self.send(mcp::notification(
            "notifications/cancelled",
            Some(json!({"requestId": id, "reason": "the client went away or cancelled"})),
        ));
    }
}

/// Who made a call: used only to attribute upstream messages that carry no
/// request link (stdio servers' log notifications and server→client requests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// The client session (legacy) or request (modern) the call belongs to.
    pub client: u64,
    /// The client declared `sampling`.
    pub sampling: bool,
    /// The client declared `elicitation`.
    pub elicitation: bool,
    /// The client declared `roots`.
    pub roots: bool,
}

impl Caller {
    /// A call the gateway makes for itself (handshake, list fan-out warm-up).
    pub const GATEWAY: Caller = Caller {
        client: 0,
        sampling: false,
        elicitation: false,
        roots: false,
    };

    /// Whether the client declared the capability `method` needs.
    pub fn can_answer(&self, method: &str) -> bool {
        match mcp::capability_for(method) {
            Some("sampling") => self.sampling,
            Some("elicitation") => self.elicitation,
            Some("roots") => self.roots,
            _ => false,
        }
    }
}

/// What the upstream sent for one call.
#[derive(Debug)]
pub enum UpEvent {
    /// A request-scoped notification (progress with the client's own token
    /// restored, or a log message).
    Notification(Value),
    /// A server→client request the client must answer through `reply`.
    ServerRequest {
        method: String,
        params: Option<Value>,
        reply: Reply,
    },
    /// The final answer.
    Response(Result<Value, RpcError>),
}

/// Answers one server→client request: on the upstream connection it came
/// from, or, for a request the gateway itself makes of a client (the era
/// bridge toward legacy clients), to the task waiting for it.
#[derive(Debug)]
pub struct Reply(ReplyTo);

#[derive(Debug)]
enum ReplyTo {
    Upstream {
        id: Value,
        conn: std::sync::Weak<Dispatcher>,
    },
    Local(tokio::sync::oneshot::Sender<Result<Value, RpcError>>),
}

impl Reply {
    /// A reply whose answer arrives on the returned receiver.
    pub fn local() -> (
        Reply,
        tokio::sync::oneshot::Receiver<Result<Value, RpcError>>,
    ) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (Reply(ReplyTo::Local(tx)), rx)
    }

    pub fn send(self, result: Result<Value, RpcError>) {
        match self.0 {
            ReplyTo::Upstream { id, conn } => {
                if let Some(conn) = conn.upgrade() {
                    conn.outbound.send(mcp::response(id, result));
                }
            }
            ReplyTo::Local(tx) => {
                let _ = tx.send(result);
            }
        }
    }
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("name", &self.name)
            .finish()
    }
}

struct Pending {
    tx: mpsc::UnboundedSender<UpEvent>,
    caller: Caller,
    /// The client's own progress token, restored on the way down.
    progress_token: Option<Value>,
    /// How long the call may wait in silence, and until when it may now.
    timeout: Duration,
    deadline: Instant,
    /// Parked by the era bridge, waiting for a modern client to come back
    /// with answers: its own server request is outstanding, so a new one
    /// is not attributed to it.
    parked: bool,
}

impl Pending {
    /// Delivers an event; the upstream spoke, so the silence clock restarts.
    fn deliver(&mut self, ev: UpEvent) {
        self.deadline = Instant::now() + self.timeout;
        let _ = self.tx.send(ev);
    }
}

/// How often a connection looks for calls past their deadline. Timeouts are
/// enforced by this one sweep per connection rather than a timer per call:
/// arming a timer per request woke the runtime's driver thread on every
/// call, which measurably added latency. The cost is up to this much
/// lateness on a timeout.
const SWEEP: Duration = Duration::from_millis(250);

/// The shared side of one upstream connection (see the module docs).
pub struct Dispatcher {
    name: String,
    next_id: AtomicU64,
    pending: Mutex<HashMap<u64, Pending>>,
    outbound: Box<dyn Outbound>,
    on_change: Box<dyn Fn(Value) + Send + Sync>,
    closed: Mutex<Option<String>>,
}

impl Dispatcher {
    pub fn new(
        name: &str,
        outbound: impl Outbound,
        on_change: impl Fn(Value) + Send + Sync + 'static,
    ) -> Arc<Self> {
        let conn = Arc::new(Self {
            name: name.to_owned(),
            next_id: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
            outbound: Box::new(outbound),
            on_change: Box::new(on_change),
            closed: Mutex::new(None),
        });
        tokio::spawn(sweep(Arc::downgrade(&conn)));
        conn
    }

    /// Fails the calls whose upstream stayed silent past their timeout.
    fn expire(&self) {
        let now = Instant::now();
        let overdue: Vec<(u64, Pending)> = {
            let mut pending = self.pending.lock().expect("pending lock");
            let ids: Vec<u64> = pending
                .iter()
                .filter(|(_, p)| p.deadline <= now)
                .map(|(id, _)| *id)
                .collect();
            ids.into_iter()
                .filter_map(|id| pending.remove(&id).map(|p| (id, p)))
                .collect()
        };
        for (id, p) in overdue {
            let _ = p.tx.send(UpEvent::Response(Err(RpcError::new(
                code::UPSTREAM_ERROR,
                format!(
                    "upstream `{}` sent nothing for {}",
                    self.name,
                    humantime::format_duration(p.timeout)
                ),
            ))));
            if !self.is_closed() {
                self.outbound.cancel(id);
            }
        }
    }

    /// Sends a request upstream under a fresh id.
    pub fn call(
        self: &Arc<Self>,
        method: &str,
        mut params: Option<Value>,
        caller: Caller,
        timeout: Duration,
    ) -> Result<CallHandle, RpcError> {
        if let Some(reason) = self.closed.lock().expect("closed lock").clone() {
            return Err(RpcError::new(code::UPSTREAM_ERROR, reason));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let progress_token = params
            .as_mut()
            .and_then(|p| p.get_mut("_meta"))
            .and_then(Value::as_object_mut)
            .and_then(|m| m.get_mut("progressToken"))
            .map(|t| std::mem::replace(t, Value::from(id)));
        let (tx, rx) = mpsc::unbounded_channel();
        self.pending.lock().expect("pending lock").insert(
            id,
            Pending {
                tx,
                caller,
                progress_token,
                timeout,
                deadline: Instant::now() + timeout,
                parked: false,
            },
        );
        self.outbound
            .send(mcp::request(Value::from(id), method, params));
        Ok(CallHandle {
            id,
            rx,
            conn: Arc::clone(self),
            done: false,
        })
    }

    /// Sends a notification upstream (e.g. `notifications/initialized`).
    pub fn notify(&self, method: &str, params: Option<Value>) {
        self.outbound.send(mcp::notification(method, params));
    }

    /// Routes one message received from the upstream.
    pub fn dispatch(self: &Arc<Self>, msg: Value) {
        self.dispatch_on(msg, None);
    }

    /// Routes one message that arrived on the response stream of call `on`
    /// (remote HTTP upstreams): a log message or server request there belongs
    /// to that call, with no guessing.
    pub fn dispatch_on(self: &Arc<Self>, msg: Value, on: Option<u64>) {
        let msg = match mcp::Message::from_value(msg) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(upstream = %self.name, error = %e, "upstream sent an invalid JSON-RPC message");
                return;
            }
        };
        match msg {
            mcp::Message::Response { id, result } => {
                let Some(id) = id.as_u64() else {
                    tracing::warn!(upstream = %self.name, %id, "response with an id the gateway never sent");
                    return;
                };
                let pending = self.pending.lock().expect("pending lock").remove(&id);
                match pending {
                    Some(mut p) => p.deliver(UpEvent::Response(result)),
                    None => {
                        tracing::debug!(upstream = %self.name, id, "response for a call no longer waiting")
                    }
                }
            }
            mcp::Message::Notification { method, mut params } => {
                if mcp::is_change_notification(&method)
                    || method == "notifications/subscriptions/acknowledged"
                {
                    (self.on_change)(mcp::notification(&method, params));
                    return;
                }
                if method == "notifications/progress" {
                    let token = params
                        .as_ref()
                        .and_then(|p| p.get("progressToken"))
                        .and_then(Value::as_u64);
                    let mut pending = self.pending.lock().expect("pending lock");
                    if let Some(p) = token.and_then(|t| pending.get_mut(&t))
                        && let Some(t) = p.progress_token.clone()
                    {
                        if let Some(obj) = params.as_mut().and_then(Value::as_object_mut) {
                            obj.insert("progressToken".into(), t);
                        }
                        p.deliver(UpEvent::Notification(mcp::notification(&method, params)));
                    }
                    return;
                }
                let mut pending = self.pending.lock().expect("pending lock");
                match Self::owner(&pending, on).or_else(|| Self::attribute(&pending, None)) {
                    Some(id) => {
                        if let Some(p) = pending.get_mut(&id) {
                            p.deliver(UpEvent::Notification(mcp::notification(&method, params)));
                        }
                    }
                    None => {
                        tracing::debug!(upstream = %self.name, %method, "notification outside any attributable call dropped")
                    }
                }
            }
            mcp::Message::Request { id, method, params } => {
                if method == "ping" {
                    self.outbound.send(mcp::response(id, Ok(json!({}))));
                    return;
                }
                let reply = Reply(ReplyTo::Upstream {
                    id: id.clone(),
                    conn: Arc::downgrade(self),
                });
                let mut pending = self.pending.lock().expect("pending lock");
                match Self::owner(&pending, on).or_else(|| Self::attribute(&pending, Some(&method)))
                {
                    Some(pid) => {
                        if let Some(p) = pending.get_mut(&pid) {
                            p.deliver(UpEvent::ServerRequest {
                                method,
                                params,
                                reply,
                            });
                        }
                    }
                    None => {
                        drop(pending);
                        tracing::warn!(upstream = %self.name, %method, "server request with no single client to answer it");
                        reply.send(Err(RpcError::new(
                            code::METHOD_NOT_FOUND,
                            format!(
                                "no client can answer {method}: the gateway relays it only while exactly one client session has requests in flight on this upstream"
                            ),
                        )));
                    }
                }
            }
        }
    }

    /// The call a message's transport ties it to, if that call still waits.
    fn owner(pending: &HashMap<u64, Pending>, on: Option<u64>) -> Option<u64> {
        on.filter(|id| pending.contains_key(id))
    }

    /// Picks the call that an unlinked upstream message belongs to.
    ///
    /// A stdio server says nothing about which request a log message or a
    /// sampling request belongs to. The rule: among calls in flight, if they
    /// all belong to one client, the newest call of that client; if several
    /// clients have calls in flight and this is a server request, the one
    /// client able to answer it (by declared capability), if exactly one is.
    /// Otherwise nobody: a wrong guess would leak one client's data to another.
    fn attribute(pending: &HashMap<u64, Pending>, server_method: Option<&str>) -> Option<u64> {
        let user_calls = || {
            pending
                .iter()
                .filter(|(_, p)| p.caller.client != 0 && !p.parked)
        };
        let newest_of = |client: u64| {
            user_calls()
                .filter(|(_, p)| p.caller.client == client)
                .map(|(id, _)| *id)
                .max()
        };
        let mut clients = user_calls().map(|(_, p)| p.caller.client);
        let first = clients.next()?;
        if clients.all(|c| c == first) {
            return newest_of(first);
        }
        let method = server_method?;
        let mut able = user_calls()
            .filter(|(_, p)| p.caller.can_answer(method))
            .map(|(_, p)| p.caller.client);
        let one = able.next()?;
        if able.all(|c| c == one) {
            newest_of(one)
        } else {
            None
        }
    }

    /// Fails every pending call and refuses new ones (the connection is gone).
    pub fn close(&self, reason: String) {
        *self.closed.lock().expect("closed lock") = Some(reason.clone());
        let pending: Vec<Pending> = self
            .pending
            .lock()
            .expect("pending lock")
            .drain()
            .map(|(_, p)| p)
            .collect();
        for p in pending {
            let _ = p.tx.send(UpEvent::Response(Err(RpcError::new(
                code::UPSTREAM_ERROR,
                reason.clone(),
            ))));
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closed.lock().expect("closed lock").is_some()
    }

    /// Number of client calls waiting for a response (the gateway's own
    /// long-lived calls, such as its upstream subscription, are not counted).
    pub fn in_flight(&self) -> usize {
        self.pending
            .lock()
            .expect("pending lock")
            .values()
            .filter(|p| p.caller.client != 0)
            .count()
    }

    fn cancel(&self, id: u64) {
        if self
            .pending
            .lock()
            .expect("pending lock")
            .remove(&id)
            .is_some()
            && !self.is_closed()
        {
            self.outbound.cancel(id);
        }
    }
}

/// Expires overdue calls every [`SWEEP`] until the connection is gone.
async fn sweep(conn: std::sync::Weak<Dispatcher>) {
    loop {
        tokio::time::sleep(SWEEP).await;
        match conn.upgrade() {
            Some(c) if !c.is_closed() => c.expire(),
            _ => return,
        }
    }
}

/// One call in flight: read its events with [`CallHandle::next`]; drop it
/// to cancel.
pub struct CallHandle {
    id: u64,
    rx: mpsc::UnboundedReceiver<UpEvent>,
    conn: Arc<Dispatcher>,
    done: bool,
}

impl CallHandle {
    /// Parks or unparks the call (see `Pending::parked`).
    pub fn park(&self, parked: bool) {
        if let Some(p) = self
            .conn
            .pending
            .lock()
            .expect("pending lock")
            .get_mut(&self.id)
        {
            p.parked = parked;
        }
    }

    /// How long this call may wait in silence.
    pub fn timeout(&self) -> Duration {
        self.conn
            .pending
            .lock()
            .expect("pending lock")
            .get(&self.id)
            .map(|p| p.timeout)
            .unwrap_or(Duration::ZERO)
    }

    /// The next event. The last is always a response: the upstream's, or an
    /// error when the connection closed or the upstream stayed silent past
    /// its timeout. After the response, `None`.
    pub async fn next(&mut self) -> Option<UpEvent> {
        if self.done {
            return None;
        }
        let ev = self.rx.recv().await.unwrap_or_else(|| {
            UpEvent::Response(Err(RpcError::new(
                code::UPSTREAM_ERROR,
                format!("upstream `{}` closed the connection", self.conn.name),
            )))
        });
        if matches!(ev, UpEvent::Response(_)) {
            self.done = true;
        }
        Some(ev)
    }

    /// Waits for the final response, discarding notifications and refusing
    /// server requests (for calls the gateway makes on its own behalf).
    pub async fn result(mut self) -> Result<Value, RpcError> {
        while let Some(ev) = self.next().await {
            match ev {
                UpEvent::Response(r) => return r,
                UpEvent::Notification(_) => {}
                UpEvent::ServerRequest { method, reply, .. } => reply.send(Err(RpcError::new(
                    code::METHOD_NOT_FOUND,
                    format!("{method} is not available here"),
                ))),
            }
        }
        unreachable!("next() yields a response before None")
    }
}

impl Drop for CallHandle {
    fn drop(&mut self) {
        if !self.done {
            self.conn.cancel(self.id);
        }
    }
}

/// Test support: an [`Outbound`] that records what would go upstream.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::{Arc, Mutex};

    use serde_json::Value;

    use super::Outbound;

    #[derive(Clone, Default)]
    pub(crate) struct Capture(pub Arc<Mutex<Vec<Value>>>);

    impl Outbound for Capture {
        fn send(&self, msg: Value) {
            self.0.lock().unwrap().push(msg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::Capture;
    use super::*;

    fn caller(client: u64) -> Caller {
        Caller {
            client,
            sampling: client == 2,
            elicitation: false,
            roots: false,
        }
    }

    #[tokio::test]
    async fn ids_are_rewritten_and_progress_restored() {
        let out = Capture::default();
        let d = Dispatcher::new("u", out.clone(), |_| {});
        let t = Duration::from_secs(5);
        let mut a = d
            .call(
                "tools/call",
                Some(json!({"_meta": {"progressToken": "mine"}})),
                caller(1),
                t,
            )
            .unwrap();
        let mut b = d.call("tools/call", None, caller(2), t).unwrap();
        let sent = out.0.lock().unwrap().clone();
        assert_ne!(sent[0]["id"], sent[1]["id"]);
        let a_id = sent[0]["id"].clone();
        assert_eq!(sent[0]["params"]["_meta"]["progressToken"], a_id);

        d.dispatch(json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken": a_id, "progress": 1}}));
        d.dispatch(json!({"jsonrpc":"2.0","id": sent[1]["id"],"result":{"b":true}}));
        d.dispatch(json!({"jsonrpc":"2.0","id": a_id,"result":{"a":true}}));
        let Some(UpEvent::Notification(n)) = a.next().await else {
            panic!("progress first")
        };
        assert_eq!(n["params"]["progressToken"], "mine");
        assert!(matches!(a.next().await, Some(UpEvent::Response(Ok(r))) if r["a"] == true));
        assert!(matches!(b.next().await, Some(UpEvent::Response(Ok(r))) if r["b"] == true));
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_upstream_times_out_and_progress_restarts_the_clock() {
        let out = Capture::default();
        let d = Dispatcher::new("u", out.clone(), |_| {});
        let mut h = d
            .call(
                "slow",
                Some(json!({"_meta": {"progressToken": 1}})),
                caller(1),
                Duration::from_secs(2),
            )
            .unwrap();
        let id = out.0.lock().unwrap()[0]["id"].clone();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        d.dispatch(json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken": id, "progress": 1}}));
        assert!(matches!(h.next().await, Some(UpEvent::Notification(_))));
        // 1.5 s after the progress the call is still alive...
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(d.in_flight(), 1);
        // ...and 2 s of silence later it has failed and been cancelled upstream.
        let Some(UpEvent::Response(Err(e))) = h.next().await else {
            panic!("a timeout error")
        };
        assert!(e.message.contains("sent nothing for 2s"), "{e}");
        assert_eq!(
            out.0.lock().unwrap().last().unwrap()["method"],
            "notifications/cancelled"
        );
    }

    #[tokio::test]
    async fn dropping_a_call_cancels_it_upstream() {
        let out = Capture::default();
        let d = Dispatcher::new("u", out.clone(), |_| {});
        let h = d
            .call("slow", None, caller(1), Duration::from_secs(5))
            .unwrap();
        drop(h);
        let sent = out.0.lock().unwrap().clone();
        assert_eq!(sent[1]["method"], "notifications/cancelled");
        assert_eq!(sent[1]["params"]["requestId"], sent[0]["id"]);
        assert_eq!(d.in_flight(), 0);
    }

    #[tokio::test]
    async fn server_requests_go_to_the_one_able_client() {
        let out = Capture::default();
        let d = Dispatcher::new("u", out.clone(), |_| {});
        let t = Duration::from_secs(5);
        let mut one = d.call("a", None, caller(1), t).unwrap();
        let mut two = d.call("b", None, caller(2), t).unwrap();
        d.dispatch(
            json!({"jsonrpc":"2.0","id":"s1","method":"sampling/createMessage","params":{}}),
        );
        let Some(UpEvent::ServerRequest { reply, .. }) = two.next().await else {
            panic!("client 2 declared sampling")
        };
        reply.send(Ok(json!({"ok": 1})));
        assert_eq!(out.0.lock().unwrap().last().unwrap()["id"], "s1");
        // Elicitation: nobody declared it and two clients are in flight: refused.
        d.dispatch(json!({"jsonrpc":"2.0","id":"s2","method":"elicitation/create","params":{}}));
        let last = out.0.lock().unwrap().last().unwrap().clone();
        assert_eq!(last["id"], "s2");
        assert_eq!(last["error"]["code"], code::METHOD_NOT_FOUND);
        d.close("gone".into());
        assert!(matches!(one.next().await, Some(UpEvent::Response(Err(_)))));
    }
}
