//! The admin API: its own listener, off unless `[admin] token` is set.
//!
//! Every request passes two checks, in this order: the client address must
//! be inside `[admin] allow` (403), and `Authorization: Bearer TOKEN` must
//! match the token (401). Refusals are logged with the address, never the
//! token. The document at `GET /admin/openapi.json` (`admin/openapi.json`
//! in the source) describes every operation.
//!
//! Upstreams added, changed or removed here are written to the state file
//! (`[admin] state_file`, by default `NAME.admin.toml` beside the config
//! file), which the config loader lays over the file's upstreams: a restart,
//! or a reload of the config file, keeps them.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Path, Request, State};
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

use crate::config::{self, AdminConfig, Config, PluginName, RawOverlay, RawUpstream, UpstreamName};
use crate::pipeline::{Gateway, Reconfigured};

/// The OpenAPI 3.1 document of this API.
pub const OPENAPI: &str = include_str!("admin/openapi.json");

struct AdminState {
    gateway: Arc<Gateway>,
    settings: AdminConfig,
    /// SHA-256 of the token: compared in constant time, digest to digest.
    token_digest: [u8; 32],
    stop: CancellationToken,
    /// One change at a time (state file, then reconfiguration).
    changing: tokio::sync::Mutex<()>,
}

/// Serves the admin API on `listener` until `stop` fires.
pub async fn serve(
    gateway: Arc<Gateway>,
    settings: AdminConfig,
    listener: TcpListener,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let token_digest = Sha256::digest(settings.token.as_bytes()).into();
    let state = Arc::new(AdminState {
        gateway,
        settings,
        token_digest,
        stop: stop.clone(),
        changing: tokio::sync::Mutex::new(()),
    });
    tracing::info!(listen = %listener.local_addr()?, "admin API listening");
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stop.cancelled_owned())
    .await
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
        .route("/admin/routes", get(list_routes))
        .route("/admin/routes/chain", put(set_chain))
        .route("/admin/tools", get(list_tools))
        .route("/admin/reload", post(reload))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), guard))
        .with_state(state)
}

/// Address allow-list (403), then the bearer token (401).
async fn guard(State(st): State<Arc<AdminState>>, req: Request, next: Next) -> Response {
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
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| Sha256::digest(t.trim().as_bytes()));
    let ok = given.is_some_and(|d| constant_time_eq(&d, &st.token_digest));
    if !ok {
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

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An error: its status and a body `{"error": "..."}`.
struct Problem(StatusCode, String);

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({"error": self.1}))).into_response()
    }
}

fn problem(status: StatusCode, message: impl Into<String>) -> Response {
    Problem(status, message.into()).into_response()
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

async fn list_upstreams(State(st): State<Arc<AdminState>>) -> Response {
    axum::Json(st.gateway.upstreams().reports()).into_response()
}

fn find(st: &AdminState, name: &str) -> Result<Arc<crate::upstream::Upstream>, Problem> {
    UpstreamName::parse(name)
        .ok()
        .and_then(|n| st.gateway.upstreams().get(&n))
        .ok_or_else(|| Problem(StatusCode::NOT_FOUND, format!("no upstream `{name}`")))
}

async fn get_upstream(State(st): State<Arc<AdminState>>, Path(name): Path<String>) -> Response {
    match find(&st, &name) {
        Ok(up) => axum::Json(up.report()).into_response(),
        Err(r) => r.into_response(),
    }
}

/// `POST /admin/upstreams`: `{"name": ..., <the [upstreams.NAME] keys>}`.
struct NewUpstream {
    name: String,
    spec: RawUpstream,
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
    if UpstreamName::parse(&new.name)
        .ok()
        .and_then(|n| st.gateway.upstreams().get(&n))
        .is_some()
    {
        return problem(
            StatusCode::CONFLICT,
            format!("upstream `{}` exists (PUT replaces it)", new.name),
        );
    }
    match change_upstream(&st, &new.name, Some(new.spec)).await {
        Ok(done) => (StatusCode::CREATED, axum::Json(done)).into_response(),
        Err(r) => r.into_response(),
    }
}

async fn put_upstream(
    State(st): State<Arc<AdminState>>,
    Path(name): Path<String>,
    JsonBody(spec): JsonBody<RawUpstream>,
) -> Response {
    match change_upstream(&st, &name, Some(spec)).await {
        Ok(done) => axum::Json(done).into_response(),
        Err(r) => r.into_response(),
    }
}

async fn remove_upstream(State(st): State<Arc<AdminState>>, Path(name): Path<String>) -> Response {
    if let Err(r) = find(&st, &name) {
        return r.into_response();
    }
    match change_upstream(&st, &name, None).await {
        Ok(done) => axum::Json(done).into_response(),
        Err(r) => r.into_response(),
    }
}

/// Adds, replaces (`Some`) or removes (`None`) an upstream: validated
/// against the configuration in force, persisted, then applied by diff.
async fn change_upstream(
    st: &AdminState,
    name: &str,
    raw: Option<RawUpstream>,
) -> Result<Value, Problem> {
    let _one = st.changing.lock().await;
    let current = st.gateway.config();
    let next = match &raw {
        Some(raw) => {
            let spec = config::upstream_from_raw(name, raw, &current)
                .map_err(|e| Problem(StatusCode::BAD_REQUEST, e.to_string()))?;
            current.with_upstream(spec)
        }
        None => {
            let uname =
                UpstreamName::parse(name).map_err(|e| Problem(StatusCode::BAD_REQUEST, e))?;
            current
                .without_upstream(&uname)
                .map_err(|e| Problem(StatusCode::CONFLICT, e))?
        }
    };
    if let Some(file) = &st.settings.state_file {
        persist(file, name, raw).map_err(|e| {
            Problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("could not write {}: {e}", file.display()),
            )
        })?;
    }
    let done = apply(st, &next).await?;
    let routes: Vec<String> = next
        .routes
        .iter()
        .filter(|r| r.upstreams.iter().any(|u| u.as_str() == name))
        .map(|r| r.path.to_string())
        .collect();
    Ok(
        json!({"applied": summary(&done), "routes": routes, "persisted": st.settings.state_file.is_some()}),
    )
}

async fn apply(st: &AdminState, next: &Config) -> Result<Reconfigured, Problem> {
    st.gateway
        .apply(next)
        .await
        .map_err(|e| Problem(StatusCode::BAD_REQUEST, e.to_string()))
}

/// Records one upstream change in the state file (written whole, by rename).
fn persist(file: &std::path::Path, name: &str, raw: Option<RawUpstream>) -> anyhow::Result<()> {
    let mut overlay: RawOverlay = config::read_overlay(file)?;
    match raw {
        Some(raw) => {
            overlay.removed.retain(|n| n != name);
            overlay.upstreams.insert(name.to_owned(), raw);
        }
        None => {
            overlay.upstreams.remove(name);
            if !overlay.removed.iter().any(|n| n == name) {
                overlay.removed.push(name.to_owned());
            }
        }
    }
    let text = format!(
        "# Written by the switchyard admin API: upstreams added or changed through it\n# (replacing the config file's tables of the same name) and names removed.\n\n{}",
        toml::to_string_pretty(&overlay)?
    );
    let tmp = file.with_extension("toml.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, file)?;
    Ok(())
}

fn summary(done: &Reconfigured) -> Value {
    json!({
        "plugins": done.plugins.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
        "routes": done.routes,
        "routes_removed": done.routes_removed,
        "upstreams_added": done.upstreams_added,
        "upstreams_changed": done.upstreams_changed,
        "upstreams_removed": done.upstreams_removed,
    })
}

async fn start_upstream(State(st): State<Arc<AdminState>>, Path(name): Path<String>) -> Response {
    control(&st, &name, |u| u.start())
}

async fn stop_upstream(State(st): State<Arc<AdminState>>, Path(name): Path<String>) -> Response {
    control(&st, &name, |u| u.halt())
}

async fn restart_upstream(State(st): State<Arc<AdminState>>, Path(name): Path<String>) -> Response {
    control(&st, &name, |u| u.restart())
}

fn control(st: &AdminState, name: &str, act: impl Fn(&crate::upstream::Upstream)) -> Response {
    match find(st, name) {
        Ok(up) => {
            tracing::info!(upstream = %name, "admin API: upstream control");
            act(&up);
            (StatusCode::ACCEPTED, axum::Json(up.report())).into_response()
        }
        Err(r) => r.into_response(),
    }
}

/// `GET /admin/upstreams/{name}/logs`: the child's stderr as SSE, the last
/// lines kept first, then new ones as they come.
async fn follow_logs(State(st): State<Arc<AdminState>>, Path(name): Path<String>) -> Response {
    let up = match find(&st, &name) {
        Ok(u) => u,
        Err(r) => return r.into_response(),
    };
    let (tail, mut rx) = up.follow_logs();
    let stop = st.stop.clone();
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

async fn list_routes(State(st): State<Arc<AdminState>>) -> Response {
    let config = st.gateway.config();
    let routes: Vec<Value> = config
        .routes
        .iter()
        .map(|r| {
            json!({
                "path": r.path.as_str(),
                "upstreams": r.upstreams.iter().map(|u| u.as_str()).collect::<Vec<_>>(),
                "every_upstream": r.every_upstream,
                "plugins": r.plugins.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
            })
        })
        .collect();
    axum::Json(routes).into_response()
}

/// `PUT /admin/routes/chain`: `{"route": "/mcp", "plugins": ["auth", ...]}`,
/// names of `[plugins.NAME]` instances in the configuration. Swapped
/// atomically; not written to any file (the config file's chain returns at
/// its next change or a restart).
#[derive(Deserialize)]
struct SetChain {
    route: String,
    plugins: Vec<String>,
}

async fn set_chain(
    State(st): State<Arc<AdminState>>,
    JsonBody(req): JsonBody<SetChain>,
) -> Response {
    let _one = st.changing.lock().await;
    let mut next = st.gateway.config();
    let Some(route) = next
        .routes
        .iter()
        .position(|r| r.path.as_str() == req.route)
    else {
        return problem(StatusCode::NOT_FOUND, format!("no route {}", req.route));
    };
    let mut chain = Vec::new();
    for p in &req.plugins {
        let known = PluginName::parse(p)
            .ok()
            .filter(|n| next.plugins.iter().any(|s| &s.name == n));
        match known {
            Some(n) if !chain.contains(&n) => chain.push(n),
            Some(_) => return problem(StatusCode::BAD_REQUEST, format!("`{p}` is listed twice")),
            None => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    format!("no plugin instance `{p}` (see [plugins.NAME])"),
                );
            }
        }
    }
    next.routes[route].plugins = chain;
    match apply(&st, &next).await {
        Ok(done) => axum::Json(json!({"applied": summary(&done)})).into_response(),
        Err(r) => r.into_response(),
    }
}

/// `GET /admin/tools`: every route's aggregated tools (no plugin applied).
async fn list_tools(State(st): State<Arc<AdminState>>) -> Response {
    let mut out = serde_json::Map::new();
    for path in st.gateway.route_paths() {
        let Some(route) = st.gateway.route(&path) else {
            continue;
        };
        let entry = match st.gateway.tools(&route).await {
            Ok(tools) => json!({"tools": tools}),
            Err(e) => json!({"error": e.message}),
        };
        out.insert(path, entry);
    }
    axum::Json(Value::Object(out)).into_response()
}

/// `POST /admin/reload`: reads the config file again and applies it.
async fn reload(State(st): State<Arc<AdminState>>) -> Response {
    let Some(path) = st.gateway.config().source else {
        return problem(
            StatusCode::CONFLICT,
            "the gateway was not started from a config file",
        );
    };
    let _one = st.changing.lock().await;
    let config = match config::load(Some(&path)) {
        Ok(c) => c,
        Err(e) => return problem(StatusCode::BAD_REQUEST, e.to_string()),
    };
    match apply(&st, &config).await {
        Ok(done) => axum::Json(json!({"applied": summary(&done)})).into_response(),
        Err(r) => r.into_response(),
    }
}
