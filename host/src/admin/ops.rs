//! What an operator can do to a running gateway, decided in one place: the
//! admin API (JSON over HTTP) and the console (`/ui/`, HTML forms) are two
//! clients of these operations, and neither does more than translate.
//!
//! A change is validated against the configuration in force, applied by
//! difference ([`Gateway::apply`]: a plugin that does not load changes
//! nothing), then recorded in the state file (`[admin] state_file`), which
//! the config loader lays over the file at every load: a restart, or a
//! change of the config file, keeps it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::config::{
    self, Config, ConfigError, PluginName, RawOverlay, RawPlugin, RawUpstream, UpstreamName,
};
use crate::pipeline::{ClientCtx, Gateway, Inbound, Reconfigured};
use crate::server::ServerState;
use crate::upstream::{Upstream, UpstreamReport};

/// Why an operation was refused: an HTTP status, a message, and (for a
/// configuration value) the key it concerns, so a form can show the message
/// beside its field.
#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    pub message: String,
    /// `upstreams.NAME.command` and the like, when one key is at fault.
    pub key: Option<String>,
}

impl Problem {
    /// (The message is redacted: no secret value reaches a client.)
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        let message = message.into();
        Problem {
            status,
            message: crate::secrets::redact(&message).into_owned(),
            key: None,
        }
    }

    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    fn internal(e: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }

    fn config(e: ConfigError) -> Self {
        let key = match &e {
            ConfigError::Invalid { key, .. } => Some(key.clone()),
            ConfigError::Parse(_) => None,
        };
        Problem {
            key,
            ..Self::bad(e.to_string())
        }
    }
}

/// Start, stop or restart an upstream.
#[derive(Debug, Clone, Copy)]
pub enum Control {
    Start,
    Stop,
    Restart,
}

/// A tool call made from the console, and what came of it.
pub struct Tried {
    pub result: Result<Value, Value>,
    /// The upstream the call went to, when the gateway knew before calling.
    pub upstream: Option<String>,
    pub latency: Duration,
}

/// A legacy session or a recent modern caller, as the console lists them.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClientReport {
    pub route: String,
    /// `legacy` (a session) or `modern` (sessionless: one row per principal).
    pub era: &'static str,
    /// The session id (legacy only).
    pub session: Option<String>,
    /// For modern callers, a hash prefix of their `Authorization` header
    /// (`anonymous` without one); for sessions, the principal a plugin named.
    pub principal: String,
    pub protocol_version: Option<String>,
    pub age_seconds: u64,
    pub idle_seconds: u64,
    pub calls: u64,
}

/// The operations, over one gateway.
pub struct Ops {
    server: Arc<ServerState>,
    gateway: Arc<Gateway>,
    state_file: Option<PathBuf>,
    /// One change at a time (apply, then the state file).
    changing: tokio::sync::Mutex<()>,
    /// Client numbers of the console's calls (top bit set: the edge counts
    /// up from 1 and never gets there).
    next_client: std::sync::atomic::AtomicU64,
}

impl Ops {
    pub fn new(server: Arc<ServerState>, state_file: Option<PathBuf>) -> Self {
        Ops {
            gateway: Arc::clone(&server.gateway),
            server,
            state_file,
            changing: tokio::sync::Mutex::new(()),
            next_client: std::sync::atomic::AtomicU64::new(1 << 63),
        }
    }

    pub fn gateway(&self) -> &Arc<Gateway> {
        &self.gateway
    }

    pub fn persists(&self) -> bool {
        self.state_file.is_some()
    }

    pub fn upstream(&self, name: &str) -> Result<Arc<Upstream>, Problem> {
        UpstreamName::parse(name)
            .ok()
            .and_then(|n| self.gateway.upstreams().get(&n))
            .ok_or_else(|| Problem::new(StatusCode::NOT_FOUND, format!("no upstream `{name}`")))
    }

    pub fn reports(&self) -> Vec<UpstreamReport> {
        self.gateway.upstreams().reports()
    }

    /// Adds upstream `name`; refused (409) when it exists.
    pub async fn add_upstream(&self, name: &str, raw: RawUpstream) -> Result<Value, Problem> {
        if self.upstream(name).is_ok() {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                format!("upstream `{name}` exists (PUT replaces it)"),
            ));
        }
        self.change_upstream(name, Some(raw)).await
    }

    /// Adds or replaces upstream `name`.
    pub async fn put_upstream(&self, name: &str, raw: RawUpstream) -> Result<Value, Problem> {
        self.change_upstream(name, Some(raw)).await
    }

    pub async fn remove_upstream(&self, name: &str) -> Result<Value, Problem> {
        self.upstream(name)?;
        self.change_upstream(name, None).await
    }

    /// Adds, replaces (`Some`) or removes (`None`) an upstream.
    async fn change_upstream(
        &self,
        name: &str,
        raw: Option<RawUpstream>,
    ) -> Result<Value, Problem> {
        let _one = self.changing.lock().await;
        let current = self.gateway.config();
        let next = match &raw {
            Some(raw) => current.with_upstream(
                config::upstream_from_raw(name, raw, &current).map_err(Problem::config)?,
            ),
            None => {
                let uname = UpstreamName::parse(name).map_err(Problem::bad)?;
                current
                    .without_upstream(&uname)
                    .map_err(|e| Problem::new(StatusCode::CONFLICT, e))?
            }
        };
        let done = self.apply(&next).await?;
        self.persist(|o| match raw {
            Some(raw) => {
                o.removed.retain(|n| n != name);
                o.upstreams.insert(name.to_owned(), raw);
            }
            None => {
                o.upstreams.remove(name);
                if !o.removed.iter().any(|n| n == name) {
                    o.removed.push(name.to_owned());
                }
            }
        })?;
        let routes: Vec<&str> = next
            .routes
            .iter()
            .filter(|r| r.upstreams.iter().any(|u| u.as_str() == name))
            .map(|r| r.path.as_str())
            .collect();
        Ok(json!({"applied": summary(&done), "routes": routes, "persisted": self.persists()}))
    }

    pub fn control(&self, name: &str, what: Control) -> Result<UpstreamReport, Problem> {
        let up = self.upstream(name)?;
        tracing::info!(upstream = %name, action = ?what, "admin: upstream control");
        match what {
            Control::Start => up.start(),
            Control::Stop => up.halt(),
            Control::Restart => up.restart(),
        }
        Ok(up.report())
    }

    /// Every route with its upstreams and chain.
    pub fn routes(&self) -> Vec<Value> {
        self.gateway
            .config()
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
            .collect()
    }

    /// Replaces `route`'s chain with `plugins` (names of plugin instances),
    /// swapped atomically and kept in the state file.
    pub async fn set_chain(&self, route: &str, plugins: &[String]) -> Result<Value, Problem> {
        let _one = self.changing.lock().await;
        let mut next = self.gateway.config();
        let Some(at) = next.routes.iter().position(|r| r.path.as_str() == route) else {
            return Err(Problem::new(
                StatusCode::NOT_FOUND,
                format!("no route {route}"),
            ));
        };
        let mut chain = Vec::new();
        for p in plugins {
            let known = PluginName::parse(p)
                .ok()
                .filter(|n| next.plugins.iter().any(|s| &s.name == n));
            match known {
                Some(n) if !chain.contains(&n) => chain.push(n),
                Some(_) => return Err(Problem::bad(format!("`{p}` is listed twice"))),
                None => {
                    return Err(Problem::bad(format!(
                        "no plugin instance `{p}` (see [plugins.NAME])"
                    )));
                }
            }
        }
        next.routes[at].plugins = chain;
        let done = self.apply(&next).await?;
        self.persist(|o| {
            o.chains.insert(route.to_owned(), plugins.to_vec());
        })?;
        Ok(json!({"applied": summary(&done), "persisted": self.persists()}))
    }

    /// Forgets the chain swapped for `route`: the config file's comes back
    /// (the file is read again and applied).
    pub async fn reset_chain(&self, route: &str) -> Result<Value, Problem> {
        {
            let _one = self.changing.lock().await;
            if !self
                .gateway
                .config()
                .routes
                .iter()
                .any(|r| r.path.as_str() == route)
            {
                return Err(Problem::new(
                    StatusCode::NOT_FOUND,
                    format!("no route {route}"),
                ));
            }
            self.persist(|o| {
                o.chains.remove(route);
            })?;
        }
        self.reload().await
    }

    /// Adds or replaces plugin instance `name` (a component and its
    /// settings). Loaded before anything changes: a component that does not
    /// load is refused with its reason and every chain stays as it was.
    pub async fn put_plugin(&self, name: &str, raw: RawPlugin) -> Result<Value, Problem> {
        let _one = self.changing.lock().await;
        let mut next = self.gateway.config();
        let spec = config::plugin_from_raw(name, &raw, &next).map_err(Problem::config)?;
        match next.plugins.iter_mut().find(|p| p.name == spec.name) {
            Some(p) => *p = spec,
            None => next.plugins.push(spec),
        }
        let done = self.apply(&next).await?;
        self.persist(|o| {
            o.plugins.insert(name.to_owned(), raw);
        })?;
        Ok(json!({"applied": summary(&done), "persisted": self.persists()}))
    }

    /// Keeps an uploaded component beside the state file (by its hash) and
    /// returns its path, for a plugin table's `component`.
    pub fn store_component(&self, wasm: &[u8]) -> Result<PathBuf, Problem> {
        if !wasm.starts_with(b"\0asm") {
            return Err(Problem::bad(
                "not a WebAssembly component (no \\0asm header)",
            ));
        }
        let dir = match &self.state_file {
            Some(f) => f.with_extension("components"),
            None => std::env::temp_dir().join("switchyard-components"),
        };
        let hash: String = Sha256::digest(wasm)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let path = dir.join(format!("{hash}.wasm"));
        std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(&path, wasm))
            .map_err(|e| {
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("could not write {}: {e}", path.display()),
                )
            })?;
        Ok(path)
    }

    /// Reads the config file again (with the state file over it) and applies it.
    pub async fn reload(&self) -> Result<Value, Problem> {
        let path = self.config_path()?;
        let _one = self.changing.lock().await;
        let next = config::load(Some(&path)).map_err(Problem::config)?;
        let done = self.apply(&next).await?;
        Ok(json!({"applied": summary(&done)}))
    }

    /// The names in the secret store, and where it is.
    pub fn secrets(&self) -> Result<Value, Problem> {
        let store = self.secret_store()?;
        Ok(json!({
            "store": store.path().display().to_string(),
            "secrets": store.names().collect::<Vec<_>>(),
        }))
    }

    /// Sets secret `name` (never echoed), then reloads the configuration,
    /// so that an upstream whose settings name it restarts with the value.
    pub async fn set_secret(&self, name: &str, value: String) -> Result<Value, Problem> {
        {
            let _one = self.changing.lock().await;
            let mut store = self.secret_store()?;
            store
                .set(name, value)
                .map_err(|e| Problem::bad(e.to_string()))?;
            store.save().map_err(Problem::internal)?;
        }
        tracing::info!(secret = %name, "admin: secret set");
        self.after_secrets(name).await
    }

    /// Removes secret `name`; refused (409) while the configuration refers
    /// to it, which would then not load.
    pub async fn remove_secret(&self, name: &str) -> Result<Value, Problem> {
        {
            let _one = self.changing.lock().await;
            let mut store = self.secret_store()?;
            if !store.remove(name) {
                return Err(Problem::new(
                    StatusCode::NOT_FOUND,
                    format!("no secret `{name}`"),
                ));
            }
            if let Some(path) = self.gateway.config().source {
                let raw = config::load_raw(Some(&path)).map_err(Problem::config)?;
                let text = toml::to_string(&raw).unwrap_or_default();
                if text.contains(&format!("${{secret:{name}}}")) {
                    return Err(Problem::new(
                        StatusCode::CONFLICT,
                        format!(
                            "secret `{name}` is in use: the configuration refers to ${{secret:{name}}}"
                        ),
                    ));
                }
            }
            store.save().map_err(Problem::internal)?;
        }
        tracing::info!(secret = %name, "admin: secret removed");
        self.after_secrets(name).await
    }

    async fn after_secrets(&self, name: &str) -> Result<Value, Problem> {
        let applied = match self.gateway.config().source {
            Some(_) => self.reload().await?["applied"].take(),
            None => Value::Null,
        };
        Ok(json!({"secret": name, "applied": applied}))
    }

    fn secret_store(&self) -> Result<crate::secrets::Store, Problem> {
        config::open_secrets(&self.gateway.config().secrets).map_err(|e| {
            Problem::new(
                StatusCode::CONFLICT,
                format!("the secret store is not usable: {e}"),
            )
        })
    }

    /// The config file the gateway was started from.
    pub fn config_path(&self) -> Result<PathBuf, Problem> {
        self.gateway.config().source.ok_or_else(|| {
            Problem::new(
                StatusCode::CONFLICT,
                "the gateway was not started from a config file",
            )
        })
    }

    /// The config file's text as it is on disk.
    pub fn config_text(&self) -> Result<String, Problem> {
        let path = self.config_path()?;
        std::fs::read_to_string(&path).map_err(|e| {
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{}: {e}", path.display()),
            )
        })
    }

    /// Validates `text` as the config file (environment and state file
    /// included, as a load would), changing nothing.
    pub fn check_config(&self, text: &str) -> Result<Config, Problem> {
        let path = self.config_path()?;
        config::load_text(text, &path).map_err(Problem::config)
    }

    /// Replaces the config file with `text`, if it validates, and applies it.
    pub async fn write_config(&self, text: &str) -> Result<Value, Problem> {
        let path = self.config_path()?;
        let _one = self.changing.lock().await;
        let next = config::load_text(text, &path).map_err(Problem::config)?;
        write_atomically(&path, text)?;
        let done = self.apply(&next).await?;
        Ok(json!({"applied": summary(&done)}))
    }

    /// A fresh ctx for a call the operator makes from the console.
    pub fn operator(&self, principal: Option<String>, authorization: Option<&str>) -> ClientCtx {
        let client = self
            .next_client
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut inbound = Inbound::default();
        if let Some(v) = authorization.and_then(|a| a.parse().ok()) {
            inbound.headers.insert(axum::http::header::AUTHORIZATION, v);
        }
        ClientCtx::operator(client, principal, Some(Arc::new(inbound)))
    }

    /// `method` on `route` through its chain, as `ctx` (a list, a call).
    pub async fn call_as(
        &self,
        route: &str,
        ctx: &ClientCtx,
        method: &str,
        params: Option<Value>,
    ) -> Result<Tried, Problem> {
        let route = self
            .gateway
            .route(route)
            .ok_or_else(|| Problem::new(StatusCode::NOT_FOUND, format!("no route {route}")))?;
        let upstream = self
            .gateway
            .upstream_of(&route, method, params.as_ref())
            .map(|u| u.to_string());
        // The console answers no server request: its events are dropped.
        let (sink, _events) = tokio::sync::mpsc::unbounded_channel();
        let started = Instant::now();
        let result = self
            .gateway
            .handle(&route, ctx, method, params, &sink)
            .await
            .map_err(|f| f.error.to_value());
        Ok(Tried {
            result,
            upstream,
            latency: started.elapsed(),
        })
    }

    /// Open legacy sessions, then recent modern callers (most recent first).
    pub fn clients(&self) -> Vec<ClientReport> {
        let mut out: Vec<ClientReport> = self
            .server
            .sessions
            .all()
            .iter()
            .map(|s| {
                let ctx = s.ctx();
                ClientReport {
                    route: s.route.clone(),
                    era: "legacy",
                    session: Some(s.id.clone()),
                    principal: ctx.principal.unwrap_or_else(|| "anonymous".into()),
                    protocol_version: Some(ctx.protocol_version),
                    age_seconds: s.created.elapsed().as_secs(),
                    idle_seconds: s.idle_for().as_secs(),
                    calls: s.calls.load(std::sync::atomic::Ordering::Relaxed),
                }
            })
            .collect();
        out.sort_by_key(|c| c.idle_seconds);
        out.extend(
            self.server
                .callers
                .recent()
                .into_iter()
                .map(|(route, p, c)| ClientReport {
                    route,
                    era: "modern",
                    session: None,
                    principal: if p.is_empty() {
                        "anonymous".into()
                    } else {
                        format!("token {}…", &p[..p.len().min(12)])
                    },
                    protocol_version: None,
                    age_seconds: c.first.elapsed().as_secs(),
                    idle_seconds: c.last.elapsed().as_secs(),
                    calls: c.calls,
                }),
        );
        out
    }

    /// Ends legacy session `id`.
    pub async fn end_session(&self, id: &str) -> Result<Value, Problem> {
        if crate::server::close_session(&self.server, id).await {
            Ok(json!({"ended": id}))
        } else {
            Err(Problem::new(
                StatusCode::NOT_FOUND,
                format!("no session `{id}`"),
            ))
        }
    }

    async fn apply(&self, next: &Config) -> Result<Reconfigured, Problem> {
        self.gateway
            .apply(next)
            .await
            .map_err(|e| Problem::bad(e.to_string()))
    }

    /// Records a change in the state file (read, changed, written whole by
    /// rename). Without a state file, changes live until the next restart.
    fn persist(&self, change: impl FnOnce(&mut RawOverlay)) -> Result<(), Problem> {
        let Some(file) = &self.state_file else {
            return Ok(());
        };
        let failed = |e: String| {
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("applied, but could not be kept in {}: {e}", file.display()),
            )
        };
        let mut overlay = config::read_overlay(file).map_err(|e| failed(e.to_string()))?;
        change(&mut overlay);
        let text = format!(
            "# Written by the switchyard admin API and console: upstreams and plugin\n# instances added or changed through them (replacing the config file's tables\n# of the same name), names removed, and route chains swapped.\n\n{}",
            toml::to_string_pretty(&overlay).map_err(|e| failed(e.to_string()))?
        );
        write_atomically(file, &text).map_err(|p| failed(p.message))
    }
}

fn write_atomically(path: &Path, text: &str) -> Result<(), Problem> {
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("could not write {}: {e}", path.display()),
            )
        })
}

pub fn summary(done: &Reconfigured) -> Value {
    json!({
        "plugins": done.plugins.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
        "routes": done.routes,
        "routes_removed": done.routes_removed,
        "upstreams_added": done.upstreams_added,
        "upstreams_changed": done.upstreams_changed,
        "upstreams_removed": done.upstreams_removed,
    })
}
