//! One connection: the only module that does I/O.
//!
//! The reader loop classifies each line and spawns one task per request, so
//! slow tools never hold up fast ones; every outgoing message goes through one
//! writer task, which keeps lines whole and in the order they were produced.
//! [`Session`] is the state those tasks share: in-flight requests (for
//! `notifications/cancelled`), requests this server sent the client (legacy
//! sampling/elicitation), the legacy session's settings, modern
//! `subscriptions/listen` streams, and the mutable demo content (extra tools,
//! resource revisions). Notifications that depend on who listens (list changes,
//! resource updates) are fanned out here, in [`Session::announce`].

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{AbortHandle, JoinSet};

use crate::protocol::{self, Incoming, LogLevel, RpcError, id_key, meta};
use crate::{Era, Options, dispatch};

/// How long in-flight requests may run on after input ends.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves one connection until `input` ends; see [`crate::serve`].
pub(crate) async fn run<R, W>(opts: Options, input: R, output: W) -> anyhow::Result<()>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    tracing::info!(era = ?opts.era, name = %opts.name, page_size = ?opts.page_size, "demo MCP server ready on stdio");
    let (out, outgoing_lines) = mpsc::unbounded_channel();
    let writer = tokio::spawn(write_lines(output, outgoing_lines));
    let session = Arc::new(Session::new(opts, out));
    let background = tokio::spawn(dispatch::background(session.clone()));

    let mut tasks = JoinSet::new();
    let mut reader = BufReader::new(input);
    let mut line = Vec::new();
    loop {
        tokio::select! {
            // `read_until` keeps partial input in `line` if the other branch wins,
            // so calling it again simply continues the same line.
            read = reader.read_until(b'\n', &mut line) => match read {
                Ok(0) => break,
                Ok(_) => {
                    session.on_line(&line, &mut tasks);
                    line.clear();
                }
                Err(error) => {
                    tracing::warn!(%error, "reading input failed; shutting down");
                    break;
                }
            },
            // Reap finished request tasks so the set does not grow without bound.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }

    tracing::info!(
        in_flight = tasks.len(),
        "input closed; finishing in-flight requests"
    );
    session.shutdown();
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN_TIMEOUT, drain).await.is_err() {
        tracing::warn!("in-flight requests did not finish in time; abandoning them");
        tasks.shutdown().await;
    }
    background.abort();
    let _ = background.await;
    drop(session);
    // Every sender is gone now, so the writer flushes what is queued and ends.
    match tokio::time::timeout(Duration::from_secs(5), writer).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(error.into()),
        Err(_) => anyhow::bail!("output did not drain within 5 s"),
    }
}

/// Writes queued lines, batching whatever is already queued into one write and flush.
async fn write_lines<W: AsyncWrite + Unpin>(
    mut output: W,
    mut lines: mpsc::UnboundedReceiver<String>,
) {
    const BATCH_BYTES: usize = 64 * 1024;
    while let Some(mut batch) = lines.recv().await {
        while batch.len() < BATCH_BYTES {
            match lines.try_recv() {
                Ok(more) => batch.push_str(&more),
                Err(_) => break,
            }
        }
        let written = async {
            output.write_all(batch.as_bytes()).await?;
            output.flush().await
        };
        if let Err(error) = written.await {
            tracing::warn!(%error, "writing output failed; dropping further output");
            return;
        }
    }
}

/// A change that someone may have asked to hear about.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Change<'a> {
    ToolsListChanged,
    PromptsListChanged,
    ResourcesListChanged,
    ResourceUpdated(&'a str),
}

/// Which notifications a `subscriptions/listen` stream opted into (`SubscriptionFilter`).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct SubscriptionFilter {
    pub tools_list_changed: bool,
    pub prompts_list_changed: bool,
    pub resources_list_changed: bool,
    /// `None` when the field was absent, which the acknowledgement preserves.
    pub resource_subscriptions: Option<Vec<String>>,
}

impl SubscriptionFilter {
    pub fn from_json(value: &Value) -> Result<Self, String> {
        let obj = value
            .as_object()
            .ok_or("`notifications` must be an object")?;
        let flag = |key: &str| match obj.get(key) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(format!("`notifications.{key}` must be a boolean")),
        };
        let resource_subscriptions = match obj.get("resourceSubscriptions") {
            None => None,
            Some(Value::Array(uris)) => Some(
                uris.iter()
                    .map(|uri| uri.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .ok_or("`notifications.resourceSubscriptions` must hold strings")?,
            ),
            Some(_) => return Err("`notifications.resourceSubscriptions` must be an array".into()),
        };
        Ok(Self {
            tools_list_changed: flag("toolsListChanged")?,
            prompts_list_changed: flag("promptsListChanged")?,
            resources_list_changed: flag("resourcesListChanged")?,
            resource_subscriptions,
        })
    }

    /// The acknowledged subset: this server honours every notification type,
    /// so it is what was asked for, with `false` flags left out.
    pub fn to_json(&self) -> Value {
        let mut out = serde_json::Map::new();
        for (key, on) in [
            ("toolsListChanged", self.tools_list_changed),
            ("promptsListChanged", self.prompts_list_changed),
            ("resourcesListChanged", self.resources_list_changed),
        ] {
            if on {
                out.insert(key.into(), Value::Bool(true));
            }
        }
        if let Some(uris) = &self.resource_subscriptions {
            out.insert("resourceSubscriptions".into(), json!(uris));
        }
        Value::Object(out)
    }

    fn wants(&self, change: Change<'_>) -> bool {
        match change {
            Change::ToolsListChanged => self.tools_list_changed,
            Change::PromptsListChanged => self.prompts_list_changed,
            Change::ResourcesListChanged => self.resources_list_changed,
            Change::ResourceUpdated(uri) => self
                .resource_subscriptions
                .as_ref()
                .is_some_and(|uris| uris.iter().any(|u| u == uri)),
        }
    }
}

/// The state shared by every task of one connection.
pub(crate) struct Session {
    pub opts: Options,
    out: mpsc::UnboundedSender<String>,
    state: Mutex<State>,
    next_outgoing_id: AtomicU64,
    next_generation: AtomicU64,
}

#[derive(Default)]
struct State {
    /// Requests being worked on, by [`id_key`], so `notifications/cancelled` can stop them.
    in_flight: HashMap<String, InFlight>,
    /// Requests this server sent the client, waiting for its answer.
    outgoing: HashMap<String, oneshot::Sender<Result<Value, Value>>>,
    legacy: LegacySession,
    /// Open `subscriptions/listen` streams, by the listen request's [`id_key`].
    listens: HashMap<String, Listen>,
    extra_tools: Vec<String>,
    /// The extras' description, when `set_tools` gave one.
    extra_description: Option<String>,
    revisions: HashMap<String, u64>,
}

struct InFlight {
    /// Tells a request apart from an earlier one that reused its id.
    generation: u64,
    abort: AbortHandle,
}

/// What the legacy `initialize` session remembers; modern requests never read it.
struct LegacySession {
    initialized: bool,
    client_capabilities: Option<Value>,
    log_level: LogLevel,
    subscriptions: HashSet<String>,
}

impl Default for LegacySession {
    fn default() -> Self {
        Self {
            initialized: false,
            client_capabilities: None,
            log_level: LogLevel::Info,
            subscriptions: HashSet::new(),
        }
    }
}

struct Listen {
    id: Value,
    filter: SubscriptionFilter,
}

impl Session {
    fn new(opts: Options, out: mpsc::UnboundedSender<String>) -> Self {
        Self {
            opts,
            out,
            state: Mutex::default(),
            next_outgoing_id: AtomicU64::new(1),
            next_generation: AtomicU64::new(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking task cannot leave the maps half-updated in a way that
        // matters more than stopping the server would, so keep serving.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues one message as one line.
    pub fn send(&self, message: &Value) {
        let mut line = message.to_string();
        line.push('\n');
        // Fails only once the writer is gone, when nobody can read it anyway.
        let _ = self.out.send(line);
    }

    pub fn notify(&self, method: &str, params: Value) {
        self.send(&protocol::notification(method, params));
    }

    fn on_line(self: &Arc<Self>, line: &[u8], tasks: &mut JoinSet<()>) {
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let message: Value = match serde_json::from_slice(line) {
            Ok(message) => message,
            Err(error) => {
                tracing::warn!(%error, "unparsable input line");
                self.send(&protocol::error_response(
                    &Value::Null,
                    &RpcError::parse_error(error),
                ));
                return;
            }
        };
        match protocol::classify(message) {
            Incoming::Request { id, method, params } => {
                self.start_request(tasks, id, method, params)
            }
            Incoming::Notification { method, params } => self.on_notification(&method, &params),
            Incoming::Response { id, outcome } => self.on_client_response(&id, outcome),
            Incoming::Invalid { id, reason } => {
                self.send(&protocol::error_response(
                    &id,
                    &RpcError::invalid_request(reason),
                ));
            }
        }
    }

    fn start_request(
        self: &Arc<Self>,
        tasks: &mut JoinSet<()>,
        id: Value,
        method: String,
        params: Value,
    ) {
        tracing::debug!(%id, %method, "request");
        let key = id_key(&id);
        // Hold the lock across the spawn so the task cannot finish (and look
        // for its entry) before the entry exists.
        let mut state = self.lock();
        if state.in_flight.contains_key(&key) {
            drop(state);
            let error = RpcError::invalid_request(format!(
                "request id {id} is already in use by a request in flight"
            ));
            self.send(&protocol::error_response(&id, &error));
            return;
        }
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let session = self.clone();
        let task_key = key.clone();
        let abort = tasks.spawn(async move {
            let outcome = dispatch::handle_request(&session, &id, &method, params).await;
            session.finish_request(&task_key, generation, &id, outcome);
        });
        state.in_flight.insert(key, InFlight { generation, abort });
    }

    /// Sends the response unless the request was cancelled meanwhile.
    fn finish_request(
        &self,
        key: &str,
        generation: u64,
        id: &Value,
        outcome: Result<Value, RpcError>,
    ) {
        let mut state = self.lock();
        match state.in_flight.get(key) {
            Some(entry) if entry.generation == generation => {
                state.in_flight.remove(key);
            }
            // Cancelled: the client has said it will ignore any answer.
            _ => return,
        }
        // Sent under the lock, so a cancellation is either before (no answer) or after (no effect).
        let message = match outcome {
            Ok(result) => protocol::response(id, result),
            Err(error) => protocol::error_response(id, &error),
        };
        self.send(&message);
    }

    fn on_notification(&self, method: &str, params: &Value) {
        match method {
            "notifications/cancelled" => match params.get("requestId") {
                Some(id) => {
                    let reason = params.get("reason").and_then(Value::as_str).unwrap_or("");
                    if self.cancel(id) {
                        tracing::info!(%id, reason, "request cancelled by the client");
                    } else {
                        tracing::debug!(%id, "cancellation for a request not in flight");
                    }
                }
                None => tracing::warn!("notifications/cancelled without requestId"),
            },
            "notifications/initialized" => tracing::debug!("client finished initialization"),
            other => tracing::debug!(method = other, "ignoring notification"),
        }
    }

    /// Stops an in-flight request without answering it. Returns whether one was found.
    fn cancel(&self, id: &Value) -> bool {
        let entry = self.lock().in_flight.remove(&id_key(id));
        // Abort outside the lock: dropping the task's future runs guards that lock too.
        entry.map(|entry| entry.abort.abort()).is_some()
    }

    fn on_client_response(&self, id: &Value, outcome: Result<Value, Value>) {
        match self.lock().outgoing.remove(&id_key(id)) {
            Some(waiter) => {
                let _ = waiter.send(outcome);
            }
            None => tracing::warn!(%id, "response to no request of ours; ignored"),
        }
    }

    /// Sends the client a request (legacy era) and waits for its answer.
    ///
    /// Ids are `"s-1"`, `"s-2"`, … so they can never be mistaken for the
    /// client's own ids. If the waiting request is cancelled or times out, the
    /// client is told with `notifications/cancelled`.
    pub async fn request_client(
        &self,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, RpcError> {
        let n = self.next_outgoing_id.fetch_add(1, Ordering::Relaxed);
        let id = Value::String(format!("s-{n}"));
        let (answer_tx, answer_rx) = oneshot::channel();
        self.lock().outgoing.insert(id_key(&id), answer_tx);
        let _pending = PendingClientRequest {
            session: self,
            id: id.clone(),
        };
        self.send(&protocol::request(&id, method, params));

        match tokio::time::timeout(timeout, answer_rx).await {
            Ok(Ok(Ok(result))) => Ok(result),
            Ok(Ok(Err(error))) => {
                let code = error
                    .get("code")
                    .and_then(Value::as_i64)
                    .unwrap_or(protocol::code::INTERNAL_ERROR);
                let message = error
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("client error");
                Err(RpcError::new(code, message.to_owned()))
            }
            Ok(Err(_)) => Err(RpcError::internal(
                "the client connection closed before it answered",
            )),
            Err(_) => Err(RpcError::internal(format!(
                "the client did not answer {method} within {} s",
                timeout.as_secs()
            ))),
        }
    }

    /// Ends the connection's long-lived work once input has ended: listen
    /// streams get their closing result, and requests waiting on the client fail.
    fn shutdown(&self) {
        let mut state = self.lock();
        let ids: Vec<Value> = state
            .listens
            .values()
            .map(|listen| listen.id.clone())
            .collect();
        let listens: Vec<(Value, Option<InFlight>)> = ids
            .into_iter()
            .map(|id| {
                // Out of `in_flight`, the listen task can no longer answer by itself.
                let entry = state.in_flight.remove(&id_key(&id));
                (id, entry)
            })
            .collect();
        state.outgoing.clear();
        drop(state);
        for (id, entry) in listens {
            let result = json!({
                "resultType": "complete",
                "_meta": {
                    meta::SUBSCRIPTION_ID: id,
                    meta::SERVER_INFO: self.opts.server_info(),
                },
            });
            self.send(&protocol::response(&id, result));
            if let Some(entry) = entry {
                entry.abort.abort();
            }
        }
    }

    // ----- the legacy session -----

    pub fn legacy_initialize(&self, client_capabilities: Value) {
        let mut state = self.lock();
        state.legacy.initialized = true;
        state.legacy.client_capabilities = Some(client_capabilities);
    }

    /// The capabilities from `initialize`, or `None` before it.
    pub fn legacy_client_capabilities(&self) -> Option<Value> {
        self.lock().legacy.client_capabilities.clone()
    }

    pub fn legacy_log_level(&self) -> LogLevel {
        self.lock().legacy.log_level
    }

    pub fn set_legacy_log_level(&self, level: LogLevel) {
        self.lock().legacy.log_level = level;
    }

    pub fn subscribe(&self, uri: &str) {
        self.lock().legacy.subscriptions.insert(uri.to_owned());
    }

    pub fn unsubscribe(&self, uri: &str) {
        self.lock().legacy.subscriptions.remove(uri);
    }

    // ----- modern listen streams -----

    /// Registers a `subscriptions/listen` stream and acknowledges it. The
    /// stream lasts as long as the returned guard (the listen request's task).
    pub fn open_listen(&self, id: &Value, filter: SubscriptionFilter) -> ListenGuard<'_> {
        let key = id_key(id);
        let mut state = self.lock();
        // The acknowledgement goes out under the lock, so no tagged
        // notification can overtake it.
        self.notify(
            "notifications/subscriptions/acknowledged",
            json!({ "_meta": { meta::SUBSCRIPTION_ID: id }, "notifications": filter.to_json() }),
        );
        state.listens.insert(
            key.clone(),
            Listen {
                id: id.clone(),
                filter,
            },
        );
        ListenGuard { session: self, key }
    }

    /// Whether anyone (legacy subscription or modern listen) wants updates of `uri`.
    pub fn is_watched(&self, uri: &str) -> bool {
        let state = self.lock();
        state.legacy.subscriptions.contains(uri)
            || state
                .listens
                .values()
                .any(|listen| listen.filter.wants(Change::ResourceUpdated(uri)))
    }

    /// Tells everyone who asked about `change`: the legacy session with a plain
    /// notification, each matching listen stream with one tagged by its id.
    /// Returns how many notifications were sent.
    pub fn announce(&self, change: Change<'_>) -> usize {
        let (method, params) = match change {
            Change::ToolsListChanged => ("notifications/tools/list_changed", json!({})),
            Change::PromptsListChanged => ("notifications/prompts/list_changed", json!({})),
            Change::ResourcesListChanged => ("notifications/resources/list_changed", json!({})),
            Change::ResourceUpdated(uri) => {
                ("notifications/resources/updated", json!({ "uri": uri }))
            }
        };
        let state = self.lock();
        let mut sent = 0;
        // A legacy client hears list changes once it has initialized (any time
        // in legacy-only mode), and resource updates only when it subscribed.
        let legacy_listening = self.opts.era == Era::Legacy || state.legacy.initialized;
        let legacy_wants = match change {
            Change::ResourceUpdated(uri) => state.legacy.subscriptions.contains(uri),
            _ => true,
        };
        if self.opts.era.serves_legacy() && legacy_listening && legacy_wants {
            self.notify(method, params.clone());
            sent += 1;
        }
        for listen in state
            .listens
            .values()
            .filter(|listen| listen.filter.wants(change))
        {
            let mut tagged = params.clone();
            tagged["_meta"] = json!({ meta::SUBSCRIPTION_ID: listen.id });
            self.notify(method, tagged);
            sent += 1;
        }
        sent
    }

    // ----- mutable demo content -----

    pub fn extra_tools(&self) -> Vec<String> {
        self.lock().extra_tools.clone()
    }

    pub fn set_extra_tools(&self, names: Vec<String>, description: Option<String>) {
        let mut s = self.lock();
        s.extra_tools = names;
        s.extra_description = description;
    }

    pub fn extra_description(&self) -> Option<String> {
        self.lock().extra_description.clone()
    }

    /// How many times `uri` has changed (see [`Session::bump_revision`]).
    pub fn revision(&self, uri: &str) -> u64 {
        self.lock().revisions.get(uri).copied().unwrap_or(0)
    }

    pub fn bump_revision(&self, uri: &str) -> u64 {
        let mut state = self.lock();
        let revision = state.revisions.entry(uri.to_owned()).or_default();
        *revision += 1;
        *revision
    }
}

/// Keeps a listen stream registered; dropping it (the request was cancelled
/// or the connection ended) unregisters it.
pub(crate) struct ListenGuard<'a> {
    session: &'a Session,
    key: String,
}

impl Drop for ListenGuard<'_> {
    fn drop(&mut self) {
        self.session.lock().listens.remove(&self.key);
    }
}

/// Forgets a request sent to the client when its waiter goes away, and tells
/// the client to stop if the waiter gave up (cancelled, timed out) before the
/// answer came. An answered request is already out of the map.
struct PendingClientRequest<'a> {
    session: &'a Session,
    id: Value,
}

impl Drop for PendingClientRequest<'_> {
    fn drop(&mut self) {
        let still_pending = self
            .session
            .lock()
            .outgoing
            .remove(&id_key(&self.id))
            .is_some();
        if still_pending {
            self.session.notify(
                "notifications/cancelled",
                json!({ "requestId": self.id, "reason": "the server no longer needs the answer" }),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_round_trips_and_matches() {
        let filter = SubscriptionFilter::from_json(&json!({
            "toolsListChanged": true,
            "promptsListChanged": false,
            "resourceSubscriptions": ["test://watched-resource"],
        }))
        .unwrap();
        assert_eq!(
            filter.to_json(),
            json!({ "toolsListChanged": true, "resourceSubscriptions": ["test://watched-resource"] })
        );
        assert!(filter.wants(Change::ToolsListChanged));
        assert!(!filter.wants(Change::PromptsListChanged));
        assert!(filter.wants(Change::ResourceUpdated("test://watched-resource")));
        assert!(!filter.wants(Change::ResourceUpdated("test://static-text")));
        assert!(SubscriptionFilter::from_json(&json!({ "toolsListChanged": 1 })).is_err());
    }
}
