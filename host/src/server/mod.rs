//! The HTTP edge (axum): both protocol eras on every route path, the old
//! HTTP+SSE transport beside them, SSE streaming, and the one place errors
//! become HTTP replies.
//!
//! The principal types:
//!
//! - [`ServerState`]: what every handler shares (the [`Gateway`], legacy
//!   [`Sessions`], the server settings, the shutdown token);
//! - [`router`]: the axum `Router` for a state, testable on its own;
//! - [`session::Session`]: a legacy client session and its resumable streams;
//! - `ws`: `GET {path}/ws`, MCP over WebSocket (one legacy session a socket).
//!
//! A POST is classified once: a request whose `params._meta` names a
//! protocol version is **modern** (stateless; headers validated against the
//! body); `initialize` starts a **legacy** session; anything else must carry
//! a known `Mcp-Session-Id`. The reply is plain JSON unless the upstream sends
//! notifications or server requests before its result, in which case the
//! request's own response becomes an SSE stream: events in order, result last.

mod edge;
pub mod session;
pub mod spin;
pub(crate) mod ws;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_util::sync::CancellationToken;

use crate::config::{OriginPolicy, ServerConfig};
use crate::mcp::{self, Era, Message, RpcError, code, meta};
use crate::pipeline::{ClientCtx, ClientEvent, Failure, Gateway, Inbound};
use crate::route::Route;
use crate::upstream;

pub use edge::error_reply;
use session::{STANDALONE, Session, Sessions, SseEvent};

pub(crate) const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
const LAST_EVENT_ID: &str = "last-event-id";

/// What every handler shares.
pub struct ServerState {
    pub gateway: Arc<Gateway>,
    pub sessions: Arc<Sessions>,
    /// Recent modern callers (for the console).
    pub callers: Arc<session::Callers>,
    pub settings: ServerConfig,
    /// Serve `GET /metrics`.
    pub metrics: bool,
    /// The address actually bound (the port may have been 0).
    pub local: SocketAddr,
    /// Fires at shutdown: long-lived streams end so that draining can finish.
    pub stop: CancellationToken,
    next_client: AtomicU64,
}

impl ServerState {
    pub fn new(
        gateway: Arc<Gateway>,
        settings: ServerConfig,
        metrics: bool,
        local: SocketAddr,
        stop: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(Self {
            gateway,
            sessions: Arc::new(Sessions::default()),
            callers: Arc::default(),
            settings,
            metrics,
            local,
            stop,
            next_client: AtomicU64::new(1),
        })
    }

    /// A fresh client key (never 0, which is the gateway's own).
    fn client_key(&self) -> u64 {
        self.next_client.fetch_add(1, Ordering::Relaxed)
    }
}

/// The gateway's HTTP surface: every route path (POST/GET/DELETE), its
/// `/sse` + `/messages` pair, and `/healthz`.
pub fn router(state: Arc<ServerState>) -> Router {
    // Route paths are looked up per request (the table changes with the
    // configuration), so they are served by the fallback.
    let mut app = Router::new()
        .route("/healthz", get(healthz))
        .route("/.well-known/{*rest}", get(well_known));
    if state.metrics {
        app = app.route("/metrics", get(metrics));
    }
    let app = app.fallback(route_endpoints);
    // Layers, outermost first:
    // - DNS-rebinding protection (Origin and, on loopback, Host) runs before
    //   anything reads the body, so a hostile page learns nothing.
    app.layer(middleware::from_fn_with_state(
        Arc::clone(&state),
        check_origin_and_host,
    ))
    .with_state(state)
}

async fn healthz(State(st): State<Arc<ServerState>>) -> Response {
    let upstreams = st.gateway.upstreams().reports();
    axum::Json(json!({"status": "ok", "sessions": st.sessions.len(), "upstreams": upstreams}))
        .into_response()
}

/// `GET /metrics`: Prometheus text exposition (see [`crate::telemetry`]).
async fn metrics(State(st): State<Arc<ServerState>>) -> Response {
    let text = crate::telemetry::render(&st.gateway.upstreams().reports());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// `GET /.well-known/{name}{route}`: a document a plugin on the route
/// serves (the auth plugin's OAuth protected-resource metadata). An object
/// without `resource` gets the route's URL as the client reached it.
async fn well_known(
    State(st): State<Arc<ServerState>>,
    axum::extract::Path(rest): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some((name, path)) = rest.split_once('/') else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let path = format!("/{path}");
    let Some(route) = st.gateway.route(&path) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Some(mut doc) = st.gateway.well_known(&route, name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if let Some(obj) = doc.as_object_mut()
        && !obj.contains_key("resource")
    {
        let host = header_str(&headers, "host")
            .map(str::to_owned)
            .unwrap_or_else(|| st.local.to_string());
        let scheme = if st.settings.tls.is_some() {
            "https"
        } else {
            "http"
        };
        obj.insert("resource".into(), format!("{scheme}://{host}{path}").into());
    }
    axum::Json(doc).into_response()
}

/// 403 unless the `Origin` (when sent) is allowed and, when bound to
/// loopback, the `Host` names a loopback or allowed host.
async fn check_origin_and_host(
    State(st): State<Arc<ServerState>>,
    mut req: Request,
    next: Next,
) -> Response {
    // HTTP/2 carries the host in `:authority`: give it the `Host` header
    // of HTTP/1.1, which this check and plugins read. Over TLS, say so in
    // `X-Forwarded-Proto` (what a TLS edge in front would have said).
    if !req.headers().contains_key(header::HOST)
        && let Some(host) = req.uri().authority().and_then(|a| a.as_str().parse().ok())
    {
        req.headers_mut().insert(header::HOST, host);
    }
    if st.settings.tls.is_some() {
        req.headers_mut().insert(
            axum::http::HeaderName::from_static("x-forwarded-proto"),
            axum::http::HeaderValue::from_static("https"),
        );
    }
    let loopback = st.local.ip().is_loopback();
    let headers = req.headers();
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("").to_ascii_lowercase();
        let allowed = match &st.settings.allowed_origins {
            OriginPolicy::Any => true,
            OriginPolicy::List(list) => {
                list.contains(&origin) || (loopback && is_loopback_origin(&origin))
            }
        };
        if !allowed {
            tracing::warn!(%origin, "request from a disallowed origin refused");
            return edge::forbidden(format!("origin {origin} is not allowed"));
        }
    }
    if loopback {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let name = host_name(&host);
        let allowed = matches!(name, "localhost" | "127.0.0.1" | "[::1]")
            || st.settings.allowed_hosts.iter().any(|h| h == name);
        if !allowed {
            tracing::warn!(%host, "request with a non-loopback Host refused (DNS-rebinding protection)");
            return edge::forbidden(format!("host {host} is not allowed"));
        }
    }
    next.run(req).await
}

/// The host part of a `Host` header (`[::1]:8080` → `[::1]`).
fn host_name(host: &str) -> &str {
    if host.starts_with('[') {
        host.split_inclusive(']').next().unwrap_or(host)
    } else {
        host.split(':').next().unwrap_or(host)
    }
}

fn is_loopback_origin(origin: &str) -> bool {
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https")
        && matches!(host_name(rest), "localhost" | "127.0.0.1" | "[::1]")
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Marks a request that `switchyard stdio` made from a line of its stdin:
/// there are no HTTP headers, so the modern era's header mirroring of the
/// body is not checked (there is nothing it could disagree with).
#[derive(Clone, Copy, Debug)]
pub struct FromStdio;

/// Every route path's endpoints: `{path}` (POST, GET, DELETE), and the
/// HTTP+SSE pair `{path}/sse` (GET) and `{path}/messages` (POST). The
/// request's route goes in its extensions for the handler.
async fn route_endpoints(State(st): State<Arc<ServerState>>, mut req: Request) -> Response {
    use axum::handler::Handler;
    enum Endpoint {
        Mcp,
        Sse,
        Messages,
        Ws,
    }
    let path = req.uri().path();
    let found = st
        .gateway
        .route(path)
        .map(|r| (r, Endpoint::Mcp))
        .or_else(|| {
            let r = st.gateway.route(path.strip_suffix("/sse")?)?;
            Some((r, Endpoint::Sse))
        })
        .or_else(|| {
            let r = st.gateway.route(path.strip_suffix("/messages")?)?;
            Some((r, Endpoint::Messages))
        })
        .or_else(|| {
            let r = st.gateway.route(path.strip_suffix("/ws")?)?;
            Some((r, Endpoint::Ws))
        });
    let Some((route, endpoint)) = found else {
        return StatusCode::NOT_FOUND.into_response();
    };
    req.extensions_mut().insert(route);
    let method = req.method().clone();
    match (endpoint, method) {
        (Endpoint::Mcp, Method::POST) => post_mcp.call(req, st).await,
        (Endpoint::Mcp, Method::GET) => get_mcp.call(req, st).await,
        (Endpoint::Mcp, Method::DELETE) => delete_mcp.call(req, st).await,
        (Endpoint::Mcp, _) => {
            edge::method_not_allowed(&[Method::GET, Method::POST, Method::DELETE])
        }
        (Endpoint::Sse, Method::GET) => old_sse_connect.call(req, st).await,
        (Endpoint::Sse, _) => edge::method_not_allowed(&[Method::GET]),
        (Endpoint::Messages, Method::POST) => old_sse_message.call(req, st).await,
        (Endpoint::Messages, _) => edge::method_not_allowed(&[Method::POST]),
        (Endpoint::Ws, Method::GET) => ws_connect.call(req, st).await,
        (Endpoint::Ws, _) => edge::method_not_allowed(&[Method::GET]),
    }
}

/// `GET {path}/ws`: MCP over WebSocket (see [`ws`]).
async fn ws_connect(
    State(st): State<Arc<ServerState>>,
    axum::Extension(route): axum::Extension<Arc<Route>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    client_cert: Option<axum::Extension<crate::tls::ClientCert>>,
    headers: HeaderMap,
    upgrade: axum::extract::ws::WebSocketUpgrade,
) -> Response {
    let inbound = Inbound {
        headers,
        peer: Some(peer),
        client_cert: client_cert.map(|c| c.0.0),
    };
    ws::connect(st, route, inbound, upgrade).await
}

/// Reads the body up to the configured limit: 413 beyond it.
async fn read_body(st: &ServerState, body: Body) -> Result<bytes::Bytes, Response> {
    axum::body::to_bytes(body, st.settings.max_body_bytes)
        .await
        .map_err(|_| {
            edge::reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                mcp::response(
                    Value::Null,
                    Err(RpcError::new(
                        code::INVALID_REQUEST,
                        format!(
                            "the request body exceeds the limit of {} bytes",
                            st.settings.max_body_bytes
                        ),
                    )),
                ),
            )
        })
}

/// Parses a body into one JSON-RPC message; on failure, the id (when one
/// could be read) and the `-32700` / `-32600` error.
fn parse_message(bytes: &[u8]) -> Result<Message, (Value, RpcError)> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        (
            Value::Null,
            RpcError::new(code::PARSE_ERROR, format!("parse error: {e}")),
        )
    })?;
    let id = value.get("id").cloned().unwrap_or(Value::Null);
    Message::from_value(value).map_err(|e| (id, e))
}

async fn post_mcp(State(st): State<Arc<ServerState>>, request: Request) -> Response {
    // Taken apart by hand: the `HeaderMap` extractor would clone every header.
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let client_cert = parts
        .extensions
        .get::<crate::tls::ClientCert>()
        .map(|c| Arc::clone(&c.0));
    let Some(route) = parts.extensions.get::<Arc<Route>>().cloned() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let bytes = match read_body(&st, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let msg = match parse_message(&bytes) {
        Ok(m) => m,
        Err((id, e)) => return edge::bad_request(id, e),
    };
    let msg = match msg {
        Message::Request { id, method, params } if is_modern(&headers, params.as_ref()) => {
            let from_stdio = parts.extensions.get::<FromStdio>().is_some();
            let inbound = Inbound {
                headers,
                peer,
                client_cert,
            };
            return modern_request(&st, route, inbound, from_stdio, id, &method, params).await;
        }
        other => other,
    };
    let session_id = header_str(&headers, SESSION_HEADER);
    if let Message::Request { id, method, params } = &msg
        && method == "initialize"
    {
        let inbound = Arc::new(Inbound {
            headers,
            peer,
            client_cert: client_cert.clone(),
        });
        return initialize(&st, &route, id.clone(), params.as_ref(), None, inbound).await;
    }
    let Some(session_id) = session_id else {
        return match msg {
            Message::Request { id, .. } => edge::bad_request(
                id,
                RpcError::new(
                    code::INVALID_REQUEST,
                    format!(
                        "no session: send `initialize` first, or send a {} request with `_meta` (`{}`)",
                        mcp::MODERN_VERSION,
                        meta::PROTOCOL_VERSION
                    ),
                ),
            ),
            // Modern clients have nothing to notify over HTTP; accept and ignore.
            _ => StatusCode::ACCEPTED.into_response(),
        };
    };
    let Some(session) = st.sessions.get(session_id, route.path.as_str()) else {
        return edge::session_not_found(msg_id(&msg));
    };
    if let Some(v) = header_str(&headers, VERSION_HEADER)
        && !mcp::LEGACY_VERSIONS.contains(&v)
    {
        return edge::bad_request(
            msg_id(&msg),
            RpcError::new(
                code::INVALID_REQUEST,
                format!("unsupported MCP-Protocol-Version: {v}"),
            )
            .with_data(json!({"supported": mcp::LEGACY_VERSIONS})),
        );
    }
    let inbound = Arc::new(Inbound {
        headers,
        peer,
        client_cert: client_cert.clone(),
    });
    session_message(&st, route, session, msg, Target::Legacy, inbound).await
}

fn msg_id(msg: &Message) -> Value {
    match msg {
        Message::Request { id, .. } | Message::Response { id, .. } => id.clone(),
        Message::Notification { .. } => Value::Null,
    }
}

/// Where a request's events and result go.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    /// The POST's own response, cancelled when the client goes away.
    Modern,
    /// The POST's own response, resumable, not cancelled by a disconnect.
    Legacy,
    /// The session's one SSE stream (HTTP+SSE transport); the POST gets 202.
    OldSse,
}

/// Handles a message within a legacy session.
async fn session_message(
    st: &Arc<ServerState>,
    route: Arc<Route>,
    session: Arc<Session>,
    msg: Message,
    target: Target,
    inbound: Arc<Inbound>,
) -> Response {
    match msg {
        Message::Request { id, method, params } => {
            if method == "initialize" {
                return initialize(st, &route, id, params.as_ref(), Some(&session), inbound).await;
            }
            let ctx = ClientCtx {
                inbound: Some(inbound),
                ..session.ctx()
            };
            exchange(st, route, ctx, id, method, params, target, Some(session)).await
        }
        Message::Notification { method, params } => {
            if method == "notifications/cancelled"
                && let Some(rid) = params.as_ref().and_then(|p| p.get("requestId"))
            {
                session.cancel(rid);
            }
            StatusCode::ACCEPTED.into_response()
        }
        Message::Response { id, result } => {
            match session.take_server_request(&id) {
                Some(reply) => reply.send(result),
                None => {
                    tracing::debug!(session = %session.id, %id, "response to no pending server request")
                }
            }
            StatusCode::ACCEPTED.into_response()
        }
    }
}

/// `initialize`: starts a legacy session (or, on HTTP+SSE, fills in the one
/// created at connect) and answers with the route's merged description.
async fn initialize(
    st: &Arc<ServerState>,
    route: &Arc<Route>,
    id: Value,
    params: Option<&Value>,
    existing: Option<&Arc<Session>>,
    inbound: Arc<Inbound>,
) -> Response {
    let requested = params
        .and_then(|p| p.get("protocolVersion"))
        .and_then(Value::as_str)
        .unwrap_or(mcp::LATEST_LEGACY);
    let version = if mcp::LEGACY_VERSIONS.contains(&requested) {
        requested
    } else {
        mcp::LATEST_LEGACY
    };
    let ctx = ClientCtx {
        client: st.client_key(),
        era: Era::Legacy,
        protocol_version: version.to_owned(),
        capabilities: params
            .and_then(|p| p.get("capabilities"))
            .cloned()
            .unwrap_or(json!({})),
        log_level: None,
        binding: None,
        principal: None,
        inbound: Some(inbound),
    };
    // Plugins see `initialize` too: an auth plugin refuses it, with its
    // 401 and `WWW-Authenticate`, before a session exists.
    if let Err(f) = st.gateway.admit(route, &ctx, "initialize", params).await {
        return error_reply(id, f.error, f.side, Era::Legacy, f.http_status, &f.headers);
    }
    let ctx = ClientCtx {
        inbound: None,
        ..ctx
    };
    let description = st.gateway.describe(route).await;
    let mut result = json!({
        "protocolVersion": version,
        "capabilities": description.capabilities,
        "serverInfo": upstream::gateway_info(),
    });
    if let Some(i) = description.instructions {
        result["instructions"] = i.into();
    }
    if let Some(session) = existing {
        if session.old_sse {
            *session.ctx.lock().expect("ctx lock") = ctx;
            session.push(
                STANDALONE,
                Some("message"),
                mcp::response(id, Ok(result)).to_string(),
            );
            return StatusCode::ACCEPTED.into_response();
        }
        return edge::bad_request(
            id,
            RpcError::new(code::INVALID_REQUEST, "this session is already initialized"),
        );
    }
    let session = st.sessions.create(route.path.as_str(), ctx, false);
    spawn_change_forwarder(st, route, &session);
    tracing::debug!(session = %session.id, route = %route.path, version, "legacy session started");
    let mut resp = edge::reply(StatusCode::OK, mcp::response(id, Ok(result)));
    resp.headers_mut().insert(
        SESSION_HEADER,
        session.id.parse().expect("session ids are header-safe"),
    );
    resp
}

/// Feeds a session's standalone stream with the route's change notifications
/// (`resources/updated` only for URIs the session subscribed to).
fn spawn_change_forwarder(st: &Arc<ServerState>, route: &Route, session: &Arc<Session>) {
    let mut changes = st.gateway.subscribe_changes(route);
    let session = Arc::clone(session);
    tokio::spawn(async move {
        loop {
            let msg = tokio::select! {
                _ = session.closed.cancelled() => break,
                msg = changes.recv() => msg,
            };
            match msg {
                Ok(msg) => {
                    let method = msg.get("method").and_then(Value::as_str).unwrap_or("");
                    if method == "notifications/subscriptions/acknowledged" {
                        continue;
                    }
                    if method == "notifications/resources/updated" {
                        let uri = msg["params"]["uri"].as_str().unwrap_or("");
                        if !session
                            .subscriptions
                            .lock()
                            .expect("subs lock")
                            .contains(uri)
                        {
                            continue;
                        }
                    }
                    let mut msg = msg;
                    strip_subscription_id(&mut msg);
                    session.push(STANDALONE, Some("message"), msg.to_string());
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    });
}

/// Removes a modern upstream's subscription tag before a notification is
/// re-sent to a client (which gets its own tag, or none).
fn strip_subscription_id(msg: &mut Value) {
    if let Some(m) = msg
        .get_mut("params")
        .and_then(|p| p.get_mut("_meta"))
        .and_then(Value::as_object_mut)
    {
        m.remove(meta::SUBSCRIPTION_ID);
    }
}

/// Whether a request is of the modern era: its `_meta` carries modern keys,
/// or its `MCP-Protocol-Version` header names the modern revision.
fn is_modern(headers: &HeaderMap, params: Option<&Value>) -> bool {
    mcp::params_meta(params).is_some_and(|m| {
        m.contains_key(meta::PROTOCOL_VERSION) || m.contains_key(meta::CLIENT_CAPABILITIES)
    }) || header_str(headers, VERSION_HEADER) == Some(mcp::MODERN_VERSION)
}

/// Methods of the legacy era that the modern one removed: a modern request
/// for them is answered 404 / -32601, whatever the upstreams support.
const REMOVED_IN_MODERN: [&str; 5] = [
    "initialize",
    "ping",
    "logging/setLevel",
    "resources/subscribe",
    "resources/unsubscribe",
];

/// A modern (stateless) request: validate `_meta`, version and headers,
/// then serve.
#[allow(clippy::too_many_arguments)]
async fn modern_request(
    st: &Arc<ServerState>,
    route: Arc<Route>,
    inbound: Inbound,
    from_stdio: bool,
    id: Value,
    method: &str,
    params: Option<Value>,
) -> Response {
    let meta_map = mcp::params_meta(params.as_ref());
    let Some(version) = meta_map
        .and_then(|m| m.get(meta::PROTOCOL_VERSION))
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return edge::bad_request(
            id,
            RpcError::new(
                code::INVALID_PARAMS,
                format!(
                    "a {} request needs `_meta` `{}`",
                    mcp::MODERN_VERSION,
                    meta::PROTOCOL_VERSION
                ),
            ),
        );
    };
    if !meta_map.is_some_and(|m| {
        m.get(meta::CLIENT_CAPABILITIES)
            .is_some_and(Value::is_object)
    }) {
        return edge::bad_request(
            id,
            RpcError::new(
                code::INVALID_PARAMS,
                format!(
                    "a {} request needs `_meta` `{}` (an object)",
                    mcp::MODERN_VERSION,
                    meta::CLIENT_CAPABILITIES
                ),
            ),
        );
    }
    // Over stdio there are no HTTP headers to mirror the body.
    if !from_stdio
        && let Err(e) =
            edge::validate_modern_headers(&inbound.headers, method, params.as_ref(), &version)
    {
        return edge::bad_request(id, e);
    }
    if version != mcp::MODERN_VERSION {
        return edge::bad_request(
            id,
            RpcError::new(
                code::UNSUPPORTED_VERSION,
                format!("unsupported protocol version {version}"),
            )
            .with_data(json!({"requested": version, "supported": mcp::supported_versions()})),
        );
    }
    if method == "tools/call"
        && !from_stdio
        && let Some(name) = mcp::target_name(method, params.as_ref())
    {
        let declared = st.gateway.header_params(&route, name).await;
        let arguments = params.as_ref().and_then(|p| p.get("arguments"));
        if let Err(e) = edge::validate_param_headers(&inbound.headers, &declared, arguments) {
            return edge::bad_request(id, e);
        }
    }
    if REMOVED_IN_MODERN.contains(&method) {
        return edge::error_reply(
            id,
            RpcError::new(
                code::METHOD_NOT_FOUND,
                format!(
                    "{method} does not exist in protocol version {}",
                    mcp::MODERN_VERSION
                ),
            ),
            crate::pipeline::Side::Client,
            Era::Modern,
            None,
            &[],
        );
    }
    let capabilities = mcp::params_meta(params.as_ref())
        .and_then(|m| m.get(meta::CLIENT_CAPABILITIES))
        .cloned()
        .unwrap_or(json!({}));
    let log_level = mcp::params_meta(params.as_ref())
        .and_then(|m| m.get(meta::LOG_LEVEL))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let principal = inbound.headers.get(header::AUTHORIZATION).map(|v| {
        use sha2::Digest;
        let hash = sha2::Sha256::digest(v.as_bytes());
        hash.iter().map(|b| format!("{b:02x}")).collect::<String>()
    });
    st.callers.record(route.path.as_str(), principal.as_deref());
    let ctx = ClientCtx {
        client: st.client_key(),
        era: Era::Modern,
        protocol_version: version,
        capabilities,
        log_level,
        binding: None,
        principal,
        inbound: Some(Arc::new(inbound)),
    };
    if method == "subscriptions/listen" {
        return listen(st, route, ctx, id, params).await;
    }
    exchange(
        st,
        route,
        ctx,
        id,
        method.to_owned(),
        params,
        Target::Modern,
        None,
    )
    .await
}

/// The pipeline work of one request, boxed so that it can move from the
/// HTTP handler into a task of its own when the reply becomes a stream.
type Work = Pin<Box<dyn Future<Output = Result<Value, Failure>> + Send>>;

/// A request whose pipeline work is running.
struct Running {
    /// `None` once the work has finished or was handed to a task.
    work: Option<Work>,
    events: mpsc::UnboundedReceiver<ClientEvent>,
    id: Value,
    target: Target,
    session: Option<Arc<Session>>,
    /// Fires on the client's `notifications/cancelled` (legacy).
    cancel: CancellationToken,
    /// For `resources/(un)subscribe`: the session's subscription to update.
    track_uri: Option<(String, bool)>,
    /// The session stream a legacy reply is on, once it is a stream.
    sid: Option<u64>,
}

/// How the first wait of a request ended.
enum First {
    Done(Result<Value, Failure>),
    Event(ClientEvent),
    Cancelled,
}

impl Running {
    /// Waits for the result or the first event, whichever comes first
    /// (events first: they must precede the result on the wire).
    async fn first(&mut self) -> First {
        let work = self.work.as_mut().expect("work is running");
        tokio::select! {
            biased;
            ev = self.events.recv() => First::Event(ev.expect("the sink lives as long as the work")),
            r = work => {
                self.work = None;
                First::Done(r)
            }
            _ = self.cancel.cancelled() => {
                self.work = None;
                First::Cancelled
            }
        }
    }

    /// Bookkeeping once the request is over (`None`: cancelled).
    fn settle(&self, outcome: Option<&Result<Value, Failure>>) {
        settle(
            self.session.as_deref(),
            &self.id,
            self.track_uri.as_ref(),
            outcome,
        );
    }
}

fn settle(
    session: Option<&Session>,
    id: &Value,
    track_uri: Option<&(String, bool)>,
    outcome: Option<&Result<Value, Failure>>,
) {
    let Some(s) = session else { return };
    if let (Some(Ok(_)), Some((uri, add))) = (outcome, track_uri) {
        let mut subs = s.subscriptions.lock().expect("subs lock");
        if *add {
            subs.insert(uri.clone());
        } else {
            subs.remove(uri);
        }
    }
    s.untrack(id);
}

impl Drop for Running {
    /// The handler was dropped while the work still ran: the client went
    /// away before its reply. A modern request is cancelled by that (dropping
    /// the work cancels the upstream call); a legacy one is not (the spec
    /// says a disconnect is no cancellation), so it finishes in a task.
    fn drop(&mut self) {
        let Some(work) = self.work.take() else { return };
        if self.target == Target::Modern {
            return;
        }
        let (session, id, track, cancel) = (
            self.session.clone(),
            self.id.clone(),
            self.track_uri.take(),
            self.cancel.clone(),
        );
        let mut events = std::mem::replace(&mut self.events, mpsc::unbounded_channel().1);
        tokio::spawn(async move {
            tokio::pin!(work);
            let outcome = loop {
                tokio::select! {
                    r = &mut work => break Some(r),
                    _ = cancel.cancelled() => break None,
                    Some(ev) = events.recv() => {
                        if let ClientEvent::ServerRequest { reply, .. } = ev {
                            reply.send(Err(RpcError::new(code::INTERNAL_ERROR, "the client went away")));
                        }
                    }
                }
            };
            settle(session.as_deref(), &id, track.as_ref(), outcome.as_ref());
        });
    }
}

/// Runs one request through the pipeline and shapes the reply (see the
/// module docs). The work runs in the handler until the result or the first
/// event; only a reply that becomes a stream moves it to a task of its own.
#[allow(clippy::too_many_arguments)]
async fn exchange(
    st: &Arc<ServerState>,
    route: Arc<Route>,
    ctx: ClientCtx,
    id: Value,
    method: String,
    params: Option<Value>,
    target: Target,
    session: Option<Arc<Session>>,
) -> Response {
    let era = ctx.era;
    let gateway = Arc::clone(&st.gateway);
    let cancel = match &session {
        Some(s) => s.track(&id),
        None => CancellationToken::new(),
    };
    let (sink, events) = mpsc::unbounded_channel();
    let track_uri = subscription_change(&method, params.as_ref());
    let work: Work =
        Box::pin(async move { gateway.handle(&route, &ctx, &method, params, &sink).await });
    let mut run = Running {
        work: Some(work),
        events,
        id,
        target,
        session,
        cancel,
        track_uri,
        sid: None,
    };
    if target == Target::OldSse {
        // HTTP+SSE: everything goes on the session's stream; the POST is
        // only acknowledged.
        tokio::spawn(stream_rest(run, None));
        return StatusCode::ACCEPTED.into_response();
    }
    match run.first().await {
        First::Done(result) => {
            run.settle(Some(&result));
            match result {
                Ok(v) => edge::reply(StatusCode::OK, mcp::response(run.id.clone(), Ok(v))),
                Err(f) => error_reply(
                    run.id.clone(),
                    f.error,
                    f.side,
                    era,
                    f.http_status,
                    &f.headers,
                ),
            }
        }
        First::Cancelled => {
            run.settle(None);
            StatusCode::ACCEPTED.into_response()
        }
        First::Event(ev) => {
            let rx = match target {
                Target::Legacy => {
                    let s = run
                        .session
                        .as_ref()
                        .expect("legacy requests have a session");
                    let (sid, rx) = s.open_stream();
                    run.sid = Some(sid);
                    rx
                }
                _ => {
                    let (tx, rx) = mpsc::unbounded_channel();
                    let gone = CancellationToken::new();
                    let guard = gone.clone().drop_guard();
                    run_modern_stream(run, ev, tx, gone);
                    let events = UnboundedReceiverStream::new(rx).map(move |ev| {
                        let _held = &guard;
                        ev
                    });
                    return sse_response(events, None);
                }
            };
            tokio::spawn(stream_rest(run, Some(ev)));
            sse_response(UnboundedReceiverStream::new(rx), None)
        }
    }
}

/// A modern request's stream: events then the result, on a channel whose
/// receiver is the response body; the client closing it (`gone`) cancels.
fn run_modern_stream(
    mut run: Running,
    first: ClientEvent,
    tx: mpsc::UnboundedSender<SseEvent>,
    gone: CancellationToken,
) {
    tokio::spawn(async move {
        let send = |data: String| {
            let _ = tx.send(SseEvent {
                id: None,
                event: Some("message"),
                data,
            });
        };
        send(client_event_json(first, None));
        let Some(mut work) = run.work.take() else {
            return;
        };
        let result = loop {
            tokio::select! {
                biased;
                Some(ev) = run.events.recv() => send(client_event_json(ev, None)),
                r = &mut work => break r,
                _ = gone.cancelled() => return,
            }
        };
        while let Ok(ev) = run.events.try_recv() {
            send(client_event_json(ev, None));
        }
        send(final_json(run.id.clone(), result));
    });
}

/// The rest of a legacy request whose reply is a stream (its POST's own
/// stream, or the HTTP+SSE session stream): events as they come, then the
/// result; the log of the POST stream makes it resumable.
async fn stream_rest(mut run: Running, first: Option<ClientEvent>) {
    let session = run.session.clone().expect("legacy requests have a session");
    let sid = match run.target {
        Target::OldSse => STANDALONE,
        _ => run.sid.expect("the stream was opened"),
    };
    if let Some(ev) = first {
        session.push(sid, Some("message"), client_event_json(ev, Some(&session)));
    }
    let Some(mut work) = run.work.take() else {
        return;
    };
    let outcome = loop {
        tokio::select! {
            biased;
            Some(ev) = run.events.recv() => {
                session.push(sid, Some("message"), client_event_json(ev, Some(&session)));
            }
            r = &mut work => break Some(r),
            _ = run.cancel.cancelled() => break None,
        }
    };
    run.settle(outcome.as_ref());
    if let Some(result) = outcome {
        while let Ok(ev) = run.events.try_recv() {
            session.push(sid, Some("message"), client_event_json(ev, Some(&session)));
        }
        session.push(sid, Some("message"), final_json(run.id.clone(), result));
    }
    if sid != STANDALONE {
        session.finish(sid);
    }
}

/// For `resources/subscribe` / `unsubscribe`: the URI and whether it is added.
fn subscription_change(method: &str, params: Option<&Value>) -> Option<(String, bool)> {
    let add = match method {
        "resources/subscribe" => true,
        "resources/unsubscribe" => false,
        _ => return None,
    };
    Some((params?.get("uri")?.as_str()?.to_owned(), add))
}

/// A client event as the JSON text of a JSON-RPC message. Server requests
/// get an id from the session, which maps the client's answer back.
fn client_event_json(ev: ClientEvent, session: Option<&Session>) -> String {
    match ev {
        ClientEvent::Notification(n) => n.to_string(),
        ClientEvent::ServerRequest {
            method,
            params,
            reply,
        } => match session {
            Some(s) => mcp::request(s.register_server_request(reply), &method, params).to_string(),
            None => {
                reply.send(Err(RpcError::new(
                    code::INTERNAL_ERROR,
                    "no session to relay to",
                )));
                mcp::notification("notifications/message", Some(json!({"level": "warning", "data": format!("dropped server request {method}")}))).to_string()
            }
        },
    }
}

/// The JSON text of a request's final response on a stream.
fn final_json(id: Value, result: Result<Value, Failure>) -> String {
    mcp::response(id, result.map_err(|f| f.error)).to_string()
}

/// An SSE response from a stream of events, ending when the stream does (or
/// when `until` fires).
fn sse_response(
    events: impl futures_util::Stream<Item = SseEvent> + Send + 'static,
    until: Option<CancellationToken>,
) -> Response {
    let events = events.map(|ev| {
        let mut e = Event::default().data(ev.data);
        if let Some(id) = ev.id {
            e = e.id(id);
        }
        if let Some(name) = ev.event {
            e = e.event(name);
        }
        Ok::<_, Infallible>(e)
    });
    match until {
        Some(token) => Sse::new(events.take_until(token.cancelled_owned()))
            .keep_alive(KeepAlive::default())
            .into_response(),
        None => Sse::new(events).into_response(),
    }
}

/// `subscriptions/listen`: a long-lived stream of the opted-in change
/// notifications, each tagged with the listen request's id.
async fn listen(
    st: &Arc<ServerState>,
    route: Arc<Route>,
    ctx: ClientCtx,
    id: Value,
    params: Option<Value>,
) -> Response {
    if let Err(f) = st
        .gateway
        .admit(&route, &ctx, "subscriptions/listen", params.as_ref())
        .await
    {
        return error_reply(id, f.error, f.side, Era::Modern, f.http_status, &f.headers);
    }
    let filter = params
        .as_ref()
        .and_then(|p| p.get("notifications"))
        .cloned()
        .unwrap_or(json!({}));
    let wants = |k: &str| filter.get(k).and_then(Value::as_bool).unwrap_or(false);
    let caps = st.gateway.describe(&route).await.capabilities;
    let has = |feature: &str| caps.get(feature).is_some();
    let mut honoured = serde_json::Map::new();
    for (flag, feature) in [
        ("toolsListChanged", "tools"),
        ("promptsListChanged", "prompts"),
        ("resourcesListChanged", "resources"),
    ] {
        if wants(flag) && has(feature) {
            honoured.insert(flag.into(), true.into());
        }
    }
    let mut uris: Vec<String> = Vec::new();
    if has("resources")
        && let Some(list) = filter
            .get("resourceSubscriptions")
            .and_then(Value::as_array)
    {
        let (sink, _) = mpsc::unbounded_channel();
        for uri in list.iter().filter_map(Value::as_str) {
            let p = Some(json!({"uri": uri}));
            if st
                .gateway
                .handle(&route, &ctx, "resources/subscribe", p, &sink)
                .await
                .is_ok()
            {
                uris.push(uri.to_owned());
            }
        }
        honoured.insert("resourceSubscriptions".into(), json!(uris));
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let tag_id = id.clone();
    let tag = move |mut msg: Value| {
        strip_subscription_id(&mut msg);
        if let Some(p) = msg.as_object_mut() {
            let params = p.entry("params").or_insert_with(|| json!({}));
            if let Some(params) = params.as_object_mut() {
                let m = params.entry("_meta").or_insert_with(|| json!({}));
                if let Some(m) = m.as_object_mut() {
                    m.insert(meta::SUBSCRIPTION_ID.into(), tag_id.clone());
                }
            }
        }
        SseEvent {
            id: None,
            event: Some("message"),
            data: msg.to_string(),
        }
    };
    let _ = tx.send(tag(mcp::notification(
        "notifications/subscriptions/acknowledged",
        Some(json!({"notifications": honoured})),
    )));
    let mut changes = st.gateway.subscribe_changes(&route);
    let gateway = Arc::clone(&st.gateway);
    let stop = st.stop.clone();
    let final_id = id.clone();
    tokio::spawn(async move {
        loop {
            let msg = tokio::select! {
                _ = tx.closed() => break,
                _ = stop.cancelled() => {
                    let done = json!({"resultType": "complete", "_meta": {}});
                    let _ = tx.send(SseEvent { id: None, event: Some("message"), data: mcp::response(final_id.clone(), Ok(done)).to_string() });
                    break;
                }
                msg = changes.recv() => msg,
            };
            let msg = match msg {
                Ok(m) => m,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            };
            let method = msg.get("method").and_then(Value::as_str).unwrap_or("");
            let send = match method {
                "notifications/tools/list_changed" => honoured.contains_key("toolsListChanged"),
                "notifications/prompts/list_changed" => honoured.contains_key("promptsListChanged"),
                "notifications/resources/list_changed" => {
                    honoured.contains_key("resourcesListChanged")
                }
                "notifications/resources/updated" => msg["params"]["uri"]
                    .as_str()
                    .is_some_and(|u| uris.iter().any(|x| x == u)),
                _ => false,
            };
            if send && tx.send(tag(msg)).is_err() {
                break;
            }
        }
        gateway.release(&route, &uris).await;
    });
    sse_response(UnboundedReceiverStream::new(rx), None)
}

/// GET on a route: a legacy session's standalone stream, or the resumption
/// of one of its streams with `Last-Event-ID`. Modern clients get 405.
async fn get_mcp(
    State(st): State<Arc<ServerState>>,
    axum::Extension(route): axum::Extension<Arc<Route>>,
    headers: HeaderMap,
) -> Response {
    let Some(sid) = header_str(&headers, SESSION_HEADER) else {
        return edge::method_not_allowed(&[Method::POST]);
    };
    let accepts_sse = header_str(&headers, header::ACCEPT.as_str())
        .is_some_and(|a| a.contains("text/event-stream") || a.contains("*/*"));
    if !accepts_sse {
        return edge::reply(
            StatusCode::NOT_ACCEPTABLE,
            mcp::response(
                Value::Null,
                Err(RpcError::new(
                    code::INVALID_REQUEST,
                    "the GET stream needs Accept: text/event-stream",
                )),
            ),
        );
    }
    let Some(session) = st.sessions.get(sid, route.path.as_str()) else {
        return edge::session_not_found(Value::Null);
    };
    let rx = match header_str(&headers, LAST_EVENT_ID) {
        Some(last) => match session.resume(last) {
            Some(rx) => rx,
            None => session.attach_standalone(),
        },
        None => session.attach_standalone(),
    };
    let until = session.closed.clone();
    let stop = st.stop.clone();
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = until.cancelled() => {}
            _ = stop.cancelled() => {}
        }
        t.cancel();
    });
    sse_response(UnboundedReceiverStream::new(rx), Some(token))
}

/// DELETE on a route: ends a legacy session.
async fn delete_mcp(
    State(st): State<Arc<ServerState>>,
    axum::Extension(route): axum::Extension<Arc<Route>>,
    headers: HeaderMap,
) -> Response {
    let Some(sid) = header_str(&headers, SESSION_HEADER) else {
        return edge::method_not_allowed(&[Method::POST]);
    };
    if st.sessions.get(sid, route.path.as_str()).is_none() {
        return edge::session_not_found(Value::Null);
    }
    if let Some(session) = st.sessions.remove(sid) {
        end_session(&st, &route, &session).await;
    }
    StatusCode::NO_CONTENT.into_response()
}

/// Ends legacy session `id` (as a client's DELETE would): its streams
/// close, its requests are cancelled, its subscriptions released. False
/// when there is no such session.
pub async fn close_session(st: &ServerState, id: &str) -> bool {
    let Some(session) = st.sessions.remove(id) else {
        return false;
    };
    if let Some(route) = st.gateway.route(&session.route) {
        end_session(st, &route, &session).await;
    }
    tracing::info!(session = %id, "legacy session ended by the operator");
    true
}

/// Releases what a session held upstream.
async fn end_session(st: &ServerState, route: &Route, session: &Session) {
    let uris: Vec<String> = session
        .subscriptions
        .lock()
        .expect("subs lock")
        .drain()
        .collect();
    st.gateway.release(route, &uris).await;
    tracing::debug!(session = %session.id, "legacy session ended");
}

/// Expires idle legacy sessions periodically until shutdown.
pub fn spawn_session_reaper(st: Arc<ServerState>) {
    tokio::spawn(async move {
        let every = (st.settings.session_idle_timeout / 4).max(std::time::Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = st.stop.cancelled() => break,
                _ = tokio::time::sleep(every) => {}
            }
            for s in st.sessions.expire(st.settings.session_idle_timeout) {
                if let Some(route) = st.gateway.route(&s.route) {
                    end_session(&st, &route, &s).await;
                }
            }
        }
    });
}

/// `GET {path}/sse` (HTTP+SSE transport, 2024-11-05): a session whose one
/// stream first announces where to POST.
async fn old_sse_connect(
    State(st): State<Arc<ServerState>>,
    axum::Extension(route): axum::Extension<Arc<Route>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    let ctx = ClientCtx {
        client: st.client_key(),
        era: Era::Legacy,
        protocol_version: "2024-11-05".into(),
        capabilities: json!({}),
        log_level: None,
        binding: None,
        principal: None,
        inbound: None,
    };
    let session = st.sessions.create(route.path.as_str(), ctx, true);
    tracing::debug!(session = %session.id, %peer, "HTTP+SSE session started");
    let rx = session.attach_standalone();
    session.push(
        STANDALONE,
        Some("endpoint"),
        format!("{}/messages?sessionId={}", route.path, session.id),
    );
    spawn_change_forwarder(&st, &route, &session);
    // The session lives as long as its stream: end it when the client goes.
    let token = CancellationToken::new();
    let t = token.clone();
    let (st2, s2, r2) = (Arc::clone(&st), Arc::clone(&session), Arc::clone(&route));
    let rx = UnboundedReceiverStream::new(rx);
    let guard = SessionGuard(Some((st2, s2, r2)));
    let events = rx.map(move |ev| {
        let _keep = &guard;
        ev
    });
    let stop = st.stop.clone();
    let closed = session.closed.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = closed.cancelled() => {}
        }
        t.cancel();
    });
    sse_response(events, Some(token))
}

/// Ends an HTTP+SSE session when its stream is dropped.
struct SessionGuard(Option<(Arc<ServerState>, Arc<Session>, Arc<Route>)>);

impl Drop for SessionGuard {
    fn drop(&mut self) {
        if let Some((st, session, route)) = self.0.take() {
            tokio::spawn(async move {
                st.sessions.remove(&session.id);
                end_session(&st, &route, &session).await;
            });
        }
    }
}

/// `POST {path}/messages?sessionId=…`: a message for an HTTP+SSE session;
/// the answer goes on its stream.
async fn old_sse_message(
    State(st): State<Arc<ServerState>>,
    axum::Extension(route): axum::Extension<Arc<Route>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    client_cert: Option<axum::Extension<crate::tls::ClientCert>>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(session_id) = query.get("sessionId") else {
        return edge::bad_request(
            Value::Null,
            RpcError::new(code::INVALID_REQUEST, "missing sessionId query parameter"),
        );
    };
    let Some(session) = st.sessions.get(session_id, route.path.as_str()) else {
        return edge::session_not_found(Value::Null);
    };
    let bytes = match read_body(&st, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let msg = match parse_message(&bytes) {
        Ok(m) => m,
        Err((id, e)) => return edge::bad_request(id, e),
    };
    let inbound = Arc::new(Inbound {
        headers,
        peer: Some(peer),
        client_cert: client_cert.map(|c| c.0.0),
    });
    session_message(&st, route, session, msg, Target::OldSse, inbound).await
}
