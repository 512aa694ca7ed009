//! The web console: pages on the admin listener at `/ui/`, rendered by the
//! binary (askama templates in `host/templates/`, compiled in), with a small
//! script of our own (`host/assets/console.js`) for what must be live.
//!
//! Every page reads without JavaScript; the script adds live updates (the
//! overview's tables and an upstream's stderr arrive over SSE as HTML
//! rendered here, by the same templates), pausing and filtering a log tail,
//! and confirmations. The console is a client of [`crate::admin::ops`]:
//! what a button does is decided there, as for the admin API.
//!
//! Off the request path: the pages read the gateway's state when rendered,
//! and one task renders the live overview once a second only while some
//! browser is watching (all of them share that one rendering).

mod assets;
mod auth;
mod forms;
mod views;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use axum::Router;
use axum::extract::{ConnectInfo, Multipart, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::admin::AdminState;
use crate::admin::ops::{Control, Problem};
pub use assets::ASSETS;
use auth::{Auth, Role, Session, SessionId};
use views::*;

/// The console's shared state.
pub struct Console {
    admin: Arc<AdminState>,
    auth: Auth,
    /// The overview's live fragments (rendered while someone watches).
    /// Each rendering reaches every watcher (a broadcast, not a watch: a
    /// crash's brief "down" must not be folded into the "ready" after it).
    live: broadcast::Sender<Arc<Live>>,
    /// The last fragments sent, so that an unchanged rendering is not sent.
    last: std::sync::Mutex<Arc<Live>>,
}

/// What the overview's live stream sends: HTML of the upstream rows and
/// the traffic summary.
#[derive(Default, PartialEq)]
struct Live {
    upstreams: String,
    stats: String,
}

/// The console's routes, for the admin listener (which checks the address
/// allow-list in front of them).
pub fn router(admin: Arc<AdminState>) -> Router {
    let auth = Auth::new(
        &admin.settings.token,
        admin.settings.viewer_token.as_deref(),
    );
    let console = Arc::new(Console {
        admin,
        auth,
        live: broadcast::channel(16).0,
        last: std::sync::Mutex::default(),
    });
    tokio::spawn(Arc::clone(&console).render_live());
    let signed_in = Router::new()
        .route("/ui/", get(overview))
        .route("/ui/events", get(events))
        .route("/ui/logout", post(logout))
        .route("/ui/upstreams/new", get(new_upstream))
        .route("/ui/upstreams", post(add_upstream))
        .route("/ui/upstreams/import", post(import_upstreams))
        .route("/ui/upstreams/{name}", get(upstream).post(edit_upstream))
        .route("/ui/upstreams/{name}/logs", get(upstream_logs))
        .route("/ui/upstreams/{name}/{action}", post(control_upstream))
        .route("/ui/routes", get(routes))
        .route("/ui/routes/chain", post(set_chain))
        .route("/ui/plugins", post(add_plugin))
        .route("/ui/explorer", get(explorer))
        .route("/ui/explorer/call", post(try_tool))
        .route("/ui/config", get(config_page).post(config_edit))
        .route("/ui/metrics", get(metrics_page))
        .route("/ui/logs", get(logs_page))
        .route("/ui/logs/stream", get(logs_stream))
        .route("/ui/sessions", get(sessions_page))
        .route("/ui/sessions/end", post(end_session))
        .layer(middleware::from_fn_with_state(Arc::clone(&console), guard));
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/static/{name}", get(assets::serve))
        .merge(signed_in)
        // Uploaded components may be large; forms are small.
        .layer(axum::extract::DefaultBodyLimit::max(64 << 20))
        // No secret value on a page (redacted before compression).
        .layer(middleware::from_fn(crate::admin::redact_bodies))
        // Pages gzip-compressed when asked (the explorer's schemas make it
        // the largest); assets are already, SSE is never.
        .layer(tower_http::compression::CompressionLayer::new())
        .with_state(console)
}

async fn guard(State(c): State<Arc<Console>>, req: Request, next: Next) -> Response {
    auth::guard(&c.auth, req, next).await
}

impl Console {
    fn ops(&self) -> &crate::admin::ops::Ops {
        &self.admin.ops
    }

    /// Renders the live overview while a browser watches: at once when an
    /// upstream changes state (so a crash and the restart after it are each
    /// seen), and once a second for the figures that move by themselves.
    async fn render_live(self: Arc<Self>) {
        let stop = self.admin.stop.clone();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            let mut states: Vec<_> = self
                .ops()
                .gateway()
                .upstreams()
                .all()
                .iter()
                .map(|u| u.watch_state())
                .collect();
            let mut waits: Vec<std::pin::Pin<Box<dyn Future<Output = ()> + Send + '_>>> = states
                .iter_mut()
                .map(|rx| {
                    Box::pin(async move {
                        // A removed upstream's channel closes: not a change.
                        if rx.changed().await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    }) as _
                })
                .collect();
            waits.push(Box::pin(std::future::pending()));
            let changed = futures_util::future::select_all(waits);
            tokio::select! {
                _ = tick.tick() => {}
                _ = changed => {}
                _ = stop.cancelled() => return,
            }
            if self.live.receiver_count() == 0 {
                continue;
            }
            let next = Arc::new(self.render_now());
            let mut last = self.last.lock().expect("live lock");
            if **last != *next {
                *last = Arc::clone(&next);
                let _ = self.live.send(next);
            }
        }
    }

    fn render_now(&self) -> Live {
        Live {
            upstreams: render(&UpstreamRows::of(self.ops())),
            stats: render(&StatsView::now()),
        }
    }

    fn page(&self, session: &Session, title: impl Into<String>, nav: &'static str) -> Page {
        Page {
            title: title.into(),
            nav,
            csrf: session.csrf.clone(),
            can_change: session.role == Role::Admin,
            css: ASSETS.css.url(),
            js: ASSETS.js.url(),
            flash: None,
            error: None,
        }
    }
}

fn render(t: &impl Template) -> String {
    t.render()
        .unwrap_or_else(|e| format!("<p class=error>rendering failed: {e}</p>"))
}

/// A rendered page: never cached (it shows live state and a CSRF token).
fn page_response(status: StatusCode, t: &impl Template) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        Html(render(t)),
    )
        .into_response()
}

fn ok_page(t: &impl Template) -> Response {
    page_response(StatusCode::OK, t)
}

/// After a change: back to `to`, with a message shown once (in the query).
fn see_other(to: &str, flash: &str) -> Response {
    let sep = if to.contains('?') { '&' } else { '?' };
    let q = serde_urlencoded::to_string([("flash", flash)]).unwrap_or_default();
    Redirect::to(&format!("{to}{sep}{q}")).into_response()
}

#[derive(Deserialize, Default)]
struct Flash {
    flash: Option<String>,
}

// ---- sign-in ----

async fn login_page() -> Response {
    ok_page(&LoginView::new(None))
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(
    State(c): State<Arc<Console>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(form): Form<LoginForm>,
) -> Response {
    match c.auth.sign_in(&form.token, Some(peer)).await {
        Some((id, _)) => {
            let mut resp = Redirect::to("/ui/").into_response();
            resp.headers_mut().insert(
                header::SET_COOKIE,
                // `Secure` when the admin listener serves HTTPS.
                auth::session_cookie(&id, c.admin.settings.tls.is_some())
                    .parse()
                    .expect("cookie"),
            );
            resp
        }
        None => page_response(
            StatusCode::UNAUTHORIZED,
            &LoginView::new(Some("That token is not valid.".into())),
        ),
    }
}

async fn logout(State(c): State<Arc<Console>>, Extension(id): Extension<SessionId>) -> Response {
    c.auth.sign_out(&id.0);
    let mut resp = Redirect::to("/ui/login").into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        auth::cleared_cookie().parse().expect("cookie"),
    );
    resp
}

// ---- overview ----

async fn overview(
    State(c): State<Arc<Console>>,
    Extension(s): Extension<Session>,
    Query(f): Query<Flash>,
) -> Response {
    let mut page = c.page(&s, "Overview", "overview");
    page.flash = f.flash;
    ok_page(&OverviewView {
        rows: UpstreamRows::of(c.ops()),
        stats: StatsView::now(),
        routes: RouteView::all(c.ops()),
        page,
    })
}

/// `GET /ui/events`: the overview's live fragments as SSE (`upstreams`,
/// `stats`), each time they change.
async fn events(State(c): State<Arc<Console>>) -> Response {
    let mut rx = c.live.subscribe();
    let first = Arc::new(c.render_now());
    let stop = c.admin.stop.clone();
    let stream = async_stream(move |tx| async move {
        let mut live = first;
        loop {
            for (name, data) in [("upstreams", &live.upstreams), ("stats", &live.stats)] {
                if tx
                    .send(Event::default().event(name).data(data.as_str()))
                    .is_err()
                {
                    return;
                }
            }
            live = loop {
                tokio::select! {
                    next = rx.recv() => match next {
                        Ok(l) => break l,
                        // Behind: skip to what comes next.
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                    _ = stop.cancelled() => return,
                    _ = tx.closed() => return,
                }
            };
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// A stream of SSE events produced by `body` (which ends when the browser
/// goes away: its sends fail).
fn async_stream<F, Fut>(
    body: F,
) -> impl futures_util::Stream<Item = Result<Event, std::convert::Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::UnboundedSender<Event>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(body(tx));
    futures_util::StreamExt::map(tokio_stream::wrappers::UnboundedReceiverStream::new(rx), Ok)
}

// ---- upstreams ----

async fn upstream(
    State(c): State<Arc<Console>>,
    Extension(s): Extension<Session>,
    Path(name): Path<String>,
    Query(f): Query<Flash>,
) -> Response {
    let up = match c.ops().upstream(&name) {
        Ok(u) => u,
        Err(p) => return not_found(&c, &s, p),
    };
    let mut page = c.page(&s, format!("Upstream {name}"), "overview");
    page.flash = f.flash;
    let form = forms::UpstreamForm::current(c.ops(), &name);
    ok_page(&UpstreamView::new(page, &up, form, Default::default()))
}

fn not_found(c: &Console, s: &Session, p: Problem) -> Response {
    let mut page = c.page(s, "Not found", "");
    page.error = Some(p.message);
    page_response(p.status, &ErrorView { page })
}

async fn new_upstream(State(c): State<Arc<Console>>, Extension(s): Extension<Session>) -> Response {
    ok_page(&NewUpstreamView {
        page: c.page(&s, "Add an upstream", "overview"),
        form: forms::UpstreamForm::default(),
        errors: Default::default(),
        import_text: String::new(),
        import_error: None,
    })
}

async fn add_upstream(
    State(c): State<Arc<Console>>,
    Extension(s): Extension<Session>,
    Form(form): Form<forms::UpstreamForm>,
) -> Response {
    let outcome = match form.to_raw(None) {
        Ok(raw) => c.ops().add_upstream(form.name.trim(), raw).await,
        Err(p) => Err(p),
    };
    match outcome {
        Ok(_) => see_other(
            &format!("/ui/upstreams/{}", form.name.trim()),
            "Upstream added.",
        ),
        Err(p) => {
            let errors = forms::FieldErrors::from_problem(&p, form.name.trim());
            page_response(
                p.status,
                &NewUpstreamView {
                    page: c.page(&s, "Add an upstream", "overview"),
                    form,
                    errors,
                    import_text: String::new(),
                    import_error: None,
                },
            )
        }
    }
}

#[derive(Deserialize)]
struct ImportForm {
    servers: String,
}

/// An `mcpServers` JSON (as `switchyard import claude-desktop` reads it):
/// each server becomes an upstream, added one by one.
async fn import_upstreams(
    State(c): State<Arc<Console>>,
    Extension(s): Extension<Session>,
    Form(form): Form<ImportForm>,
) -> Response {
    let fail = |msg: String| {
        page_response(
            StatusCode::BAD_REQUEST,
            &NewUpstreamView {
                page: c.page(&s, "Add an upstream", "overview"),
                form: forms::UpstreamForm::default(),
                errors: Default::default(),
                import_text: form.servers.clone(),
                import_error: Some(msg),
            },
        )
    };
    let imported = match crate::import::claude_desktop(&form.servers, "the pasted JSON") {
        Ok(i) => i,
        Err(e) => return fail(e.to_string()),
    };
    /// The upstream tables of the imported document (its route is ignored).
    #[derive(Deserialize)]
    struct Tables {
        #[serde(default)]
        upstreams: std::collections::BTreeMap<String, crate::config::RawUpstream>,
    }
    let tables: Tables = match toml::from_str(&imported.toml) {
        Ok(t) => t,
        Err(e) => return fail(e.to_string()),
    };
    let mut added = Vec::new();
    for (name, raw) in tables.upstreams {
        if let Err(p) = c.ops().add_upstream(&name, raw).await {
            let done = if added.is_empty() {
                String::new()
            } else {
                format!(" (added before it: {})", added.join(", "))
            };
            return fail(format!("`{name}`: {}{done}", p.message));
        }
        added.push(name);
    }
    if added.is_empty() {
        return fail("no enabled server in the JSON".into());
    }
    see_other("/ui/", &format!("Imported: {}.", added.join(", ")))
}

async fn edit_upstream(
    State(c): State<Arc<Console>>,
    Extension(s): Extension<Session>,
    Path(name): Path<String>,
    Form(mut form): Form<forms::UpstreamForm>,
) -> Response {
    let up = match c.ops().upstream(&name) {
        Ok(u) => u,
        Err(p) => return not_found(&c, &s, p),
    };
    form.name.clone_from(&name);
    let outcome = match form.to_raw(forms::current_raw(c.ops(), &name)) {
        Ok(raw) => c.ops().put_upstream(&name, raw).await,
        Err(p) => Err(p),
    };
    match outcome {
        Ok(_) => see_other(
            &format!("/ui/upstreams/{name}"),
            "Saved; the upstream restarts with it.",
        ),
        Err(p) => {
            let errors = forms::FieldErrors::from_problem(&p, &name);
            let page = c.page(&s, format!("Upstream {name}"), "overview");
            page_response(p.status, &UpstreamView::new(page, &up, form, errors))
        }
    }
}

async fn control_upstream(
    State(c): State<Arc<Console>>,
    Extension(s): Extension<Session>,
    Path((name, action)): Path<(String, String)>,
) -> Response {
    let what = match action.as_str() {
        "start" => Control::Start,
        "stop" => Control::Stop,
        "restart" => Control::Restart,
        "remove" => {
            return match c.ops().remove_upstream(&name).await {
                Ok(_) => see_other("/ui/", &format!("Upstream {name} removed.")),
                Err(p) => see_other(&format!("/ui/upstreams/{name}"), &p.message),
            };
        }
        _ => {
            return not_found(
                &c,
                &s,
                Problem::new(StatusCode::NOT_FOUND, "no such action"),
            );
        }
    };
    match c.ops().control(&name, what) {
        Ok(_) => see_other(
            &format!("/ui/upstreams/{name}"),
            &format!("{action}: requested."),
        ),
        Err(p) => not_found(&c, &s, p),
    }
}

/// `GET /ui/upstreams/{name}/logs`: the child's stderr as SSE.
async fn upstream_logs(State(c): State<Arc<Console>>, Path(name): Path<String>) -> Response {
    match c.ops().upstream(&name) {
        Ok(up) => crate::admin::log_stream(&up, c.admin.stop.clone()),
        Err(p) => (p.status, p.message).into_response(),
    }
}

// ---- routes and plugins ----

async fn routes(
    State(c): State<Arc<Console>>,
    Extension(s): Extension<Session>,
    Query(f): Query<Flash>,
) -> Response {
    let mut page = c.page(&s, "Routes and plugins", "routes");
    page.flash = f.flash;
    ok_page(&RoutesView::new(page, c.ops(), None))
}

#[derive(Deserialize)]
struct ChainForm {
    route: String,
    /// Plugin instance names, comma-separated, in order.
    #[serde(default)]
    plugins: String,
    /// `reset`: back to the config file's chain.
    #[serde(default)]
    action: String,
}

async fn set_chain(
    State(c): State<Arc<Console>>,
    Extension(s): Extension<Session>,
    Form(form): Form<ChainForm>,
) -> Response {
    let outcome = if form.action == "reset" {
        c.ops().reset_chain(&form.route).await
    } else {
        let plugins: Vec<String> = form
            .plugins
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect();
        c.ops().set_chain(&form.route, &plugins).await
    };
    match outcome {
        Ok(_) => see_other("/ui/routes", &format!("Chain of {} changed.", form.route)),
        Err(p) => {
            let page = c.page(&s, "Routes and plugins", "routes");
            page_response(p.status, &RoutesView::new(page, c.ops(), Some(p.message)))
        }
    }
}

/// `POST /ui/plugins` (multipart, the CSRF token in the query): a new
/// plugin instance from a built-in or an uploaded `.wasm`, optionally
/// appended to a route's chain.
async fn add_plugin(
    State(c): State<Arc<Console>>,
    Extension(s): Extension<Session>,
    multipart: Multipart,
) -> Response {
    let refused = |message: String| {
        let page = c.page(&s, "Routes and plugins", "routes");
        page_response(
            StatusCode::BAD_REQUEST,
            &RoutesView::new(page, c.ops(), Some(message)),
        )
    };
    let form = match forms::PluginForm::read(multipart).await {
        Ok(f) => f,
        Err(m) => return refused(m),
    };
    let raw = match form.to_raw(c.ops()) {
        Ok(r) => r,
        Err(p) => return refused(p.message),
    };
    if let Err(p) = c.ops().put_plugin(&form.name, raw).await {
        return refused(p.message);
    }
    if let Some(route) = form.route.as_deref().filter(|r| !r.is_empty()) {
        let mut chain: Vec<String> = c
            .ops()
            .gateway()
            .config()
            .routes
            .iter()
            .find(|r| r.path.as_str() == route)
            .map(|r| r.plugins.iter().map(|p| p.to_string()).collect())
            .unwrap_or_default();
        if !chain.contains(&form.name) {
            chain.push(form.name.clone());
        }
        if let Err(p) = c.ops().set_chain(route, &chain).await {
            return refused(p.message);
        }
    }
    see_other("/ui/routes", &format!("Plugin {} loaded.", form.name))
}

// ---- tool explorer ----

#[derive(Deserialize, Default, Clone)]
pub struct Caller {
    #[serde(default)]
    pub route: String,
    #[serde(default)]
    pub principal: String,
    #[serde(default)]
    pub authorization: String,
    #[serde(default)]
    pub q: String,
}

async fn explorer(
    State(c): State<Arc<Console>>,
    Extension(s): Extension<Session>,
    Query(caller): Query<Caller>,
) -> Response {
    let page = c.page(&s, "Tool explorer", "explorer");
    ok_page(&ExplorerView::load(page, c.ops(), caller, None).await)
}

/// `POST /ui/explorer/call`: one tool called through the route (its chain
/// included) as the principal chosen; the explorer again, with the result.
async fn try_tool(
    State(c): State<Arc<Console>>,
    Extension(s): Extension<Session>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let get = |k: &str| {
        fields
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let caller = Caller {
        route: get("route"),
        principal: get("principal"),
        authorization: get("authorization"),
        q: get("q"),
    };
    let tool = get("tool");
    let page = c.page(&s, "Tool explorer", "explorer");
    let schema: Value = serde_json::from_str(&get("schema")).unwrap_or(json!({}));
    let tried = match forms::arguments(&schema, &fields) {
        Ok(arguments) => {
            let ctx = c.ops().operator(
                Some(caller.principal.trim().to_owned()).filter(|p| !p.is_empty()),
                Some(caller.authorization.trim()).filter(|a| !a.is_empty()),
            );
            match c
                .ops()
                .call_as(
                    &caller.route,
                    &ctx,
                    "tools/call",
                    Some(json!({"name": tool, "arguments": arguments})),
                )
                .await
            {
                Ok(t) => TriedView::of(&tool, &t),
                Err(p) => TriedView::problem(&tool, &p.message),
            }
        }
        Err(m) => TriedView::problem(&tool, &m),
    };
    ok_page(&ExplorerView::load(page, c.ops(), caller, Some(tried)).await)
}

// ---- configuration ----

async fn config_page(
    State(c): State<Arc<Console>>,
    Extension(s): Extension<Session>,
    Query(f): Query<Flash>,
) -> Response {
    let mut page = c.page(&s, "Configuration", "config");
    page.flash = f.flash;
    let text = c.ops().config_text().unwrap_or_default();
    ok_page(&ConfigView::new(page, c.ops(), text, None, None))
}

#[derive(Deserialize)]
struct ConfigForm {
    text: String,
    /// `check` (validate and show the diff) or `apply`.
    action: String,
}

async fn config_edit(
    State(c): State<Arc<Console>>,
    Extension(s): Extension<Session>,
    Form(form): Form<ConfigForm>,
) -> Response {
    let page = c.page(&s, "Configuration", "config");
    let text = form.text.replace("\r\n", "\n");
    let current = c.ops().config_text().unwrap_or_default();
    let diff = views::diff(&current, &text);
    if form.action == "apply" {
        return match c.ops().write_config(&text).await {
            Ok(_) => see_other("/ui/config", "Applied."),
            Err(p) => page_response(
                p.status,
                &ConfigView::new(page, c.ops(), text, Some(Err(p.message)), Some(diff)),
            ),
        };
    }
    let (status, check) = match c.ops().check_config(&text) {
        Ok(_) => (
            StatusCode::OK,
            Ok("Valid. Nothing is changed until you apply.".to_owned()),
        ),
        Err(p) => (p.status, Err(p.message)),
    };
    page_response(
        status,
        &ConfigView::new(page, c.ops(), text, Some(check), Some(diff)),
    )
}

// ---- metrics, logs, sessions ----

async fn metrics_page(State(c): State<Arc<Console>>, Extension(s): Extension<Session>) -> Response {
    let page = c.page(&s, "Metrics, last hour", "metrics");
    ok_page(&MetricsView::now(page))
}

#[derive(Deserialize, Default)]
struct LevelQuery {
    #[serde(default)]
    level: String,
}

async fn logs_page(
    State(c): State<Arc<Console>>,
    Extension(s): Extension<Session>,
    Query(q): Query<LevelQuery>,
) -> Response {
    let page = c.page(&s, "Gateway log", "logs");
    ok_page(&LogsView::new(page, &q.level))
}

/// `GET /ui/logs/stream?level=warn`: the gateway's log lines at or above
/// the level as SSE, the kept ones first.
async fn logs_stream(State(c): State<Arc<Console>>, Query(q): Query<LevelQuery>) -> Response {
    let floor = views::level_floor(&q.level);
    let (kept, mut rx) = crate::telemetry::logtail::follow();
    let stop = c.admin.stop.clone();
    let stream = async_stream(move |tx| async move {
        for l in kept.iter().filter(|l| l.level <= floor) {
            if tx.send(Event::default().data(l.text.as_str())).is_err() {
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
                Ok(l) if l.level <= floor => Event::default().data(l.text.as_str()),
                Ok(_) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    Event::default().event("lagged").data(n.to_string())
                }
                Err(_) => return,
            };
            if tx.send(event).is_err() {
                return;
            }
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

async fn sessions_page(
    State(c): State<Arc<Console>>,
    Extension(s): Extension<Session>,
    Query(f): Query<Flash>,
) -> Response {
    let mut page = c.page(&s, "Sessions and callers", "sessions");
    page.flash = f.flash;
    ok_page(&SessionsView::new(page, c.ops()))
}

#[derive(Deserialize)]
struct EndForm {
    session: String,
}

async fn end_session(State(c): State<Arc<Console>>, Form(form): Form<EndForm>) -> Response {
    match c.ops().end_session(&form.session).await {
        Ok(_) => see_other("/ui/sessions", "Session ended."),
        Err(p) => see_other("/ui/sessions", &p.message),
    }
}
