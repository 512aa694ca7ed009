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

mod bridge;

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

/// The three list kinds the gateway merges, and the one it merges like them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListKind {
    Tools,
    Prompts,
    Resources,
    Templates,
}

impl ListKind {
    fn of(method: &str) -> Option<Self> {
        Some(match method {
            "tools/list" => Self::Tools,
            "prompts/list" => Self::Prompts,
            "resources/list" => Self::Resources,
            "resources/templates/list" => Self::Templates,
            _ => return None,
        })
    }

    fn field(self) -> &'static str {
        match self {
            Self::Tools => "tools",
            Self::Prompts => "prompts",
            Self::Resources => "resources",
            Self::Templates => "resourceTemplates",
        }
    }

    fn capability(self) -> &'static str {
        match self {
            Self::Tools => "tools",
            Self::Prompts => "prompts",
            Self::Resources | Self::Templates => "resources",
        }
    }
}

/// Aggregated names and resource owners learnt from list results.
#[derive(Default)]
struct NameIndex {
    /// Exposed tool name → (upstream, original name).
    tools: HashMap<String, (UpstreamName, String)>,
    prompts: HashMap<String, (UpstreamName, String)>,
    /// Resource URI → owning upstream (first lister in route order wins).
    resources: HashMap<String, UpstreamName>,
    /// URI template literal prefix → upstream.
    templates: Vec<(String, UpstreamName)>,
    /// Exposed tool name → its parameters mirrored in `Mcp-Param-*` headers.
    header_params: HashMap<String, Vec<HeaderParam>>,
    /// Whether a full `tools/list` has filled the maps above.
    tools_listed: bool,
}

/// A tool parameter a modern client mirrors in a header (`x-mcp-header`).
#[derive(Debug, Clone, PartialEq)]
pub struct HeaderParam {
    /// The argument's name.
    pub param: String,
    /// The header's suffix: `Mcp-Param-{header}`.
    pub header: String,
}

/// The `x-mcp-header` parameters in a tool definition.
fn header_params_of(tool: &Value) -> Vec<HeaderParam> {
    let Some(props) = tool
        .get("inputSchema")
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object)
    else {
        return Vec::new();
    };
    props
        .iter()
        .filter_map(|(param, schema)| {
            let header = schema.get("x-mcp-header")?.as_str()?;
            Some(HeaderParam {
                param: param.clone(),
                header: header.to_owned(),
            })
        })
        .collect()
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

    /// Records the `x-mcp-header` parameters of a passed-through tool list.
    fn remember_header_params(&self, route: &Route, result: &Value) {
        let Some(tools) = result.get("tools").and_then(Value::as_array) else {
            return;
        };
        let state = self.state(route);
        let mut index = state.index.lock().expect("index lock");
        for tool in tools {
            if let Some(name) = tool.get("name").and_then(Value::as_str) {
                index
                    .header_params
                    .insert(name.to_owned(), header_params_of(tool));
            }
        }
    }

    /// The parameters of tool `name` (as the route exposes it) that modern
    /// clients mirror in `Mcp-Param-*` headers. Unknown tools make the
    /// gateway list the route's tools once, so a client that calls without
    /// listing first is validated too.
    pub async fn header_params(&self, route: &Route, name: &str) -> Vec<HeaderParam> {
        let listed = {
            let state = self.state(route);
            let index = state.index.lock().expect("index lock");
            if let Some(params) = index.header_params.get(name) {
                return params.clone();
            }
            index.tools_listed
        };
        if !listed {
            // Listing learns the parameters (see `remember_header_params`).
            let _ = self.tools(route).await;
            self.state(route)
                .index
                .lock()
                .expect("index lock")
                .tools_listed = true;
        }
        let state = self.state(route);
        let index = state.index.lock().expect("index lock");
        index.header_params.get(name).cloned().unwrap_or_default()
    }

    /// Every tool the route exposes (all pages), as the gateway itself sees
    /// them: no plugin runs (the admin API and the CLI show the whole set).
    pub async fn tools(&self, route: &Route) -> Result<Vec<Value>, RpcError> {
        let ctx = ClientCtx::gateway();
        let (sink, _) = mpsc::unbounded_channel();
        let mut cursor: Option<String> = None;
        let mut tools = Vec::new();
        for _ in 0..100 {
            let params = cursor.as_ref().map(|c| json!({"cursor": c}));
            let mut page = self
                .list(route, &ctx, ListKind::Tools, "tools/list", params, &sink)
                .await
                .map_err(|f| f.error)?;
            if let Some(Value::Array(t)) = page.get_mut("tools").map(Value::take) {
                tools.extend(t);
            }
            match page.get("nextCursor").and_then(Value::as_str) {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        Ok(tools)
    }

    /// Sends one request to one upstream and relays what comes back.
    async fn forward(
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
    async fn relay(
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

    /// Finds the upstream and original name behind an exposed tool/prompt name.
    fn resolve_name(
        &self,
        route: &Route,
        kind: ListKind,
        name: &str,
    ) -> Result<(UpstreamName, String), Failure> {
        if !route.aggregates() {
            return Ok((route.upstreams[0].clone(), name.to_owned()));
        }
        let state = self.state(route);
        let index = state.index.lock().expect("index lock");
        let map = if kind == ListKind::Tools {
            &index.tools
        } else {
            &index.prompts
        };
        if let Some(found) = map.get(name) {
            return Ok(found.clone());
        }
        if let Some((prefix, rest)) = name.split_once(SEPARATOR)
            && let Some(up) = route.upstreams.iter().find(|u| u.as_str() == prefix)
            && !rest.is_empty()
        {
            return Ok((up.clone(), rest.to_owned()));
        }
        let what = if kind == ListKind::Tools {
            "tool"
        } else {
            "prompt"
        };
        Err(Failure::client(
            code::INVALID_PARAMS,
            format!("unknown {what}: {name}"),
        ))
    }

    /// The upstreams that may own `uri`, best candidate first.
    fn uri_candidates(&self, route: &Route, uri: &str) -> Vec<UpstreamName> {
        if !route.aggregates() {
            return route.upstreams.clone();
        }
        let state = self.state(route);
        let index = state.index.lock().expect("index lock");
        if let Some(owner) = index.resources.get(uri) {
            return vec![owner.clone()];
        }
        let mut out: Vec<UpstreamName> = Vec::new();
        let mut templates: Vec<&(String, UpstreamName)> = index
            .templates
            .iter()
            .filter(|(p, _)| uri.starts_with(p.as_str()))
            .collect();
        templates.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        for (_, up) in templates {
            if !out.contains(up) {
                out.push(up.clone());
            }
        }
        for up in &route.upstreams {
            if !out.contains(up) {
                out.push(up.clone());
            }
        }
        out
    }

    /// Routes a request by resource URI: the owner if known, else each
    /// candidate in turn until one does not answer "not found".
    async fn by_uri(
        &self,
        route: &Route,
        ctx: &ClientCtx,
        method: &str,
        uri: &str,
        params: Option<Value>,
        sink: &Sink,
    ) -> Result<Value, Failure> {
        let candidates = self.uri_candidates(route, uri);
        let mut last = None;
        for name in &candidates {
            let up = self.upstream(name)?;
            if candidates.len() > 1
                && up
                    .info()
                    .is_some_and(|i| i.capabilities.get("resources").is_none())
            {
                continue;
            }
            // A modern upstream has no resources/subscribe: the URI joins
            // the filter of the gateway's own subscription to it.
            if matches!(method, "resources/subscribe" | "resources/unsubscribe")
                && up.live().await.is_ok_and(|l| l.info.era == Era::Modern)
            {
                up.watch_resource(uri, method == "resources/subscribe");
                return Ok(json!({}));
            }
            match self.forward(&up, ctx, method, params.clone(), sink).await {
                Err(f)
                    if candidates.len() > 1
                        && matches!(
                            f.error.code,
                            code::RESOURCE_NOT_FOUND | code::INVALID_PARAMS
                        ) =>
                {
                    last = Some(f);
                }
                other => return other,
            }
        }
        Err(last.unwrap_or_else(|| {
            Failure::client(code::INVALID_PARAMS, format!("resource not found: {uri}"))
        }))
    }

    /// `resources/subscribe`: subscribes the owning upstream on the route's
    /// first subscription to `uri`.
    async fn subscribe(
        &self,
        route: &Route,
        ctx: &ClientCtx,
        uri: &str,
        params: Option<Value>,
        sink: &Sink,
    ) -> Result<Value, Failure> {
        let first = {
            let state = self.state(route);
            let mut subs = state.subscriptions.lock().expect("subs lock");
            let n = subs.entry(uri.to_owned()).or_insert(0);
            *n += 1;
            *n == 1
        };
        if !first {
            return Ok(json!({}));
        }
        let r = self
            .by_uri(route, ctx, "resources/subscribe", uri, params, sink)
            .await;
        if r.is_err() {
            let state = self.state(route);
            let mut subs = state.subscriptions.lock().expect("subs lock");
            subs.remove(uri);
        }
        r
    }

    /// Drops one client subscription to each of `uris`, unsubscribing the
    /// upstream when the last one goes.
    pub async fn release(&self, route: &Route, uris: &[String]) {
        let last: Vec<String> = {
            let state = self.state(route);
            let mut subs = state.subscriptions.lock().expect("subs lock");
            uris.iter()
                .filter(|u| match subs.get_mut(u.as_str()) {
                    Some(n) if *n > 1 => {
                        *n -= 1;
                        false
                    }
                    Some(_) => {
                        subs.remove(u.as_str());
                        true
                    }
                    None => false,
                })
                .cloned()
                .collect()
        };
        let ctx = ClientCtx::gateway();
        let (sink, _) = mpsc::unbounded_channel();
        for uri in last {
            let params = Some(json!({"uri": uri}));
            if let Err(f) = self
                .by_uri(route, &ctx, "resources/unsubscribe", &uri, params, &sink)
                .await
            {
                tracing::debug!(%uri, error = %f.error, "upstream unsubscribe failed");
            }
        }
    }

    /// A list request: passed through on a one-upstream route; fanned out,
    /// renamed and merged (with a merged cursor) on an aggregating one.
    async fn list(
        &self,
        route: &Route,
        ctx: &ClientCtx,
        kind: ListKind,
        method: &str,
        params: Option<Value>,
        sink: &Sink,
    ) -> Result<Value, Failure> {
        if !route.aggregates() {
            let up = self.upstream(&route.upstreams[0])?;
            let result = self.forward(&up, ctx, method, params, sink).await?;
            if kind == ListKind::Tools {
                self.remember_header_params(route, &result);
            }
            return Ok(result);
        }
        let cursor = params
            .as_ref()
            .and_then(|p| p.get("cursor"))
            .and_then(Value::as_str);
        // Which upstreams to ask, each with its own cursor.
        let targets: Vec<(UpstreamName, Option<String>)> = match cursor {
            None => route.upstreams.iter().map(|u| (u.clone(), None)).collect(),
            Some(c) => decode_cursor(c, method)
                .filter(|m| {
                    m.keys()
                        .all(|k| route.upstreams.iter().any(|u| u.as_str() == k))
                })
                .map(|m| {
                    route
                        .upstreams
                        .iter()
                        .filter_map(|u| m.get(u.as_str()).map(|c| (u.clone(), Some(c.clone()))))
                        .collect()
                })
                .ok_or_else(|| Failure::client(code::INVALID_PARAMS, "invalid cursor"))?,
        };
        let calls = targets.iter().map(|(name, cur)| {
            let mut p = params.clone().unwrap_or_else(|| json!({}));
            match cur {
                Some(c) => p["cursor"] = c.clone().into(),
                None => {
                    if let Some(o) = p.as_object_mut() {
                        o.remove("cursor");
                    }
                }
            }
            async move {
                let up = self.upstream(name)?;
                let live = up.live().await.map_err(Failure::upstream)?;
                if live.info.capabilities.get(kind.capability()).is_none() {
                    return Ok(None);
                }
                self.forward(&up, ctx, method, Some(p), sink)
                    .await
                    .map(Some)
            }
        });
        let results = futures_util::future::join_all(calls).await;

        let mut items = Vec::new();
        let mut next = Map::new();
        let mut first_err = None;
        let mut any_ok = false;
        // The merged result is fresh only as long as its stalest part, and
        // private if any part is (or did not say).
        let (mut ttl, mut private, mut unhinted) = (None, false, false);
        let state = self.state(route);
        let mut index = state.index.lock().expect("index lock");
        for ((name, _), result) in targets.iter().zip(results) {
            let result = match result {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(f) => {
                    tracing::warn!(route = %route.path, upstream = %name, error = %f.error, "{method} failed on one upstream; listing the others");
                    first_err.get_or_insert(f);
                    continue;
                }
            };
            any_ok = true;
            if let Some(t) = result.get("ttlMs").and_then(Value::as_u64) {
                ttl = Some(ttl.map_or(t, |m: u64| m.min(t)));
            }
            match result.get("cacheScope").and_then(Value::as_str) {
                Some("public") => {}
                Some(_) => private = true,
                None => unhinted = true,
            }
            if let Some(c) = result.get("nextCursor").and_then(Value::as_str) {
                next.insert(name.to_string(), c.into());
            }
            let Some(list) = result.get(kind.field()).and_then(Value::as_array) else {
                continue;
            };
            for item in list {
                let mut item = item.clone();
                match kind {
                    ListKind::Tools | ListKind::Prompts => {
                        let Some(original) = item.get("name").and_then(Value::as_str) else {
                            continue;
                        };
                        let exposed = expose(name, original);
                        let map = if kind == ListKind::Tools {
                            &mut index.tools
                        } else {
                            &mut index.prompts
                        };
                        map.insert(exposed.clone(), (name.clone(), original.to_owned()));
                        if kind == ListKind::Tools {
                            index
                                .header_params
                                .insert(exposed.clone(), header_params_of(&item));
                        }
                        item["name"] = exposed.into();
                    }
                    ListKind::Resources => {
                        // A URI listed by several upstreams belongs to the
                        // one that listed it first (in route order within a
                        // page), and is listed once, as that upstream's.
                        let Some(uri) = item.get("uri").and_then(Value::as_str) else {
                            continue;
                        };
                        let owner = index
                            .resources
                            .entry(uri.to_owned())
                            .or_insert_with(|| name.clone());
                        if owner != name {
                            continue;
                        }
                    }
                    ListKind::Templates => {
                        if let Some(t) = item.get("uriTemplate").and_then(Value::as_str) {
                            let prefix = t.split('{').next().unwrap_or(t).to_owned();
                            if !index.templates.iter().any(|(p, _)| p == &prefix) {
                                index.templates.push((prefix, name.clone()));
                            }
                        }
                    }
                }
                items.push(item);
            }
        }
        drop(index);
        if !any_ok && let Some(f) = first_err {
            return Err(f);
        }
        let mut out = Map::new();
        out.insert(kind.field().into(), Value::Array(items));
        if !next.is_empty() {
            out.insert("nextCursor".into(), encode_cursor(method, next).into());
        }
        if let Some(t) = ttl {
            out.insert("ttlMs".into(), if unhinted { 0 } else { t }.into());
            let scope = if private || unhinted {
                "private"
            } else {
                "public"
            };
            out.insert("cacheScope".into(), scope.into());
        }
        Ok(Value::Object(out))
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

/// Unions upstream capabilities: a feature is present if any upstream has
/// it; `listChanged` / `subscribe` are true if any upstream's is.
fn merge_capabilities(into: &mut Map<String, Value>, caps: &Value) {
    let Some(caps) = caps.as_object() else { return };
    for (k, v) in caps {
        let slot = into.entry(k.clone()).or_insert_with(|| json!({}));
        if let (Some(slot), Some(v)) = (slot.as_object_mut(), v.as_object()) {
            for (flag, val) in v {
                let merged = match (slot.get(flag), val) {
                    (Some(Value::Bool(a)), Value::Bool(b)) => Value::Bool(*a || *b),
                    (Some(existing), _) if !existing.is_null() => continue,
                    _ => val.clone(),
                };
                slot.insert(flag.clone(), merged);
            }
        }
    }
}

/// The aggregated name of `name` from `upstream`: `{upstream}__{name}`,
/// cleaned to `[A-Za-z0-9_.-]` and at most 128 characters; when cleaning or
/// shortening was needed, a hash of the original keeps names distinct.
pub fn expose(upstream: &UpstreamName, name: &str) -> String {
    let prefix = format!("{upstream}{SEPARATOR}");
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    if name.chars().all(valid) && !name.is_empty() && prefix.len() + name.len() <= MAX_NAME {
        return prefix + name;
    }
    let clean: String = name
        .chars()
        .map(|c| if valid(c) { c } else { '_' })
        .collect();
    let hash = format!("{:08x}", fnv1a(name.as_bytes()) as u32);
    let room = MAX_NAME - prefix.len() - hash.len() - 1;
    let clean: String = clean.chars().take(room).collect();
    format!("{prefix}{clean}_{hash}")
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A merged cursor: which upstreams have more, each with its own cursor,
/// bound to the list method it came from.
fn encode_cursor(method: &str, next: Map<String, Value>) -> String {
    let v = json!({"m": method, "c": next});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

fn decode_cursor(cursor: &str, method: &str) -> Option<HashMap<String, String>> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    if v.get("m")?.as_str()? != method {
        return None;
    }
    v.get("c")?
        .as_object()?
        .iter()
        .map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(s: &str) -> UpstreamName {
        UpstreamName::parse(s).unwrap()
    }

    #[test]
    fn exposed_names_are_valid_and_distinct() {
        assert_eq!(expose(&up("gh"), "create_issue"), "gh__create_issue");
        let a = expose(&up("gh"), "create issue");
        let b = expose(&up("gh"), "create/issue");
        assert_ne!(a, b);
        let long = "x".repeat(200);
        for n in [a, b, expose(&up("gh"), &long)] {
            assert!(n.len() <= MAX_NAME && n.starts_with("gh__"), "{n}");
            assert!(
                n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)),
                "{n}"
            );
        }
    }

    #[test]
    fn cursors_round_trip_and_bind_to_their_method() {
        let mut m = Map::new();
        m.insert("a".into(), "c1".into());
        let c = encode_cursor("tools/list", m);
        assert_eq!(decode_cursor(&c, "tools/list").unwrap()["a"], "c1");
        assert!(decode_cursor(&c, "prompts/list").is_none());
        assert!(decode_cursor("garbage!", "tools/list").is_none());
    }

    #[test]
    fn capabilities_union() {
        let mut m = Map::new();
        merge_capabilities(&mut m, &json!({"tools": {"listChanged": false}}));
        merge_capabilities(
            &mut m,
            &json!({"tools": {"listChanged": true}, "resources": {"subscribe": true}}),
        );
        assert_eq!(
            Value::Object(m),
            json!({"tools": {"listChanged": true}, "resources": {"subscribe": true}})
        );
    }
}
