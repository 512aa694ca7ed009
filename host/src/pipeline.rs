//! Where route, plugin chain and upstreams meet: one client request in, one
//! result out (plus the notifications and server requests on the way).
//!
//! The principal types:
//!
//! - [`Gateway`]: the joined runtime (upstreams, route table, per-route
//!   aggregation state). `server` calls [`Gateway::handle`] for each request.
//! - [`ClientCtx`]: who is asking: era, declared capabilities, a client key
//!   that tells sessions apart on shared upstream connections.
//! - [`ClientEvent`]: what reaches the client before its result: progress and
//!   log notifications, and server→client requests (legacy clients).
//! - [`Failure`]: an error and the side that caused it.
//!
//! Aggregation rules (ARCHITECTURE.md has the alternatives considered):
//! on a route with several upstreams, tool and prompt names are exposed as
//! `{upstream}__{name}` (sanitised to the spec's tool-name alphabet, with a
//! hash suffix when cleaning or length limits changed the name); resource URIs
//! are left alone and owned by the first upstream, in route order, that lists
//! them (or a template they match); list pagination merges every upstream's
//! cursor into one opaque gateway cursor.
//!
//! This file holds the types and the request's way through the gateway
//! (`handle` → `admit` → `serve` → `dispatch`); each kind of work has its own
//! file below `pipeline/`, as another `impl Gateway` block: `forward`
//! (calls to one upstream), `list` (fan-out and cursors), `names` (exposed
//! names), `resources` (URI routing and subscriptions), `bridge` (legacy
//! upstreams toward modern clients). The parts share this file's types and
//! the per-route state: `list` fills the name index that `names` and
//! `resources` read.

mod bridge;
mod forward;
mod list;
mod names;
mod resources;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use base64::Engine;
use serde_json::{Map, Value, json};
use tokio::sync::{broadcast, mpsc};

use crate::config::{Config, UpstreamName};
use crate::mcp::{self, Era, RpcError, code, meta};
use crate::plugin::{Chain, Decision, Facts, LoadError, Passage, Plugins, Refusal};
use crate::route::{Route, RouteTable, Routes};
use crate::upstream::{self, CallHandle, Caller, PeerInfo, Reply, UpEvent, Upstream, Upstreams};

pub use bridge::Binding;
use bridge::{Bridge, Resumed};
use list::{ListKind, merge_capabilities};
pub use names::{HeaderParam, expose};
use names::{NameIndex, header_params_of};

/// Separates upstream and item names in aggregated names.
pub const SEPARATOR: &str = "__";
/// The spec's (SEP-986) tool-name length limit.
const MAX_NAME: usize = 128;
/// Capacity of a route's change channel (see `upstream::CHANGE_BUFFER`).
const ROUTE_CHANGE_BUFFER: usize = 256;

/// Who is asking.
#[derive(Debug, Clone)]
pub struct ClientCtx {
    /// Distinct per legacy session / modern request; never 0 (the gateway's own).
    pub client: u64,
    pub era: Era,
    /// The protocol revision the client speaks.
    pub protocol_version: String,
    /// The client's declared capabilities.
    pub capabilities: Value,
    /// Modern clients opt in to log messages per request (`_meta`
    /// `logLevel`); without it they get none. Legacy clients: `None`, and the
    /// upstream's session-wide level applies.
    pub log_level: Option<String>,
    /// Who is asking, as far as the gateway can tell: until the auth plugin
    /// names principals, a hash of the request's `Authorization` header
    /// (modern requests), so a bridged round cannot be resumed with another
    /// credential.
    pub principal: Option<String>,
    /// For a modern request that may need the client's input
    /// (`tools/call`, `prompts/get`, `resources/read`): what a bridged round
    /// is bound to. Set by [`Gateway::handle`].
    pub binding: Option<Binding>,
    /// The HTTP request this one arrived in (headers, client address), for
    /// plugins. `None` for the gateway's own calls.
    pub inbound: Option<Arc<Inbound>>,
}

/// What the edge knows about the HTTP request a JSON-RPC request came in.
#[derive(Debug, Default)]
pub struct Inbound {
    pub headers: axum::http::HeaderMap,
    pub peer: Option<std::net::SocketAddr>,
    /// The verified subject of the client's TLS certificate, if any.
    pub client_cert: Option<Arc<str>>,
}

/// Syslog severities in the order MCP's `LoggingLevel` lists them.
const LOG_LEVELS: [&str; 8] = [
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];

impl ClientCtx {
    /// The gateway itself, calling upstreams on its own behalf (listing to
    /// learn tool definitions, unsubscribing after the last subscriber):
    /// client 0, no capabilities.
    fn gateway() -> Self {
        ClientCtx {
            client: 0,
            era: Era::Legacy,
            protocol_version: mcp::LATEST_LEGACY.into(),
            capabilities: json!({}),
            log_level: None,
            binding: None,
            principal: None,
            inbound: None,
        }
    }

    /// The operator, calling a route from the console as `principal` (with
    /// `inbound`'s headers for the chain's plugins): a legacy client with no
    /// capabilities, so nothing can ask it for input. `client` must not be a
    /// number the edge hands out (the console's have the top bit set).
    pub fn operator(client: u64, principal: Option<String>, inbound: Option<Arc<Inbound>>) -> Self {
        ClientCtx {
            client,
            principal,
            inbound,
            ..Self::gateway()
        }
    }

    /// Whether a request-scoped notification is for this client: a modern
    /// client gets log messages only at or above the level it asked for.
    fn wants(&self, notification: &Value) -> bool {
        if self.era == Era::Legacy || notification["method"] != "notifications/message" {
            return true;
        }
        let rank = |l: Option<&str>| l.and_then(|l| LOG_LEVELS.iter().position(|x| *x == l));
        match (
            rank(self.log_level.as_deref()),
            rank(notification["params"]["level"].as_str()),
        ) {
            (Some(wanted), Some(level)) => level >= wanted,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }

    fn caller(&self) -> Caller {
        let has = |k: &str| self.capabilities.get(k).is_some_and(|v| !v.is_null());
        Caller {
            client: self.client,
            sampling: has("sampling"),
            elicitation: has("elicitation"),
            roots: has("roots"),
        }
    }
}

/// What reaches the client while its request runs.
#[derive(Debug)]
pub enum ClientEvent {
    /// A notification for this request's stream (progress, log message).
    Notification(Value),
    /// A server→client request; answer through `reply`.
    ServerRequest {
        method: String,
        params: Option<Value>,
        reply: Reply,
    },
}

pub type Sink = mpsc::UnboundedSender<ClientEvent>;

/// Which side caused a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Bad input from the client (unknown tool, bad cursor).
    Client,
    /// A plugin rejected the request.
    Plugin,
    /// The upstream failed, timed out or answered with an error.
    Upstream,
}

/// An error for the client, with who caused it and (for plugin rejections)
/// the HTTP status and headers to use.
#[derive(Debug, Clone)]
pub struct Failure {
    pub error: RpcError,
    pub side: Side,
    pub http_status: Option<u16>,
    /// Response headers a plugin asked for (`WWW-Authenticate`, `Retry-After`).
    pub headers: Vec<(String, String)>,
}

impl Failure {
    fn client(code: i64, message: impl Into<String>) -> Self {
        Self::of(RpcError::new(code, message), Side::Client)
    }

    fn upstream(error: RpcError) -> Self {
        Self::of(error, Side::Upstream)
    }

    fn of(error: RpcError, side: Side) -> Self {
        Self {
            error,
            side,
            http_status: None,
            headers: Vec::new(),
        }
    }

    /// A plugin's refusal; a status of 200 leaves the era's usual mapping.
    fn refused(r: Refusal) -> Self {
        Self {
            error: r.error,
            side: Side::Plugin,
            http_status: (r.status != 200).then_some(r.status),
            headers: r.headers,
        }
    }

    /// What the response phase sees of it.
    fn as_refusal(&self) -> Refusal {
        Refusal {
            error: self.error.clone(),
            status: self.http_status.unwrap_or(200),
            headers: self.headers.clone(),
        }
    }
}

/// What `initialize` and `server/discover` report for a route.
#[derive(Debug, Clone)]
pub struct Description {
    pub capabilities: Value,
    pub instructions: Option<String>,
}

/// Per-route runtime state. Kept after its route is removed, so that
/// requests still running on it finish with their chain (a path re-added
/// later gets it back).
struct RouteState {
    index: Mutex<NameIndex>,
    /// Resource URI → number of client subscriptions through this route, so
    /// the shared upstream is subscribed once and unsubscribed last.
    subscriptions: Mutex<HashMap<String, usize>>,
    changes: broadcast::Sender<Value>,
    /// The route's plugin chain, swappable while serving: a request holds
    /// the chain it started with.
    chain: Arc<ArcSwap<Chain>>,
    /// The tasks forwarding each upstream's change notifications here.
    forwarders: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl RouteState {
    fn new(chain: Chain) -> Arc<Self> {
        Arc::new(Self {
            index: Mutex::new(NameIndex::default()),
            subscriptions: Mutex::new(HashMap::new()),
            changes: broadcast::channel(ROUTE_CHANGE_BUFFER).0,
            chain: Arc::new(ArcSwap::from_pointee(chain)),
            forwarders: Mutex::new(Vec::new()),
        })
    }

    /// Forgets what was learnt from the upstreams' lists.
    fn forget_lists(&self) {
        let mut index = self.index.lock().expect("index lock");
        index.header_params.clear();
        index.tools_listed = false;
    }
}

/// The joined runtime (see the module docs).
pub struct Gateway {
    upstreams: Arc<Upstreams>,
    routes: Routes,
    /// Each route path's state (see [`RouteState`]).
    states: std::sync::RwLock<HashMap<String, Arc<RouteState>>>,
    /// Suspended upstream calls waiting for a modern client's input.
    bridge: Arc<Bridge>,
    /// The loaded plugin instances; locked by a reconfiguration (one at a time).
    plugins: tokio::sync::Mutex<Plugins>,
    /// The configuration in force.
    config: Mutex<Config>,
}

/// The owned part of a request's [`Facts`].
struct Known {
    request_id: String,
    upstream: Option<UpstreamName>,
    target: Option<String>,
}

impl Known {
    fn facts<'a>(&'a self, route: &'a Route, ctx: &'a ClientCtx, method: &'a str) -> Facts<'a> {
        Facts {
            request_id: &self.request_id,
            route: route.path.as_str(),
            upstream: self.upstream.as_ref().map(UpstreamName::as_str),
            method,
            target: self.target.as_deref(),
            headers: ctx.inbound.as_ref().map(|i| &i.headers),
            client_address: ctx.inbound.as_ref().and_then(|i| i.peer),
            client_cert: ctx.inbound.as_ref().and_then(|i| i.client_cert.as_deref()),
            era: ctx.era,
            protocol_version: &ctx.protocol_version,
        }
    }
}

/// What a reconfiguration changed.
#[derive(Debug, Default)]
pub struct Reconfigured {
    /// Plugin instances loaded anew (or removed).
    pub plugins: Vec<crate::config::PluginName>,
    /// Routes added, or whose upstreams or chain changed.
    pub routes: Vec<String>,
    pub routes_removed: Vec<String>,
    pub upstreams_added: Vec<String>,
    /// Restarted with their new configuration.
    pub upstreams_changed: Vec<String>,
    /// Drained and stopped.
    pub upstreams_removed: Vec<String>,
}

impl Reconfigured {
    pub fn is_empty(&self) -> bool {
        self.plugins.is_empty()
            && self.routes.is_empty()
            && self.routes_removed.is_empty()
            && self.upstreams_added.is_empty()
            && self.upstreams_changed.is_empty()
            && self.upstreams_removed.is_empty()
    }
}

impl Gateway {
    /// Joins started upstreams with the configured routes, and starts
    /// forwarding each upstream's change notifications to its routes.
    pub fn new(config: &Config, upstreams: Arc<Upstreams>, plugins: Plugins) -> Arc<Self> {
        let table = RouteTable::new(&config.routes);
        let bridge = Arc::new(Bridge::with_key(
            config.server.state_key.as_ref().map(|k| k.0.as_bytes()),
        ));
        let sweeper = Arc::downgrade(&bridge);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                match sweeper.upgrade() {
                    Some(b) => b.expire(),
                    None => return,
                }
            }
        });
        let mut states = HashMap::new();
        for route in table.iter() {
            states.insert(
                route.path.as_str().to_owned(),
                RouteState::new(plugins.chain(&route.plugins)),
            );
        }
        let gateway = Arc::new(Self {
            upstreams,
            routes: Routes::new(RouteTable::default()),
            states: std::sync::RwLock::new(states),
            bridge,
            plugins: tokio::sync::Mutex::new(plugins),
            config: Mutex::new(config.clone()),
        });
        for route in table.iter() {
            gateway.wire(&gateway.state(route), route);
        }
        gateway.routes.swap(table);
        gateway
    }

    /// (Re)starts the tasks that carry each of the route's upstreams'
    /// change notifications (`list_changed`, `resources/updated`) through
    /// the chain's notification phase to the route's listeners.
    fn wire(&self, state: &Arc<RouteState>, route: &Route) {
        let mut forwarders = state.forwarders.lock().expect("forwarders lock");
        for f in forwarders.drain(..) {
            f.abort();
        }
        for name in &route.upstreams {
            let Some(up) = self.upstreams.get(name) else {
                continue;
            };
            let mut rx = up.subscribe_changes();
            let state = Arc::clone(state);
            let path = route.path.clone();
            let name = name.clone();
            let task = tokio::spawn(async move {
                loop {
                    match rx.recv().await {
                        Ok(mut msg) => {
                            if msg["method"] == "notifications/tools/list_changed" {
                                // Tool definitions may have changed: learn
                                // mirrored parameters afresh.
                                state.forget_lists();
                            }
                            // The chain's notification phase: plugins may
                            // rewrite or drop it (and caches invalidate).
                            let chain = state.chain.load_full();
                            let method = msg["method"].as_str().unwrap_or_default().to_owned();
                            if chain.wants_notification(&method) {
                                let params = msg.get("params").cloned();
                                match chain
                                    .on_notification(
                                        path.as_str(),
                                        Some(name.as_str()),
                                        &method,
                                        params,
                                    )
                                    .await
                                {
                                    None => continue,
                                    Some(Some(p)) => msg["params"] = p,
                                    Some(None) => {}
                                }
                            }
                            let _ = state.changes.send(msg);
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => break,
                    }
                }
            });
            forwarders.push(task.abort_handle());
        }
    }

    /// Applies a new configuration by difference: changed plugins are
    /// loaded (off the request path), new upstreams start, changed ones
    /// restart once their calls drain, untouched ones keep running with
    /// their sessions; the route table is swapped in one atomic store; then
    /// removed upstreams drain and stop. Requests already running finish on
    /// the route and chain they started with. If a plugin fails to load,
    /// nothing changes. `[server]` settings need a restart.
    pub async fn apply(&self, config: &Config) -> Result<Reconfigured, LoadError> {
        let mut current = self.plugins.lock().await;
        let (next, changed_plugins) = current.reload(&config.plugins).await?;
        let mut done = Reconfigured {
            plugins: changed_plugins,
            ..Reconfigured::default()
        };
        let mut restarted = Vec::new();
        for spec in &config.upstreams {
            match self.upstreams.apply(spec.clone()) {
                upstream::Applied::Added => done.upstreams_added.push(spec.name.to_string()),
                upstream::Applied::Changed => {
                    done.upstreams_changed.push(spec.name.to_string());
                    restarted.push(spec.name.clone());
                }
                upstream::Applied::Unchanged => {}
            }
        }
        let table = RouteTable::new(&config.routes);
        for route in table.iter() {
            let path = route.path.as_str();
            let state = self.states.read().expect("states lock").get(path).cloned();
            let state = state.unwrap_or_else(|| {
                let s = RouteState::new(next.chain(&route.plugins));
                self.states
                    .write()
                    .expect("states lock")
                    .insert(path.to_owned(), Arc::clone(&s));
                s
            });
            let previous = self.routes.lookup(path);
            let mut changed = false;
            let chain = next.chain(&route.plugins);
            if !chain.same_as(&state.chain.load()) {
                state.chain.store(Arc::new(chain));
                changed = true;
            }
            if previous
                .as_ref()
                .is_none_or(|p| p.upstreams != route.upstreams)
            {
                state.forget_lists();
                self.wire(&state, route);
                changed = true;
            } else if route.upstreams.iter().any(|u| restarted.contains(u)) {
                state.forget_lists();
            }
            if changed {
                done.routes.push(path.to_owned());
            }
        }
        for old in self.routes.current().iter() {
            if table.get(old.path.as_str()).is_none() {
                done.routes_removed.push(old.path.to_string());
                if let Some(s) = self
                    .states
                    .read()
                    .expect("states lock")
                    .get(old.path.as_str())
                {
                    for f in s.forwarders.lock().expect("forwarders lock").drain(..) {
                        f.abort();
                    }
                }
            }
        }
        self.routes.swap(table);
        for up in self.upstreams.all() {
            if config.upstream(up.name()).is_none() {
                self.upstreams.remove(up.name());
                done.upstreams_removed.push(up.name().to_string());
            }
        }
        let mut in_force = self.config.lock().expect("config lock");
        if in_force.server != config.server {
            tracing::warn!("[server] settings changed: they take effect at the next restart");
        }
        *in_force = config.clone();
        *current = next;
        Ok(done)
    }

    /// The configuration in force (after the last reconfiguration).
    pub fn config(&self) -> Config {
        self.config.lock().expect("config lock").clone()
    }

    /// The document the route's chain serves at `/.well-known/{name}{route}`.
    pub fn well_known(&self, route: &Route, name: &str) -> Option<Value> {
        self.chain(route).well_known(name).cloned()
    }

    /// The component files in use (for the watcher).
    pub async fn plugin_files(&self) -> Vec<std::path::PathBuf> {
        self.plugins.lock().await.files()
    }

    pub fn upstreams(&self) -> &Arc<Upstreams> {
        &self.upstreams
    }

    /// The route serving `path`, if any.
    pub fn route(&self, path: &str) -> Option<Arc<Route>> {
        self.routes.lookup(path)
    }

    /// Every route path (for the router).
    pub fn route_paths(&self) -> Vec<String> {
        self.routes
            .current()
            .iter()
            .map(|r| r.path.as_str().to_owned())
            .collect()
    }

    fn state(&self, route: &Route) -> Arc<RouteState> {
        let states = self.states.read().expect("states lock");
        match states.get(route.path.as_str()) {
            Some(s) => Arc::clone(s),
            // Unreachable: a route's state is made before the route is
            // published, and never dropped. A detached empty state (no
            // plugins, no listeners) is the answer that cannot panic.
            None => RouteState::new(Chain::default()),
        }
    }

    /// The route's change notifications (`list_changed`, `resources/updated`)
    /// from all its upstreams.
    pub fn subscribe_changes(&self, route: &Route) -> broadcast::Receiver<Value> {
        self.state(route).changes.subscribe()
    }

    fn upstream(&self, name: &UpstreamName) -> Result<Arc<Upstream>, Failure> {
        self.upstreams.get(name).ok_or_else(|| {
            Failure::upstream(RpcError::new(
                code::INTERNAL_ERROR,
                format!("upstream `{name}` is not configured"),
            ))
        })
    }

    /// The merged capabilities and instructions of a route's upstreams.
    /// Waits (bounded by each upstream's timeout) for upstreams still starting.
    pub async fn describe(&self, route: &Route) -> Description {
        let mut caps = Map::new();
        let mut instructions = Vec::new();
        let infos = futures_util::future::join_all(route.upstreams.iter().map(|n| async move {
            let up = self.upstreams.get(n)?;
            up.live().await.ok().map(|l| (n.clone(), l.info.clone()))
        }))
        .await;
        for (name, info) in infos.into_iter().flatten() {
            merge_capabilities(&mut caps, &info.capabilities);
            if let Some(i) = info.instructions.filter(|i| !i.trim().is_empty()) {
                instructions.push(if route.aggregates() {
                    format!("[{name}] {i}")
                } else {
                    i
                });
            }
        }
        // The gateway itself always answers logging/setLevel and ping.
        caps.entry("logging").or_insert(json!({}));
        Description {
            capabilities: Value::Object(caps),
            instructions: (!instructions.is_empty()).then(|| instructions.join("\n\n")),
        }
    }

    /// The route's current chain.
    fn chain(&self, route: &Route) -> Arc<Chain> {
        self.state(route).chain.load_full()
    }

    /// Serves one client request on `route`: the chain's request phase, the
    /// upstream, the response phase (see `plugin::chain` for the order rule).
    pub async fn handle(
        &self,
        route: &Route,
        ctx: &ClientCtx,
        method: &str,
        params: Option<Value>,
        sink: &Sink,
    ) -> Result<Value, Failure> {
        use tracing::Instrument;
        let started = std::time::Instant::now();
        let upstream = self.upstream_of(route, method, params.as_ref());
        let span = crate::telemetry::request_span(
            route.path.as_str(),
            method,
            upstream.as_ref().map(UpstreamName::as_str),
            params.as_ref(),
        );
        let result = self
            .handle_inner(route, ctx, upstream.clone(), method, params, sink)
            .instrument(span.clone())
            .await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(f) => match f.side {
                Side::Client => "client_error",
                Side::Plugin => "rejected",
                Side::Upstream => "upstream_error",
            },
        };
        span.record("outcome", outcome);
        crate::telemetry::record_request(
            route.path.as_str(),
            upstream.as_ref().map(UpstreamName::as_str),
            method,
            outcome,
            started.elapsed(),
        );
        result
    }

    /// [`Gateway::handle`] past its accounting; `upstream` is what
    /// `upstream_of` said (resolved once per request).
    async fn handle_inner(
        &self,
        route: &Route,
        ctx: &ClientCtx,
        upstream: Option<UpstreamName>,
        method: &str,
        params: Option<Value>,
        sink: &Sink,
    ) -> Result<Value, Failure> {
        let chain = self.chain(route);
        if !chain.wants_request(method) {
            let result = self.serve(route, ctx, method, params, sink).await;
            return self.finish(ctx, method, result);
        }
        let known = Self::known(upstream, method, params.as_ref());
        let facts = known.facts(route, ctx, method);
        let mut passage = Passage::default();
        let (sent, outcome) = match chain.on_request(&facts, &mut passage, params).await {
            Decision::Continue(params) => {
                // A principal named by a plugin replaces the gateway's guess:
                // bridged rounds are then bound to it.
                let named;
                let ctx = match &passage.principal {
                    Some(p) => {
                        named = ClientCtx {
                            principal: Some(p.clone()),
                            ..ctx.clone()
                        };
                        &named
                    }
                    None => ctx,
                };
                let sent = if chain.wants_response(method) {
                    params.clone()
                } else {
                    None
                };
                (sent, self.serve(route, ctx, method, params, sink).await)
            }
            Decision::Respond(v) => (None, Ok(v)),
            Decision::Reject(r) => (None, Err(Failure::refused(r))),
        };
        let (before, failure) = match outcome {
            Ok(v) => (Ok(v), None),
            Err(f) => (Err(f.as_refusal()), Some(f)),
        };
        let after = chain
            .on_response(&facts, &mut passage, sent.as_ref(), before)
            .await;
        let result = match (failure, after) {
            // Unchanged errors keep who caused them.
            (Some(f), Err(r)) if f.as_refusal() == r => Err(f),
            (_, Ok(v)) => Ok(v),
            (_, Err(r)) => Err(Failure::refused(r)),
        };
        self.finish(ctx, method, result)
    }

    /// The request phase alone, for requests the edge answers itself
    /// (`initialize`, `subscriptions/listen`): a refusal is the answer;
    /// anything else lets the edge go on.
    pub async fn admit(
        &self,
        route: &Route,
        ctx: &ClientCtx,
        method: &str,
        params: Option<&Value>,
    ) -> Result<(), Failure> {
        let chain = self.chain(route);
        if !chain.wants_request(method) {
            return Ok(());
        }
        let known = Self::known(self.upstream_of(route, method, params), method, params);
        let facts = known.facts(route, ctx, method);
        match chain
            .on_request(&facts, &mut Passage::default(), params.cloned())
            .await
        {
            Decision::Reject(r) => Err(Failure::refused(r)),
            Decision::Continue(_) | Decision::Respond(_) => Ok(()),
        }
    }

    /// What the gateway extracts from a request for its plugins.
    fn known(upstream: Option<UpstreamName>, method: &str, params: Option<&Value>) -> Known {
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Known {
            request_id: SEQ
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                .to_string(),
            upstream,
            target: mcp::target_name(method, params).map(str::to_owned),
        }
    }

    /// The upstream a request goes to, when it is known before calling.
    pub fn upstream_of(
        &self,
        route: &Route,
        method: &str,
        params: Option<&Value>,
    ) -> Option<UpstreamName> {
        if !route.aggregates() {
            return route.upstreams.first().cloned();
        }
        let kind = match method {
            "tools/call" => ListKind::Tools,
            "prompts/get" => ListKind::Prompts,
            _ => return None,
        };
        let name = mcp::target_name(method, params)?;
        self.resolve_name(route, kind, name).ok().map(|(u, _)| u)
    }

    /// A request past the request phase: the era bridge and the upstream.
    async fn serve(
        &self,
        route: &Route,
        ctx: &ClientCtx,
        method: &str,
        params: Option<Value>,
        sink: &Sink,
    ) -> Result<Value, Failure> {
        let bound;
        let ctx = if ctx.era == Era::Modern
            && matches!(method, "tools/call" | "prompts/get" | "resources/read")
        {
            let binding = bridge::digest(
                route.path.as_str(),
                ctx.principal.as_deref(),
                method,
                params.as_ref(),
            );
            if let Some(p) = &params {
                match self.bridge.resume(p, &binding) {
                    Err(e) => {
                        return Err(Failure::of(e, Side::Client));
                    }
                    Ok(Resumed::Call(call, upstream)) => {
                        bound = ClientCtx {
                            binding: Some(binding),
                            ..ctx.clone()
                        };
                        return self.relay(call, &upstream, &bound, sink).await;
                    }
                    Ok(Resumed::NotOurs) => {}
                }
            }
            bound = ClientCtx {
                binding: Some(binding),
                ..ctx.clone()
            };
            &bound
        } else {
            ctx
        };
        self.dispatch(route, ctx, method, params, sink).await
    }

    /// The era's result and error conventions, applied last (after the
    /// response phase, so a plugin's own answer gets them too).
    fn finish(
        &self,
        ctx: &ClientCtx,
        method: &str,
        result: Result<Value, Failure>,
    ) -> Result<Value, Failure> {
        let result = match result {
            Ok(v) => Ok(v),
            // Errors across eras: the modern era reports an unknown resource
            // as -32602 where legacy servers used -32002.
            // (A plugin's own error is passed as the plugin chose it.)
            Err(mut f)
                if ctx.era == Era::Modern
                    && f.side != Side::Plugin
                    && f.error.code == code::RESOURCE_NOT_FOUND =>
            {
                f.error.code = code::INVALID_PARAMS;
                Err(f)
            }
            Err(f) => Err(f),
        };
        // Results across eras: modern clients always get a `resultType`;
        // legacy clients never see the modern-only `"complete"` marker.
        result.map(|mut v| {
            if let Some(obj) = v.as_object_mut() {
                match ctx.era {
                    Era::Modern => {
                        obj.entry("resultType").or_insert_with(|| "complete".into());
                        // List and read results must say how long they stay
                        // fresh; a legacy upstream says nothing, so: not at
                        // all, and for this client only.
                        let complete =
                            obj.get("resultType").and_then(Value::as_str) == Some("complete");
                        if complete
                            && (ListKind::of(method).is_some() || method == "resources/read")
                        {
                            obj.entry("ttlMs").or_insert_with(|| 0.into());
                            obj.entry("cacheScope").or_insert_with(|| "private".into());
                        }
                    }
                    Era::Legacy => {
                        if obj.get("resultType").and_then(Value::as_str) == Some("complete") {
                            obj.remove("resultType");
                        }
                    }
                }
            }
            v
        })
    }

    async fn dispatch(
        &self,
        route: &Route,
        ctx: &ClientCtx,
        method: &str,
        params: Option<Value>,
        sink: &Sink,
    ) -> Result<Value, Failure> {
        if let Some(kind) = ListKind::of(method) {
            return self.list(route, ctx, kind, method, params, sink).await;
        }
        match method {
            "ping" => Ok(json!({})),
            "logging/setLevel" => {
                for name in &route.upstreams {
                    let Ok(up) = self.upstream(name) else {
                        continue;
                    };
                    let Some(info) = up.info() else { continue };
                    if info.era == Era::Legacy && info.capabilities.get("logging").is_some() {
                        let _ = self.forward(&up, ctx, method, params.clone(), sink).await;
                    }
                }
                Ok(json!({}))
            }
            "server/discover" => {
                let d = self.describe(route).await;
                let mut r = json!({
                    "supportedVersions": mcp::supported_versions(),
                    "capabilities": d.capabilities,
                    "_meta": {meta::SERVER_INFO: upstream::gateway_info()},
                    "ttlMs": 0,
                    "cacheScope": "public",
                });
                if let Some(i) = d.instructions {
                    r["instructions"] = i.into();
                }
                Ok(r)
            }
            "tools/call" | "prompts/get" => {
                let kind = if method == "tools/call" {
                    ListKind::Tools
                } else {
                    ListKind::Prompts
                };
                let mut params = params.unwrap_or_else(|| json!({}));
                let Some(name) = params
                    .get("name")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                else {
                    return Err(Failure::client(code::INVALID_PARAMS, "`name` is required"));
                };
                let (up, original) = self.resolve_name(route, kind, &name)?;
                params["name"] = original.into();
                let up = self.upstream(&up)?;
                self.forward(&up, ctx, method, Some(params), sink).await
            }
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
                let Some(uri) = params
                    .as_ref()
                    .and_then(|p| p.get("uri"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                else {
                    return Err(Failure::client(code::INVALID_PARAMS, "`uri` is required"));
                };
                match method {
                    "resources/subscribe" => self.subscribe(route, ctx, &uri, params, sink).await,
                    "resources/unsubscribe" => {
                        self.release(route, std::slice::from_ref(&uri)).await;
                        Ok(json!({}))
                    }
                    _ => self.by_uri(route, ctx, method, &uri, params, sink).await,
                }
            }
            "completion/complete" => {
                let mut params = params.unwrap_or_else(|| json!({}));
                let r = params.get("ref").cloned().unwrap_or(Value::Null);
                match r.get("type").and_then(Value::as_str) {
                    Some("ref/prompt") => {
                        let name = r.get("name").and_then(Value::as_str).unwrap_or_default();
                        let (up, original) = self.resolve_name(route, ListKind::Prompts, name)?;
                        params["ref"]["name"] = original.into();
                        let up = self.upstream(&up)?;
                        self.forward(&up, ctx, method, Some(params), sink).await
                    }
                    Some("ref/resource") => {
                        let uri = r
                            .get("uri")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned();
                        self.by_uri(route, ctx, method, &uri, Some(params), sink)
                            .await
                    }
                    _ => Err(Failure::client(
                        code::INVALID_PARAMS,
                        "`ref` must be a ref/prompt or ref/resource",
                    )),
                }
            }
            _ if !route.aggregates() => {
                // One upstream: pass unknown methods through (extensions).
                let up = self.upstream(&route.upstreams[0])?;
                self.forward(&up, ctx, method, params, sink).await
            }
            _ => Err(Failure::client(
                code::METHOD_NOT_FOUND,
                format!("method not found: {method}"),
            )),
        }
    }
}
