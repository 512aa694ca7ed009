//! The generated bindings of the `switchyard:plugin` world, the store data
//! every plugin instance gets, and the host side of its imports. Generated
//! types stay in this module: the rest of the host sees [`super::Hook`]'s
//! own types.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::fetch::Fetcher;
use super::kv::Namespace;
use crate::config::Grants;

wasmtime::component::bindgen!({
    world: "plugin",
    path: "../wit",
    imports: { "switchyard:plugin/fetch.get": async },
    exports: { default: async },
});

pub use self::exports::switchyard::plugin::handler;
pub use self::switchyard::plugin::types;

/// Request-scoped scratch space of one plugin instance.
pub type Scratch = Arc<Mutex<HashMap<String, Vec<u8>>>>;

/// What a store carries: WASI state (deny-all unless granted), the memory
/// cap, and the plugin instance's services.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub limits: StoreLimits,
    /// The plugin instance's name, for logs and metrics.
    pub plugin: Arc<str>,
    pub kv: Arc<Namespace>,
    /// The current request's scratch space; set before every hook call.
    pub scratch: Option<Scratch>,
    /// Epoch ticks the current call may still run for.
    pub ticks_left: u64,
    /// What the operator granted (the `fetch` import checks URLs).
    pub grants: Arc<Grants>,
    pub fetcher: Arc<Fetcher>,
}

impl HostState {
    pub fn new(
        wasi: WasiCtx,
        limits: StoreLimits,
        plugin: Arc<str>,
        kv: Arc<Namespace>,
        grants: Arc<Grants>,
        fetcher: Arc<Fetcher>,
    ) -> Self {
        Self {
            wasi,
            table: ResourceTable::new(),
            limits,
            plugin,
            kv,
            scratch: None,
            ticks_left: 0,
            grants,
            fetcher,
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

fn ttl(ms: Option<u64>) -> Option<Duration> {
    ms.map(Duration::from_millis)
}

impl self::switchyard::plugin::kv::Host for HostState {
    fn get(&mut self, key: String) -> Option<Vec<u8>> {
        self.kv.get(&key)
    }

    fn set(&mut self, key: String, value: Vec<u8>, ttl_ms: Option<u64>) {
        self.kv.set(&key, value, ttl(ttl_ms));
    }

    fn delete(&mut self, key: String) -> bool {
        self.kv.delete(&key)
    }

    fn increment(&mut self, key: String, delta: i64, ttl_ms: Option<u64>) -> Result<i64, String> {
        self.kv.increment(&key, delta, ttl(ttl_ms))
    }

    fn compare_and_swap(
        &mut self,
        key: String,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> bool {
        self.kv
            .compare_and_swap(&key, expected.as_deref(), value, ttl(ttl_ms))
    }
}

impl self::switchyard::plugin::scratch::Host for HostState {
    fn get(&mut self, key: String) -> Option<Vec<u8>> {
        let s = self.scratch.as_ref()?;
        s.lock().expect("scratch lock").get(&key).cloned()
    }

    fn set(&mut self, key: String, value: Vec<u8>) {
        if let Some(s) = &self.scratch {
            s.lock().expect("scratch lock").insert(key, value);
        }
    }
}

impl self::switchyard::plugin::log::Host for HostState {
    fn log(
        &mut self,
        level: self::switchyard::plugin::log::Level,
        message: String,
        fields: Vec<(String, String)>,
    ) {
        use self::switchyard::plugin::log::Level;
        let plugin = &*self.plugin;
        let fields = FieldList(&fields);
        match level {
            Level::Trace => tracing::trace!(plugin, %fields, "{message}"),
            Level::Debug => tracing::debug!(plugin, %fields, "{message}"),
            Level::Info => tracing::info!(plugin, %fields, "{message}"),
            Level::Warn => tracing::warn!(plugin, %fields, "{message}"),
            Level::Error => tracing::error!(plugin, %fields, "{message}"),
        }
    }
}

/// `k=v k=v` for a log line.
struct FieldList<'a>(&'a [(String, String)]);

impl std::fmt::Display for FieldList<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{k}={v:?}")?;
        }
        Ok(())
    }
}

fn labels(plugin: &str, labels: Vec<(String, String)>) -> Vec<metrics::Label> {
    std::iter::once(metrics::Label::new("plugin", plugin.to_owned()))
        .chain(labels.into_iter().map(|(k, v)| metrics::Label::new(k, v)))
        .collect()
}

impl self::switchyard::plugin::metrics::Host for HostState {
    fn counter_add(&mut self, name: String, delta: u64, l: Vec<(String, String)>) {
        metrics::counter!(format!("switchyard_plugin_{name}"), labels(&self.plugin, l))
            .increment(delta);
    }

    fn histogram_record(&mut self, name: String, value: f64, l: Vec<(String, String)>) {
        metrics::histogram!(format!("switchyard_plugin_{name}"), labels(&self.plugin, l))
            .record(value);
    }
}

impl self::switchyard::plugin::fetch::Host for HostState {
    async fn get(&mut self, url: String) -> Result<String, String> {
        if !self.grants.allows_url(&url) {
            return Err(format!(
                "{url} is not granted to plugin `{}` (grants.urls)",
                self.plugin
            ));
        }
        self.fetcher.get(&url).await
    }
}

impl self::switchyard::plugin::types::Host for HostState {}
