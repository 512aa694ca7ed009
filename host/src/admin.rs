//! The admin API: its own listener, off unless `[admin] token` is set.
//!
//! Every request passes two checks, in this order: the client address must
//! be inside `[admin] allow` (403), and `Authorization: Bearer TOKEN` must
//! match the token (401). Refusals are logged with the address, never the
//! token. The document at `GET /admin/openapi.json` (`admin/openapi.json`
//! in the source) describes every operation.
//!
//! What each operation does is decided in [`ops`], shared with the console
//! (`crate::console`, served on this listener at `/ui/`); this module only
//! translates JSON. Changes are written to the state file (`[admin]
//! state_file`, by default `NAME.admin.toml` beside the config file), which
//! the config loader lays over the file: a restart, or a reload of the
//! config file, keeps them.

pub mod ops;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{AdminConfig, RawPlugin, RawUpstream};
use crate::server::ServerState;
use ops::{Control, Ops, Problem};

/// The OpenAPI 3.1 document of this API.
pub const OPENAPI: &str = include_str!("admin/openapi.json");

/// What the admin listener's handlers share (the API's and the console's).
pub struct AdminState {
    pub ops: Ops,
    pub settings: AdminConfig,
    /// SHA-256 of the token: compared in constant time, digest to digest.
    pub token_digest: [u8; 32],
    /// The main listener's state: its sessions and recent callers.
    pub server: Arc<ServerState>,
    pub stop: CancellationToken,
}

/// Serves the admin API (and the console) on `listener` until the
/// gateway's stop fires.
pub async fn serve(
    server: Arc<ServerState>,
    settings: AdminConfig,
    listener: TcpListener,
) -> std::io::Result<()> {
    let token_digest = digest(&settings.token);
    let stop = server.stop.clone();
    let state = Arc::new(AdminState {
        ops: Ops::new(Arc::clone(&server), settings.state_file.clone()),
        settings,
        token_digest,
        server,
        stop: stop.clone(),
    });
    tracing::info!(listen = %listener.local_addr()?, "admin API listening (console at /ui/)");
    let tls = match &state.settings.tls {
        Some(settings) => Some(
            crate::tls::start(settings, listener.local_addr()?.port(), stop.clone())
                .map_err(|e| std::io::Error::other(format!("admin.tls: {e}")))?
                .1,
        ),
        None => None,
    };
    let app = router(Arc::clone(&state))
        .merge(crate::console::router(Arc::clone(&state)))
        .layer(middleware::from_fn_with_state(state, allow_list));
    match tls {
        Some(tls) => crate::tls::serve(listener, tls, app, stop).await,
        None => {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
        }
    }
}

fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/admin/openapi.json", get(openapi))
        .route("/admin/upstreams", get(list_upstreams).post(add_upstream))
        .route(
            "/admin/upstreams/{name}",
            get(get_upstream).put(put_upstream).delete(remove_upstream),
        )
        .route("/admin/upstreams/{name}/start", post(start_upstream))
        .route("/admin/upstreams/{name}/stop", post(stop_upstream))
        .route("/admin/upstreams/{name}/restart", post(restart_upstream))
        .route("/admin/upstreams/{name}/logs", get(follow_logs))
        .route("/admin/plugins/{name}", put(put_plugin))
        .route("/admin/secrets", get(list_secrets))
        .route(
            "/admin/secrets/{name}",
            put(put_secret).delete(remove_secret),
        )
        .route("/admin/routes", get(list_routes))
        .route("/admin/routes/chain", put(set_chain).delete(reset_chain))
        .route("/admin/tools", get(list_tools))
        .route("/admin/reload", post(reload))
        .route("/admin/sessions", get(list_sessions))
        .route("/admin/sessions/{id}", axum::routing::delete(end_session))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), bearer))
        .layer(middleware::from_fn(redact_bodies))
        .with_state(state)
}

/// No secret value leaves in a JSON or HTML body (a child's error text, a
/// detail quoting a setting): such bodies are read whole and redacted while
/// the process knows any secret. Streams (SSE) are redacted at their source.
pub(crate) async fn redact_bodies(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    if !crate::secrets::any_known() {
        return resp;
    }
    let whole = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json") || t.starts_with("text/html"));
    if !whole {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let text = String::from_utf8_lossy(&bytes);
    let body = match crate::secrets::redact(&text) {
        std::borrow::Cow::Borrowed(_) => axum::body::Body::from(bytes),
        std::borrow::Cow::Owned(redacted) => {
            parts.headers.remove(header::CONTENT_LENGTH);
            axum::body::Body::from(redacted)
        }
    };
    Response::from_parts(parts, body)
}

pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The client address must be inside `[admin] allow` (403): for the API
/// and the console alike.
async fn allow_list(State(st): State<Arc<AdminState>>, req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let allowed = peer.is_some_and(|p| st.settings.allow.iter().any(|n| n.contains(p.ip())));
    if !allowed {
        tracing::warn!(peer = ?peer, path = %req.uri().path(), "admin API: address not allowed");
        return problem(
            StatusCode::FORBIDDEN,
            "this address may not use the admin API",
        );
    }
    next.run(req).await
}

/// The API's bearer token (401).
async fn bearer(State(st): State<Arc<AdminState>>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| digest(t.trim()));
    let ok = given.is_some_and(|d| constant_time_eq(&d, &st.token_digest));
    if !ok {
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        tracing::warn!(peer = ?peer, path = %req.uri().path(), "admin API: missing or wrong token");
        let mut resp = problem(StatusCode::UNAUTHORIZED, "a valid admin token is required");
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"switchyard-admin\""),
        );
        return resp;
    }
    next.run(req).await
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        (self.status, axum::Json(json!({"error": self.message}))).into_response()
    }
}

fn problem(status: StatusCode, message: impl Into<String>) -> Response {
    Problem::new(status, message).into_response()
}

/// An operation's outcome as JSON: `ok` with `status`, or the problem.
fn reply<T: serde::Serialize>(status: StatusCode, outcome: Result<T, Problem>) -> Response {
    match outcome {
        Ok(v) => (status, axum::Json(v)).into_response(),
        Err(p) => p.into_response(),
    }
}

/// A JSON request body; one that does not parse is a 400 problem saying why.
struct JsonBody<T>(T);

impl<S, T> axum::extract::FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(JsonBody(v)),
            Err(e) => Err(problem(StatusCode::BAD_REQUEST, e.body_text())),
        }
    }
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn list_secrets(State(st): State<Arc<AdminState>>) -> Response {
    reply(StatusCode::OK, st.ops.secrets())
}

/// `{"value": "…"}`: the only way in (no query string, nothing echoed).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretValue {
    value: String,
}

async fn put_secret(
    State(st): State<Arc<AdminState>>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<SecretValue>,
) -> Response {
    reply(StatusCode::OK, st.ops.set_secret(&name, body.value).await)
}

async fn remove_secret(State(st): State<Arc<AdminState>>, Path(name): Path<String>) -> Response {
    reply(StatusCode::OK, st.ops.remove_secret(&name).await)
}

async fn list_upstreams(State(st): State<Arc<AdminState>>) -> Response {
    axum::Json(st.ops.reports()).into_response()
}

async fn get_upstream(State(st): State<Arc<AdminState>>, Path(name): Path<String>) -> Response {
    reply(StatusCode::OK, st.ops.upstream(&name).map(|u| u.report()))
}

/// `POST /admin/upstreams`: `{"name": ..., <the [upstreams.NAME] keys>}`.
pub struct NewUpstream {
    pub name: String,
    pub spec: RawUpstream,
}

/// By hand rather than `#[serde(flatten)]`: flattening turns off the spec's
/// `deny_unknown_fields`, so a mistyped key was silently ignored.
impl<'de> Deserialize<'de> for NewUpstream {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut table = serde_json::Map::<String, Value>::deserialize(d)?;
        let name = match table.remove("name") {
            Some(Value::String(name)) => name,
            Some(_) => return Err(D::Error::custom("`name` must be a string")),
            None => return Err(D::Error::missing_field("name")),
        };
        let spec = RawUpstream::deserialize(Value::Object(table)).map_err(D::Error::custom)?;
        Ok(NewUpstream { name, spec })
    }
}

async fn add_upstream(
    State(st): State<Arc<AdminState>>,
    JsonBody(new): JsonBody<NewUpstream>,
) -> Response {
    reply(
        StatusCode::CREATED,
        st.ops.add_upstream(&new.name, new.spec).await,
    )
}

async fn put_upstream(
    State(st): State<Arc<AdminState>>,
    Path(name): Path<String>,
    JsonBody(spec): JsonBody<RawUpstream>,
) -> Response {
    reply(StatusCode::OK, st.ops.put_upstream(&name, spec).await)
}

async fn remove_upstream(State(st): State<Arc<AdminState>>, Path(name): Path<String>) -> Response {
    reply(StatusCode::OK, st.ops.remove_upstream(&name).await)
}

async fn start_upstream(State(st): State<Arc<AdminState>>, Path(name): Path<String>) -> Response {
    reply(StatusCode::ACCEPTED, st.ops.control(&name, Control::Start))
}

async fn stop_upstream(State(st): State<Arc<AdminState>>, Path(name): Path<String>) -> Response {
    reply(StatusCode::ACCEPTED, st.ops.control(&name, Control::Stop))
}

async fn restart_upstream(State(st): State<Arc<AdminState>>, Path(name): Path<String>) -> Response {
    reply(
        StatusCode::ACCEPTED,
        st.ops.control(&name, Control::Restart),
    )
}

/// `GET /admin/upstreams/{name}/logs`: the child's stderr as SSE.
async fn follow_logs(State(st): State<Arc<AdminState>>, Path(name): Path<String>) -> Response {
    match st.ops.upstream(&name) {
        Ok(up) => log_stream(&up, st.stop.clone()),
        Err(p) => p.into_response(),
    }
}

/// An upstream's stderr as SSE: the last lines kept first, then new ones as
/// they come (a `lagged` event says how many a slow reader missed).
pub fn log_stream(up: &crate::upstream::Upstream, stop: CancellationToken) -> Response {
    let (tail, mut rx) = up.follow_logs();
    let (tx, out) =
        tokio::sync::mpsc::unbounded_channel::<Result<Event, std::convert::Infallible>>();
    tokio::spawn(async move {
        for line in tail {
            if tx.send(Ok(Event::default().data(line))).is_err() {
                return;
            }
        }
        loop {
            let line = tokio::select! {
                l = rx.recv() => l,
                _ = stop.cancelled() => return,
                _ = tx.closed() => return,
            };
            let event = match line {
                Ok(l) => Event::default().data(l),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    Event::default().event("lagged").data(n.to_string())
                }
                Err(_) => return,
            };
            if tx.send(Ok(event)).is_err() {
                return;
            }
        }
    });
    Sse::new(tokio_stream::wrappers::UnboundedReceiverStream::new(out))
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// `PUT /admin/plugins/{name}`: the `[plugins.NAME]` keys (`component`,
/// `config`, ...). Loaded first: one that does not load changes nothing.
async fn put_plugin(
    State(st): State<Arc<AdminState>>,
    Path(name): Path<String>,
    JsonBody(raw): JsonBody<RawPlugin>,
) -> Response {
    reply(StatusCode::OK, st.ops.put_plugin(&name, raw).await)
}

async fn list_routes(State(st): State<Arc<AdminState>>) -> Response {
    axum::Json(st.ops.routes()).into_response()
}

/// `PUT /admin/routes/chain`: `{"route": "/mcp", "plugins": ["auth", ...]}`,
/// names of plugin instances. Swapped atomically and kept in the state file.
#[derive(Deserialize)]
struct SetChain {
    route: String,
    plugins: Vec<String>,
}

async fn set_chain(
    State(st): State<Arc<AdminState>>,
    JsonBody(req): JsonBody<SetChain>,
) -> Response {
    reply(
        StatusCode::OK,
        st.ops.set_chain(&req.route, &req.plugins).await,
    )
}

#[derive(Deserialize)]
struct RouteQuery {
    route: String,
}

/// `DELETE /admin/routes/chain?route=/mcp`: the config file's chain again.
async fn reset_chain(State(st): State<Arc<AdminState>>, Query(q): Query<RouteQuery>) -> Response {
    reply(StatusCode::OK, st.ops.reset_chain(&q.route).await)
}

/// `GET /admin/tools`: every route's aggregated tools (no plugin applied).
async fn list_tools(State(st): State<Arc<AdminState>>) -> Response {
    let gateway = st.ops.gateway();
    let mut out = serde_json::Map::new();
    for path in gateway.route_paths() {
        let Some(route) = gateway.route(&path) else {
            continue;
        };
        let entry = match gateway.tools(&route).await {
            Ok(tools) => json!({"tools": tools}),
            Err(e) => json!({"error": e.message}),
        };
        out.insert(path, entry);
    }
    axum::Json(Value::Object(out)).into_response()
}

/// `POST /admin/reload`: reads the config file again and applies it.
async fn reload(State(st): State<Arc<AdminState>>) -> Response {
    reply(StatusCode::OK, st.ops.reload().await)
}

/// `GET /admin/sessions`: open legacy sessions and recent modern callers.
async fn list_sessions(State(st): State<Arc<AdminState>>) -> Response {
    axum::Json(st.ops.clients()).into_response()
}

/// `DELETE /admin/sessions/{id}`: ends a legacy session.
async fn end_session(State(st): State<Arc<AdminState>>, Path(id): Path<String>) -> Response {
    reply(StatusCode::OK, st.ops.end_session(&id).await)
}
