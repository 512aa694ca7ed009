//! Upstream MCP servers: stdio children and remote HTTP servers.
//!
//! The principal types:
//!
//! - [`Upstream`]: one configured upstream. It owns the live connection (a
//!   child process or an HTTP client), restarts a dead child, and publishes
//!   its state; calls go through [`Upstream::call`].
//! - [`Dispatcher`] (in [`conn`]): the connection's id space, shared by every
//!   client; id and progress-token rewriting, delivery, cancellation.
//! - [`PeerInfo`]: what the handshake learnt: era, capabilities, server info.
//! - [`Upstreams`]: every upstream by name, started and stopped together.
//!
//! Era detection happens once per process (or per remote connection), as
//! PROTOCOL.md prescribes: probe `server/discover`; fall back to
//! `initialize` on any error that is not a recognised modern error, or on a
//! timeout.

pub mod conn;
pub mod http;
pub mod stdio;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

pub use conn::{CallHandle, Caller, Dispatcher, Reply, UpEvent};

use crate::config::{Transport, UpstreamName, UpstreamSpec};
use crate::mcp::{self, Era, RpcError, code, meta};

/// How long the `server/discover` probe waits before assuming a legacy
/// server. Legacy servers answer an unknown method at once with -32601; some
/// (notably ones that ignore requests before `initialize`) never answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Restart backoff for a dead child: doubles from the first value up to the
/// second; reset once a child has stayed up for [`HEALTHY_AFTER`].
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));
const HEALTHY_AFTER: Duration = Duration::from_secs(30);

/// Capacity of an upstream's change-notification channel. A listener that
/// falls this far behind skips ahead (list_changed notifications are
/// idempotent hints, so losing duplicates is harmless).
const CHANGE_BUFFER: usize = 256;

/// The capabilities the gateway declares to upstreams: it relays sampling,
/// elicitation and roots requests to the client that caused them. Roots
/// without `listChanged`: one shared upstream connection has no single
/// client whose roots could change.
pub fn gateway_client_capabilities() -> Value {
    json!({"sampling": {}, "elicitation": {"form": {}, "url": {}}, "roots": {}})
}

/// The gateway's `clientInfo` / `serverInfo`.
pub fn gateway_info() -> Value {
    json!({"name": "switchyard", "version": env!("CARGO_PKG_VERSION")})
}

/// What the handshake learnt about an upstream.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub era: Era,
    /// The revision spoken with it.
    pub protocol_version: String,
    pub capabilities: Value,
    pub server_info: Value,
    pub instructions: Option<String>,
}

/// The live state of an upstream.
#[derive(Clone)]
pub enum UpState {
    /// Spawning or shaking hands; calls wait for it.
    Starting,
    /// Serving.
    Ready(Arc<Live>),
    /// Dead or failed to start; calls fail at once while it restarts.
    Down(String),
    /// Shut down for good.
    Stopped,
}

/// A connected upstream.
pub struct Live {
    pub conn: Arc<Dispatcher>,
    pub info: PeerInfo,
    pub pid: Option<u32>,
}

/// One configured upstream (see the module docs).
pub struct Upstream {
    pub spec: UpstreamSpec,
    state: watch::Sender<UpState>,
    changes: broadcast::Sender<Value>,
    /// Resource URIs clients subscribed to on a modern upstream, which has
    /// no `resources/subscribe`: they go in its `subscriptions/listen` filter.
    watched: watch::Sender<std::collections::BTreeSet<String>>,
}

impl Upstream {
    fn new(spec: UpstreamSpec) -> Arc<Self> {
        Arc::new(Self {
            spec,
            state: watch::Sender::new(UpState::Starting),
            changes: broadcast::channel(CHANGE_BUFFER).0,
            watched: watch::Sender::new(std::collections::BTreeSet::new()),
        })
    }

    pub fn name(&self) -> &UpstreamName {
        &self.spec.name
    }

    /// The upstream's change notifications (`list_changed`, `resources/updated`),
    /// across restarts.
    pub fn subscribe_changes(&self) -> broadcast::Receiver<Value> {
        self.changes.subscribe()
    }

    /// Adds or removes a resource URI from a modern upstream's subscription
    /// (the gateway re-opens its `subscriptions/listen` with the new set).
    pub fn watch_resource(&self, uri: &str, on: bool) {
        self.watched.send_if_modified(|set| {
            if on {
                set.insert(uri.to_owned())
            } else {
                set.remove(uri)
            }
        });
    }

    /// The current connection, waiting while the upstream is starting (up to
    /// its timeout); a dead or stopped upstream is an immediate error.
    pub async fn live(&self) -> Result<Arc<Live>, RpcError> {
        // The common case, without arming a timer.
        if let UpState::Ready(live) = &*self.state.borrow() {
            return Ok(Arc::clone(live));
        }
        let mut rx = self.state.subscribe();
        let wait = async {
            loop {
                let state = rx.borrow_and_update().clone();
                match state {
                    UpState::Ready(live) => return Ok(live),
                    UpState::Down(reason) => {
                        return Err(RpcError::new(
                            code::UPSTREAM_ERROR,
                            format!("upstream `{}` is unavailable: {reason}", self.spec.name),
                        ));
                    }
                    UpState::Stopped => {
                        return Err(RpcError::new(
                            code::UPSTREAM_ERROR,
                            format!("upstream `{}` is stopped", self.spec.name),
                        ));
                    }
                    UpState::Starting => {
                        if rx.changed().await.is_err() {
                            return Err(RpcError::new(code::UPSTREAM_ERROR, "gateway stopping"));
                        }
                    }
                }
            }
        };
        tokio::time::timeout(self.spec.timeout, wait)
            .await
            .unwrap_or_else(|_| {
                Err(RpcError::new(
                    code::UPSTREAM_ERROR,
                    format!("upstream `{}` is still starting", self.spec.name),
                ))
            })
    }

    /// The handshake result, if connected.
    pub fn info(&self) -> Option<PeerInfo> {
        match &*self.state.borrow() {
            UpState::Ready(live) => Some(live.info.clone()),
            _ => None,
        }
    }

    /// A one-word state and its detail, for health reports.
    pub fn status(&self) -> (&'static str, Option<String>) {
        match &*self.state.borrow() {
            UpState::Starting => ("starting", None),
            UpState::Ready(live) => ("ready", Some(live.info.era.to_string())),
            UpState::Down(reason) => ("down", Some(reason.clone())),
            UpState::Stopped => ("stopped", None),
        }
    }

    /// Calls waiting for the upstream's answer (0 when not connected).
    pub fn in_flight(&self) -> usize {
        match &*self.state.borrow() {
            UpState::Ready(live) => live.conn.in_flight(),
            _ => 0,
        }
    }

    /// The child's pid, if a stdio upstream is running.
    pub fn pid(&self) -> Option<u32> {
        match &*self.state.borrow() {
            UpState::Ready(live) => live.pid,
            _ => None,
        }
    }

    /// Waits until the upstream has left the `Starting` state.
    pub async fn ready(&self) -> bool {
        let mut rx = self.state.subscribe();
        rx.wait_for(|s| !matches!(s, UpState::Starting))
            .await
            .map(|s| matches!(*s, UpState::Ready(_)))
            .unwrap_or(false)
    }

    /// Sends a request and returns its handle.
    pub async fn call(
        &self,
        method: &str,
        params: Option<Value>,
        caller: Caller,
    ) -> Result<CallHandle, RpcError> {
        let live = self.live().await?;
        live.conn.call(method, params, caller, self.spec.timeout)
    }

    fn change_sink(self: &Arc<Self>) -> impl Fn(Value) + Send + Sync + 'static {
        let tx = self.changes.clone();
        move |msg| {
            let _ = tx.send(msg);
        }
    }

    /// Keeps a stdio child running until `stop` fires.
    async fn supervise_stdio(self: Arc<Self>, stop: CancellationToken) {
        let mut backoff = BACKOFF.0;
        loop {
            self.state.send_replace(UpState::Starting);
            let started = tokio::time::Instant::now();
            match stdio::StdioChild::spawn(&self.spec, self.change_sink()) {
                Err(e) => {
                    let reason = format!("could not start `{}`: {e}", command_of(&self.spec));
                    tracing::error!(upstream = %self.spec.name, "{reason}");
                    self.state.send_replace(UpState::Down(reason));
                }
                Ok(mut child) => {
                    let pid = child.pid;
                    tracing::info!(upstream = %self.spec.name, pid, "child started");
                    enum Start {
                        Shook(Result<PeerInfo, RpcError>),
                        Died(String),
                        Stop,
                    }
                    let conn = Arc::clone(&child.conn);
                    let start = tokio::select! {
                        hs = handshake(&conn, self.spec.timeout) => Start::Shook(hs),
                        how = child.wait() => Start::Died(how),
                        _ = stop.cancelled() => Start::Stop,
                    };
                    let hs = match start {
                        Start::Shook(hs) => Some(hs),
                        Start::Died(how) => {
                            let reason = format!("child {how} during the handshake");
                            tracing::error!(upstream = %self.spec.name, pid, "{reason}");
                            child.conn.close(reason.clone());
                            self.state.send_replace(UpState::Down(reason));
                            None
                        }
                        Start::Stop => {
                            child.stop().await;
                            break;
                        }
                    };
                    match hs {
                        Some(Ok(info)) => {
                            tracing::info!(upstream = %self.spec.name, pid, era = %info.era, version = %info.protocol_version, "upstream ready");
                            let live = Arc::new(Live {
                                conn: Arc::clone(&child.conn),
                                info,
                                pid,
                            });
                            let listen = listen_for_changes(&live, self.watched.subscribe());
                            self.state.send_replace(UpState::Ready(live));
                            let ended = tokio::select! {
                                how = child.wait() => Some(how),
                                _ = stop.cancelled() => None,
                            };
                            if let Some(l) = listen {
                                l.abort();
                            }
                            match ended {
                                Some(how) => {
                                    let reason = format!("child process {how}");
                                    tracing::warn!(upstream = %self.spec.name, pid, "{reason}; restarting");
                                    // Down first, so that no new call picks the dead connection.
                                    self.state.send_replace(UpState::Down(reason.clone()));
                                    child
                                        .conn
                                        .close(format!("upstream `{}`: {reason}", self.spec.name));
                                }
                                None => {
                                    self.state.send_replace(UpState::Stopped);
                                    child.stop().await;
                                    break;
                                }
                            }
                        }
                        Some(Err(e)) => {
                            let reason = format!("handshake failed: {e}");
                            tracing::error!(upstream = %self.spec.name, pid, "{reason}");
                            self.state.send_replace(UpState::Down(reason));
                            child.stop().await;
                        }
                        None => {}
                    }
                }
            }
            if started.elapsed() >= HEALTHY_AFTER {
                backoff = BACKOFF.0;
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.cancelled() => break,
            }
            backoff = (backoff * 2).min(BACKOFF.1);
        }
        self.state.send_replace(UpState::Stopped);
    }

    /// Keeps a remote connection established until `stop` fires.
    async fn supervise_http(self: Arc<Self>, stop: CancellationToken) {
        let mut backoff = BACKOFF.0;
        loop {
            self.state.send_replace(UpState::Starting);
            match http::HttpUpstream::connect(&self.spec, self.change_sink()).await {
                Ok(remote) => {
                    tracing::info!(upstream = %self.spec.name, era = %remote.info.era, version = %remote.info.protocol_version, "remote upstream ready");
                    backoff = BACKOFF.0;
                    let live = Arc::new(Live {
                        conn: Arc::clone(&remote.conn),
                        info: remote.info.clone(),
                        pid: None,
                    });
                    let listen = listen_for_changes(&live, self.watched.subscribe());
                    self.state.send_replace(UpState::Ready(live));
                    let _stop_listening = listen.map(AbortOnDrop);
                    tokio::select! {
                        reason = remote.closed() => {
                            tracing::warn!(upstream = %self.spec.name, "remote connection lost: {reason}; reconnecting");
                            self.state.send_replace(UpState::Down(reason));
                        }
                        _ = stop.cancelled() => {
                            self.state.send_replace(UpState::Stopped);
                            remote.shutdown().await;
                            break;
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(upstream = %self.spec.name, "could not connect: {e}");
                    self.state.send_replace(UpState::Down(e.to_string()));
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.cancelled() => break,
            }
            backoff = (backoff * 2).min(BACKOFF.1);
        }
        self.state.send_replace(UpState::Stopped);
    }
}

/// Aborts a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How long the gateway's own `subscriptions/listen` waits in silence before
/// it is re-opened (a modern server may close idle subscriptions).
const LISTEN_RENEW: Duration = Duration::from_secs(3600);

/// A modern upstream sends change notifications only on a
/// `subscriptions/listen` stream: open one for the list changes it offers,
/// so they reach the gateway's own listeners. Legacy upstreams need nothing.
fn listen_for_changes(
    live: &Arc<Live>,
    mut watched: watch::Receiver<std::collections::BTreeSet<String>>,
) -> Option<tokio::task::JoinHandle<()>> {
    if live.info.era != Era::Modern {
        return None;
    }
    let caps = &live.info.capabilities;
    let flag = |feature: &str| {
        caps.get(feature)
            .and_then(|f| f.get("listChanged"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    let lists = [
        ("toolsListChanged", flag("tools")),
        ("promptsListChanged", flag("prompts")),
        ("resourcesListChanged", flag("resources")),
    ];
    let conn = Arc::clone(&live.conn);
    Some(tokio::spawn(async move {
        loop {
            let uris: Vec<String> = watched.borrow_and_update().iter().cloned().collect();
            let mut filter = serde_json::Map::new();
            for (name, on) in lists {
                if on {
                    filter.insert(name.into(), true.into());
                }
            }
            if !uris.is_empty() {
                filter.insert("resourceSubscriptions".into(), json!(uris));
            }
            if filter.is_empty() {
                // Nothing to listen for until a client subscribes to a resource.
                if watched.changed().await.is_err() {
                    return;
                }
                continue;
            }
            let params = json!({
                "_meta": modern_meta(&gateway_client_capabilities()),
                "notifications": filter,
            });
            let Ok(mut call) = conn.call(
                "subscriptions/listen",
                Some(params),
                Caller::GATEWAY,
                LISTEN_RENEW,
            ) else {
                return;
            };
            // Notifications on the subscription reach the change sink through
            // the dispatcher; this loop keeps the call open, and re-opens it
            // when the set of watched resources changes.
            let resubscribe = loop {
                tokio::select! {
                    ev = call.next() => match ev {
                        Some(UpEvent::Response(r)) => {
                            if let Err(e) = r {
                                tracing::debug!(error = %e, "upstream subscription ended");
                            }
                            break false;
                        }
                        Some(_) => {}
                        None => break false,
                    },
                    changed = watched.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        break true;
                    }
                }
            };
            drop(call);
            if conn.is_closed() {
                return;
            }
            if !resubscribe {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }))
}

fn command_of(spec: &UpstreamSpec) -> String {
    match &spec.transport {
        Transport::Stdio { command, .. } => command.clone(),
        Transport::Http { url, .. } => url.to_string(),
    }
}

/// Detects the era of a freshly connected peer and completes its handshake.
pub async fn handshake(conn: &Arc<Dispatcher>, timeout: Duration) -> Result<PeerInfo, RpcError> {
    let probe = conn.call(
        "server/discover",
        Some(json!({"_meta": modern_meta(&gateway_client_capabilities())})),
        Caller::GATEWAY,
        PROBE_TIMEOUT.min(timeout),
    )?;
    let mut legacy_version = mcp::LATEST_LEGACY;
    match probe.result().await {
        Ok(r) if supports_modern(&r) => {
            return Ok(PeerInfo {
                era: Era::Modern,
                protocol_version: mcp::MODERN_VERSION.to_owned(),
                capabilities: r.get("capabilities").cloned().unwrap_or(json!({})),
                server_info: r
                    .get("_meta")
                    .and_then(|m| m.get(meta::SERVER_INFO))
                    .or_else(|| r.get("serverInfo"))
                    .cloned()
                    .unwrap_or(json!({})),
                instructions: r
                    .get("instructions")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            });
        }
        Err(e) if e.code == code::UNSUPPORTED_VERSION => {
            // A modern-aware server that does not speak our modern revision:
            // pick the newest legacy revision it lists.
            if let Some(v) = e
                .data
                .as_ref()
                .and_then(|d| d.get("supported"))
                .and_then(Value::as_array)
                .and_then(|vs| {
                    mcp::LEGACY_VERSIONS
                        .iter()
                        .find(|l| vs.iter().any(|v| v.as_str() == Some(l)))
                })
            {
                legacy_version = v;
            }
        }
        _ => {}
    }
    handshake_legacy(conn, timeout, legacy_version).await
}

/// The legacy handshake: `initialize`, then `notifications/initialized`.
pub async fn handshake_legacy(
    conn: &Arc<Dispatcher>,
    timeout: Duration,
    legacy_version: &str,
) -> Result<PeerInfo, RpcError> {
    let init = conn
        .call(
            "initialize",
            Some(json!({
                "protocolVersion": legacy_version,
                "capabilities": gateway_client_capabilities(),
                "clientInfo": gateway_info(),
            })),
            Caller::GATEWAY,
            timeout,
        )?
        .result()
        .await?;
    let version = init
        .get("protocolVersion")
        .and_then(Value::as_str)
        .unwrap_or(legacy_version)
        .to_owned();
    if !mcp::LEGACY_VERSIONS.contains(&version.as_str()) {
        return Err(RpcError::new(
            code::UNSUPPORTED_VERSION,
            format!("the upstream answered initialize with unsupported protocol version {version}"),
        ));
    }
    conn.notify("notifications/initialized", None);
    Ok(PeerInfo {
        era: Era::Legacy,
        protocol_version: version,
        capabilities: init.get("capabilities").cloned().unwrap_or(json!({})),
        server_info: init.get("serverInfo").cloned().unwrap_or(json!({})),
        instructions: init
            .get("instructions")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

fn supports_modern(discover: &Value) -> bool {
    discover
        .get("supportedVersions")
        .and_then(Value::as_array)
        .is_some_and(|vs| vs.iter().any(|v| v.as_str() == Some(mcp::MODERN_VERSION)))
}

/// The `_meta` a modern request carries, with the given client capabilities.
pub fn modern_meta(capabilities: &Value) -> Value {
    json!({
        meta::PROTOCOL_VERSION: mcp::MODERN_VERSION,
        meta::CLIENT_CAPABILITIES: capabilities,
        meta::CLIENT_INFO: gateway_info(),
    })
}

/// Every configured upstream, by name.
pub struct Upstreams {
    by_name: BTreeMap<UpstreamName, Arc<Upstream>>,
    stop: CancellationToken,
    tasks: tokio::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Upstreams {
    /// Starts every upstream in the background; calls wait for each to be ready.
    pub fn start(specs: &[UpstreamSpec]) -> Arc<Self> {
        let stop = CancellationToken::new();
        let mut by_name = BTreeMap::new();
        let mut tasks = Vec::new();
        for spec in specs {
            let up = Upstream::new(spec.clone());
            let task = match spec.transport {
                Transport::Stdio { .. } => {
                    tokio::spawn(Arc::clone(&up).supervise_stdio(stop.clone()))
                }
                Transport::Http { .. } => {
                    tokio::spawn(Arc::clone(&up).supervise_http(stop.clone()))
                }
            };
            tasks.push(task);
            by_name.insert(spec.name.clone(), up);
        }
        Arc::new(Self {
            by_name,
            stop,
            tasks: tokio::sync::Mutex::new(tasks),
        })
    }

    pub fn get(&self, name: &UpstreamName) -> Option<&Arc<Upstream>> {
        self.by_name.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Upstream>> {
        self.by_name.values()
    }

    /// Stops every upstream (children: stdin closed, then SIGTERM, then
    /// SIGKILL to the process group) and waits for all of them.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        let tasks = std::mem::take(&mut *self.tasks.lock().await);
        for t in tasks {
            let _ = t.await;
        }
    }
}
