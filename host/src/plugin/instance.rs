//! One loaded plugin instance (a `[plugins.NAME]` entry at one version):
//! its compiled, pre-instantiated component, what it asked to see, and its
//! warm instances.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Store, StoreLimitsBuilder, UpdateDeadline};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use super::bindings::{self, HostState, Scratch, types};
use super::engine::PluginEngine;
use super::fetch::Fetcher;
use super::kv::Namespace;
use crate::config::{Isolation, PluginName, PluginSpec};

/// Warm instances kept per pooled plugin. More than the worker threads
/// (calls in flight at once are bounded by them), few enough to be cheap
/// (~60 KiB resident each for a small Rust plugin).
const MAX_IDLE: usize = 16;

/// What a plugin asked to see (its `describe`, checked).
#[derive(Debug, Clone, PartialEq)]
pub struct Interest {
    pub name: String,
    pub version: String,
    pub on_request: bool,
    pub on_response: bool,
    pub on_notification: bool,
    /// Exact method names or `prefix*`; empty means all.
    pub methods: Vec<String>,
    /// Lower-case request header names passed in the context.
    pub headers: Vec<String>,
    /// Documents served at `/.well-known/{name}{route}`.
    pub well_known: Vec<(String, serde_json::Value)>,
}

impl Interest {
    /// Whether the plugin wants to see `method`.
    pub fn wants(&self, method: &str) -> bool {
        self.methods.is_empty()
            || self.methods.iter().any(|m| match m.strip_suffix('*') {
                Some(prefix) => method.starts_with(prefix),
                None => m == method,
            })
    }

    fn from_description(d: types::Description) -> Result<Self, String> {
        if let Some(m) = d
            .methods
            .iter()
            .find(|m| m.is_empty() || m[..m.len() - 1].contains('*'))
        {
            return Err(format!(
                "describe: method pattern `{m}` must be a name or a prefix ending in `*`"
            ));
        }
        let mut headers = Vec::with_capacity(d.headers.len());
        for h in d.headers {
            let lower = h.to_ascii_lowercase();
            if axum::http::HeaderName::from_bytes(lower.as_bytes()).is_err() {
                return Err(format!("describe: `{h}` is not a header name"));
            }
            headers.push(lower);
        }
        let mut well_known = Vec::with_capacity(d.well_known.len());
        for (name, doc) in d.well_known {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                return Err(format!(
                    "describe: well-known name `{name}` must be lower-case letters, digits and `-`"
                ));
            }
            let doc = serde_json::from_str(&doc)
                .map_err(|e| format!("describe: well-known `{name}` is not JSON: {e}"))?;
            well_known.push((name, doc));
        }
        Ok(Self {
            well_known,
            name: d.name,
            version: d.version,
            on_request: d.hooks.contains(types::Hooks::ON_REQUEST),
            on_response: d.hooks.contains(types::Hooks::ON_RESPONSE),
            on_notification: d.hooks.contains(types::Hooks::ON_NOTIFICATION),
            methods: d.methods,
            headers,
        })
    }
}

/// Why one call into a plugin failed. The plugin is at fault in every case;
/// the gateway is unaffected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Fault {
    #[error("did not finish within {0:?}")]
    Timeout(Duration),
    #[error("exceeded its memory cap of {0} MiB")]
    Memory(usize),
    #[error("trapped: {0}")]
    Trap(String),
    #[error("returned malformed output: {0}")]
    Malformed(String),
    #[error("refused its configuration: {0}")]
    Configure(String),
}

/// One call, with its arguments.
pub enum Call<'a> {
    Request {
        ctx: &'a types::Context,
        params: Option<&'a String>,
    },
    Response {
        ctx: &'a types::Context,
        params: Option<&'a String>,
        outcome: &'a Result<String, types::RpcError>,
    },
    Notification(&'a types::Notification),
}

/// What the plugin answered.
pub enum Answer {
    Request(types::RequestDecision),
    Response(types::ResponseDecision),
    Notification(types::NotificationDecision),
}

/// A live instance with its store.
struct Warm {
    store: Store<HostState>,
    plugin: bindings::Plugin,
}

/// A plugin instance at one version, ready to call.
pub struct Loaded {
    pub spec: PluginSpec,
    /// SHA-256 of the component bytes.
    pub digest: [u8; 32],
    pub interest: Interest,
    engine: PluginEngine,
    pre: bindings::PluginPre<HostState>,
    kv: Arc<Namespace>,
    grants: Arc<crate::config::Grants>,
    fetcher: Arc<Fetcher>,
    /// The configuration, as JSON text, handed to every new instance.
    config: String,
    /// The name shared by every store (logs, metrics).
    label: Arc<str>,
    idle: Mutex<Vec<Warm>>,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("name", &self.spec.name)
            .field("interest", &self.interest)
            .finish_non_exhaustive()
    }
}

impl Loaded {
    /// Compiles (on a blocking thread), links, type-checks against the
    /// world, then configures and describes a first instance. Any failure is
    /// the reason the plugin is refused.
    pub async fn load(
        engine: &PluginEngine,
        spec: PluginSpec,
        bytes: Arc<[u8]>,
        kv: Arc<Namespace>,
        digest: [u8; 32],
        fetcher: Arc<Fetcher>,
    ) -> Result<Self, String> {
        let compiling = engine.clone();
        let component = tokio::task::spawn_blocking(move || compiling.compile(&bytes))
            .await
            .map_err(|e| format!("compilation did not finish: {e}"))?
            .map_err(|e| format!("not a valid WebAssembly component: {e:#}"))?;
        let mut linker = Linker::<HostState>::new(engine.engine());
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| format!("{e:#}"))?;
        bindings::Plugin::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(|e| format!("{e:#}"))?;
        let instance_pre = linker.instantiate_pre(&component).map_err(|e| {
            format!("does not fit the switchyard:plugin@0.1.0 world (imports): {e:#}")
        })?;
        let pre = bindings::PluginPre::new(instance_pre).map_err(|e| {
            format!("does not fit the switchyard:plugin@0.1.0 world (exports): {e:#}")
        })?;
        let config = spec.config.to_string();
        let label: Arc<str> = spec.name.as_str().into();
        let grants = Arc::new(spec.grants.clone());
        let mut loaded = Self {
            spec,
            digest,
            interest: Interest {
                name: String::new(),
                version: String::new(),
                on_request: false,
                on_response: false,
                on_notification: false,
                methods: Vec::new(),
                headers: Vec::new(),
                well_known: Vec::new(),
            },
            engine: engine.clone(),
            pre,
            kv,
            grants,
            fetcher,
            config,
            label,
            idle: Mutex::new(Vec::new()),
        };
        let mut warm = loaded.instantiate().await.map_err(|f| f.to_string())?;
        let description = warm
            .plugin
            .switchyard_plugin_handler()
            .call_describe(&mut warm.store)
            .await
            .map_err(|e| format!("describe failed: {}", loaded.classify(e)))?;
        loaded.interest = Interest::from_description(description)?;
        loaded.recycle(warm);
        Ok(loaded)
    }

    pub fn name(&self) -> &PluginName {
        &self.spec.name
    }

    /// A store for a new instance: WASI with only the granted capabilities,
    /// the memory cap, the epoch callback that enforces the deadline.
    fn store(&self) -> Result<Store<HostState>, Fault> {
        let mut wasi = WasiCtxBuilder::new();
        for (k, v) in &self.spec.grants.env {
            wasi.env(k, v);
        }
        for d in &self.spec.grants.dirs {
            let perms = if d.writable {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            wasi.preopened_dir(&d.host, &d.guest, perms)
                .map_err(|e| Fault::Trap(format!("granted directory {}: {e}", d.host.display())))?;
        }
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.spec.memory_bytes)
            .trap_on_grow_failure(true)
            .build();
        let state = HostState::new(
            wasi.build(),
            limits,
            Arc::clone(&self.label),
            Arc::clone(&self.kv),
            Arc::clone(&self.grants),
            Arc::clone(&self.fetcher),
        );
        let mut store = Store::new(self.engine.engine(), state);
        store.limiter(|s| &mut s.limits);
        // Each tick either yields to the executor (so a long call never
        // starves other tasks) or, once the budget is spent, traps.
        store.epoch_deadline_callback(|mut cx| {
            let s = cx.data_mut();
            if s.ticks_left == 0 {
                return Ok(UpdateDeadline::Interrupt);
            }
            s.ticks_left -= 1;
            Ok(UpdateDeadline::Yield(1))
        });
        Ok(store)
    }

    fn arm(&self, store: &mut Store<HostState>) {
        store.data_mut().ticks_left = PluginEngine::ticks(self.spec.timeout);
        store.set_epoch_deadline(1);
    }

    /// A new instance, configured.
    async fn instantiate(&self) -> Result<Warm, Fault> {
        let mut store = self.store()?;
        self.arm(&mut store);
        let plugin = self
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| self.classify(e))?;
        plugin
            .switchyard_plugin_handler()
            .call_configure(&mut store, &self.config)
            .await
            .map_err(|e| self.classify(e))?
            .map_err(Fault::Configure)?;
        Ok(Warm { store, plugin })
    }

    fn recycle(&self, warm: Warm) {
        if self.spec.isolation == Isolation::Pooled {
            let mut idle = self.idle.lock().expect("idle lock");
            if idle.len() < MAX_IDLE {
                idle.push(warm);
            }
        }
    }

    /// Calls one hook, in a warm instance (pooled) or a new one (fresh).
    /// An instance that failed in any way is discarded.
    pub async fn invoke(&self, call: Call<'_>, scratch: &Scratch) -> Result<Answer, Fault> {
        let hook = match call {
            Call::Request { .. } => "on-request",
            Call::Response { .. } => "on-response",
            Call::Notification(_) => "on-notification",
        };
        let started = std::time::Instant::now();
        let span = tracing::debug_span!(
            target: crate::telemetry::TRACE_TARGET,
            "plugin.hook",
            otel.name = %format!("plugin {} {hook}", self.spec.name),
            plugin = self.spec.name.as_str(),
            hook,
        );
        let answer = tracing::Instrument::instrument(self.invoke_timed(call, scratch), span).await;
        metrics::histogram!(
            "switchyard_plugin_hook_duration_seconds",
            "plugin" => self.spec.name.as_str().to_owned(),
            "hook" => hook,
        )
        .record(started.elapsed().as_secs_f64());
        answer
    }

    async fn invoke_timed(&self, call: Call<'_>, scratch: &Scratch) -> Result<Answer, Fault> {
        let idle = match self.spec.isolation {
            Isolation::Pooled => self.idle.lock().expect("idle lock").pop(),
            Isolation::Fresh => None,
        };
        let mut warm = match idle {
            Some(w) => w,
            None => self.instantiate().await?,
        };
        self.arm(&mut warm.store);
        warm.store.data_mut().scratch = Some(Arc::clone(scratch));
        let handler = warm.plugin.switchyard_plugin_handler();
        let store = &mut warm.store;
        let answer = match call {
            Call::Request { ctx, params } => handler
                .call_on_request(&mut *store, ctx, params)
                .await
                .map(Answer::Request),
            Call::Response {
                ctx,
                params,
                outcome,
            } => {
                let outcome = match outcome {
                    Ok(s) => Ok(s),
                    Err(e) => Err(e),
                };
                handler
                    .call_on_response(&mut *store, ctx, params, outcome)
                    .await
                    .map(Answer::Response)
            }
            Call::Notification(n) => handler
                .call_on_notification(&mut *store, n)
                .await
                .map(Answer::Notification),
        }
        .map_err(|e| self.classify(e))?;
        warm.store.data_mut().scratch = None;
        self.recycle(warm);
        Ok(answer)
    }

    /// Names what went wrong in a call.
    fn classify(&self, e: wasmtime::Error) -> Fault {
        if e.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt) {
            return Fault::Timeout(self.spec.timeout);
        }
        let text = format!("{e:#}");
        if text.contains("forcing trap when growing memory") {
            return Fault::Memory(self.spec.memory_bytes / (1024 * 1024));
        }
        Fault::Trap(text.lines().next().unwrap_or_default().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interest(methods: &[&str]) -> Interest {
        Interest {
            name: "t".into(),
            version: "0".into(),
            on_request: true,
            on_response: false,
            on_notification: false,
            methods: methods.iter().map(|m| m.to_string()).collect(),
            headers: Vec::new(),
            well_known: Vec::new(),
        }
    }

    #[test]
    fn methods_match_exactly_or_by_prefix() {
        assert!(interest(&[]).wants("anything"));
        let i = interest(&["tools/call", "resources/*"]);
        assert!(i.wants("tools/call"));
        assert!(i.wants("resources/read"));
        assert!(!i.wants("tools/list"));
        assert!(!i.wants("tools/call2"));
    }
}
