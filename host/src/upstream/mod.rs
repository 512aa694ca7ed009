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
pub mod procstat;
pub mod stdio;
mod supervise;
pub mod ws;

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
    /// Dead, between restarts: calls fail at once.
    Down(String),
    /// Not running and not coming back by itself (crash loop, or the restart
    /// policy said no): calls fail at once until the admin API or a config
    /// change restarts it.
    Failed(String),
    /// Not running until first use (`lazy`, or stopped after `idle_timeout`).
    Idle,
    /// Stopped by the operator, or shut down for good.
    Stopped,
}

impl UpState {
    /// The one-word name used in health reports and metrics.
    pub fn word(&self) -> &'static str {
        match self {
            UpState::Starting => "starting",
            UpState::Ready(_) => "ready",
            UpState::Down(_) => "down",
            UpState::Failed(_) => "failed",
            UpState::Idle => "idle",
            UpState::Stopped => "stopped",
        }
    }

    /// Every state word, for metrics (one series per state).
    pub const WORDS: [&'static str; 6] = ["starting", "ready", "down", "failed", "idle", "stopped"];
}

/// A connected upstream.
pub struct Live {
    pub conn: Arc<Dispatcher>,
    pub info: PeerInfo,
    pub pid: Option<u32>,
}

/// What the operator (config file or admin API) wants of an upstream. The
/// supervisor acts on every change: `generation` bumps force a restart.
#[derive(Clone)]
struct Control {
    spec: Arc<UpstreamSpec>,
    run: bool,
    generation: u64,
}

/// Counters kept across restarts.
#[derive(Default)]
struct Stats {
    restarts: u64,
    health_failures: u64,
    /// When the current process or connection became ready.
    since: Option<std::time::Instant>,
    last_exit: Option<String>,
}

/// One upstream's state for health reports and the admin API.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UpstreamReport {
    pub name: String,
    /// `stdio` or `http`.
    pub transport: &'static str,
    pub state: &'static str,
    /// Why it is down or failed; the era when ready.
    pub detail: Option<String>,
    pub era: Option<String>,
    pub protocol_version: Option<String>,
    pub pid: Option<u32>,
    pub uptime_seconds: Option<f64>,
    pub restarts: u64,
    pub health_failures: u64,
    pub last_exit: Option<String>,
    /// Summed over the child's process group (stdio only).
    pub rss_bytes: Option<u64>,
    pub cpu_seconds: Option<f64>,
    pub processes: Option<usize>,
    pub in_flight: usize,
}

/// One configured upstream (see the module docs).
pub struct Upstream {
    name: UpstreamName,
    control: watch::Sender<Control>,
    state: watch::Sender<UpState>,
    changes: broadcast::Sender<Value>,
    /// Resource URIs clients subscribed to on a modern upstream, which has
    /// no `resources/subscribe`: they go in its `subscriptions/listen` filter.
    watched: watch::Sender<std::collections::BTreeSet<String>>,
    stats: std::sync::Mutex<Stats>,
    /// Asks an idle (lazy) upstream to start.
    wake: tokio::sync::Notify,
    /// When a call last went out, in milliseconds since `epoch`.
    last_used: std::sync::atomic::AtomicU64,
    epoch: std::time::Instant,
    /// Ends this upstream's supervisor (removal, or the gateway stopping).
    stop: CancellationToken,
    /// The child's stderr lines: the last [`LOG_TAIL`] kept, new ones broadcast.
    logs: broadcast::Sender<String>,
    log_tail: std::sync::Mutex<std::collections::VecDeque<String>>,
}

/// How many of a child's last stderr lines are kept for the admin API.
const LOG_TAIL: usize = 200;

impl Upstream {
    fn new(spec: UpstreamSpec, stop: CancellationToken) -> Arc<Self> {
        Arc::new(Self {
            name: spec.name.clone(),
            control: watch::Sender::new(Control {
                spec: Arc::new(spec),
                run: true,
                generation: 0,
            }),
            state: watch::Sender::new(UpState::Starting),
            changes: broadcast::channel(CHANGE_BUFFER).0,
            watched: watch::Sender::new(std::collections::BTreeSet::new()),
            stats: std::sync::Mutex::new(Stats::default()),
            wake: tokio::sync::Notify::new(),
            last_used: std::sync::atomic::AtomicU64::new(0),
            epoch: std::time::Instant::now(),
            stop,
            logs: broadcast::channel(LOG_TAIL).0,
            log_tail: std::sync::Mutex::new(std::collections::VecDeque::new()),
        })
    }

    pub fn name(&self) -> &UpstreamName {
        &self.name
    }

    /// The configuration in force.
    pub fn spec(&self) -> Arc<UpstreamSpec> {
        Arc::clone(&self.control.borrow().spec)
    }

    /// The request timeout in force.
    pub fn timeout(&self) -> Duration {
        self.control.borrow().spec.timeout
    }

    /// Applies a changed configuration: the upstream restarts with it
    /// (after in-flight calls finish, bounded by the timeout). An equal
    /// configuration changes nothing.
    pub fn update(&self, spec: UpstreamSpec) -> bool {
        self.control.send_if_modified(|c| {
            if *c.spec == spec {
                return false;
            }
            c.spec = Arc::new(spec);
            c.generation += 1;
            true
        })
    }

    /// Starts a stopped or failed upstream (no effect on a running one).
    pub fn start(&self) {
        let stuck = matches!(&*self.state.borrow(), UpState::Failed(_) | UpState::Idle);
        self.control.send_modify(|c| {
            if !c.run || stuck {
                c.generation += 1;
            }
            c.run = true;
        });
        self.wake.notify_one();
    }

    /// Stops the upstream until [`Upstream::start`] (calls fail meanwhile).
    pub fn halt(&self) {
        self.control
            .send_if_modified(|c| std::mem::replace(&mut c.run, false));
    }

    /// Restarts the upstream now (a new process or connection).
    pub fn restart(&self) {
        self.control.send_modify(|c| {
            c.run = true;
            c.generation += 1;
        });
        self.wake.notify_one();
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
    /// its timeout; an idle one is started); a dead, failed or stopped
    /// upstream is an immediate error.
    pub async fn live(&self) -> Result<Arc<Live>, RpcError> {
        // The common case, without arming a timer.
        if let UpState::Ready(live) = &*self.state.borrow() {
            return Ok(Arc::clone(live));
        }
        let mut rx = self.state.subscribe();
        let wait = async {
            loop {
                let state = rx.borrow_and_update().clone();
                let unavailable = |why: String| {
                    Err(RpcError::new(
                        code::UPSTREAM_ERROR,
                        format!("upstream `{}` is {why}", self.name),
                    ))
                };
                match state {
                    UpState::Ready(live) => return Ok(live),
                    UpState::Down(reason) => return unavailable(format!("unavailable: {reason}")),
                    UpState::Failed(reason) => return unavailable(format!("failed: {reason}")),
                    UpState::Stopped => return unavailable("stopped".into()),
                    UpState::Idle => self.wake.notify_one(),
                    UpState::Starting => {}
                }
                if rx.changed().await.is_err() {
                    return Err(RpcError::new(code::UPSTREAM_ERROR, "gateway stopping"));
                }
            }
        };
        tokio::time::timeout(self.timeout(), wait)
            .await
            .unwrap_or_else(|_| {
                Err(RpcError::new(
                    code::UPSTREAM_ERROR,
                    format!("upstream `{}` is still starting", self.name),
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

    /// A receiver that sees each change of state (for live views).
    pub fn watch_state(&self) -> watch::Receiver<UpState> {
        self.state.subscribe()
    }

    /// A one-word state and its detail, for health reports.
    pub fn status(&self) -> (&'static str, Option<String>) {
        let state = self.state.borrow();
        let detail = match &*state {
            UpState::Ready(live) => Some(live.info.era.to_string()),
            UpState::Down(reason) | UpState::Failed(reason) => Some(reason.clone()),
            _ => None,
        };
        (state.word(), detail)
    }

    /// Everything known about the upstream now (reads `/proc` for a child).
    pub fn report(&self) -> UpstreamReport {
        let (state, detail) = self.status();
        let (pid, info) = match &*self.state.borrow() {
            UpState::Ready(live) => (live.pid, Some(live.info.clone())),
            _ => (None, None),
        };
        let usage = pid.and_then(procstat::group_usage);
        let stats = self.stats.lock().expect("stats lock");
        UpstreamReport {
            name: self.name.to_string(),
            transport: match self.spec().transport {
                Transport::Stdio { .. } => "stdio",
                Transport::Http { .. } => "http",
                Transport::WebSocket { .. } => "websocket",
            },
            state,
            detail,
            era: info.as_ref().map(|i| i.era.to_string()),
            protocol_version: info.map(|i| i.protocol_version),
            pid,
            uptime_seconds: stats
                .since
                .filter(|_| state == "ready")
                .map(|t| t.elapsed().as_secs_f64()),
            restarts: stats.restarts,
            health_failures: stats.health_failures,
            last_exit: stats.last_exit.clone(),
            rss_bytes: usage.map(|u| u.rss_bytes),
            cpu_seconds: usage.map(|u| u.cpu_seconds),
            processes: usage.map(|u| u.processes),
            in_flight: self.in_flight(),
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
        self.touch();
        live.conn.call(method, params, caller, self.timeout())
    }

    /// Marks the upstream as used now (for `idle_timeout`).
    fn touch(&self) {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_used
            .store(now, std::sync::atomic::Ordering::Relaxed);
    }

    /// How long since the last call went out.
    fn unused_for(&self) -> Duration {
        let last = self.last_used.load(std::sync::atomic::Ordering::Relaxed);
        self.epoch
            .elapsed()
            .saturating_sub(Duration::from_millis(last))
    }

    /// The child's recent stderr lines, and a receiver of the lines to come
    /// (taken together, so none falls between).
    pub fn follow_logs(&self) -> (Vec<String>, broadcast::Receiver<String>) {
        let tail = self.log_tail.lock().expect("log lock");
        (tail.iter().cloned().collect(), self.logs.subscribe())
    }

    fn log_sink(self: &Arc<Self>) -> impl Fn(String) + Send + 'static {
        let me = Arc::downgrade(self);
        move |line| {
            let Some(me) = me.upgrade() else { return };
            let mut tail = me.log_tail.lock().expect("log lock");
            if tail.len() == LOG_TAIL {
                tail.pop_front();
            }
            tail.push_back(line.clone());
            let _ = me.logs.send(line);
        }
    }

    fn change_sink(self: &Arc<Self>) -> impl Fn(Value) + Send + Sync + 'static {
        let tx = self.changes.clone();
        move |msg| {
            let _ = tx.send(msg);
        }
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
        Transport::Http { url, .. } | Transport::WebSocket { url, .. } => url.to_string(),
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

/// Every upstream, by name; upstreams come and go with the configuration.
pub struct Upstreams {
    by_name: std::sync::RwLock<BTreeMap<UpstreamName, Arc<Upstream>>>,
    stop: CancellationToken,
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// What [`Upstreams::apply`] did to one upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Added,
    Changed,
    Unchanged,
}

impl Upstreams {
    /// Starts every upstream in the background; calls wait for each to be ready.
    pub fn start(specs: &[UpstreamSpec]) -> Arc<Self> {
        let this = Arc::new(Self {
            by_name: std::sync::RwLock::new(BTreeMap::new()),
            stop: CancellationToken::new(),
            tasks: std::sync::Mutex::new(Vec::new()),
        });
        for spec in specs {
            this.apply(spec.clone());
        }
        this
    }

    /// Adds `spec`'s upstream, or updates the running one of that name (it
    /// restarts with the new spec once its calls drain; an equal spec
    /// changes nothing).
    pub fn apply(&self, spec: UpstreamSpec) -> Applied {
        let mut map = self.by_name.write().expect("upstreams lock");
        if let Some(up) = map.get(&spec.name) {
            return if up.update(spec) {
                Applied::Changed
            } else {
                Applied::Unchanged
            };
        }
        let up = Upstream::new(spec, self.stop.child_token());
        let task = tokio::spawn(Arc::clone(&up).supervise());
        self.tasks.lock().expect("tasks lock").push(task);
        map.insert(up.name().clone(), up);
        Applied::Added
    }

    /// Removes an upstream: new calls no longer find it; calls in flight
    /// finish (up to its timeout), then it stops. False if there was none.
    pub fn remove(&self, name: &UpstreamName) -> bool {
        let Some(up) = self.by_name.write().expect("upstreams lock").remove(name) else {
            return false;
        };
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + up.timeout();
            while up.in_flight() > 0 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            up.stop.cancel();
            tracing::info!(upstream = %up.name(), "removed");
        });
        true
    }

    pub fn get(&self, name: &UpstreamName) -> Option<Arc<Upstream>> {
        self.by_name
            .read()
            .expect("upstreams lock")
            .get(name)
            .cloned()
    }

    /// Every upstream now, in name order.
    pub fn all(&self) -> Vec<Arc<Upstream>> {
        self.by_name
            .read()
            .expect("upstreams lock")
            .values()
            .cloned()
            .collect()
    }

    /// Every upstream's report, in name order.
    pub fn reports(&self) -> Vec<UpstreamReport> {
        self.all().iter().map(|u| u.report()).collect()
    }

    /// Stops every upstream (children: stdin closed, then SIGTERM, then
    /// SIGKILL to the process group) and waits for all of them.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        let tasks = std::mem::take(&mut *self.tasks.lock().expect("tasks lock"));
        for t in tasks {
            let _ = t.await;
        }
    }
}
