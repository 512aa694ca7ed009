//! The plugin chain: policy as WebAssembly components behind the
//! `switchyard:plugin@0.1.0` WIT world (`wit/`).
//!
//! The principal types:
//! - [`Plugins`]: every configured plugin instance, loaded (compiled,
//!   linked, configured, described) before the gateway serves, plus the
//!   key-value store their `kv` imports share;
//! - [`Chain`]: a route's plugins in order, with the order rule and failure
//!   modes (see [`chain`]);
//! - [`Loaded`]: one plugin instance at one version: its pre-instantiated
//!   component, its [`Interest`] (hooks, methods, headers) and warm instances;
//! - [`engine::PluginEngine`]: wasmtime narrowed to what we use.
//!
//! To add a hook: 1. the WIT (`wit/handler.wit`) 2. [`instance::Call`] and
//! [`instance::Answer`] 3. the phase in [`chain`] 4. the SDK's `Plugin`
//! trait 5. a fixture plugin and an end-to-end test.

pub mod bindings;
pub mod builtin;
pub mod chain;
pub mod engine;
pub mod fetch;
pub mod instance;
pub mod kv;

use std::collections::HashMap;
use std::sync::Arc;

pub use chain::{Chain, Decision, Facts, Outcome, Passage, Refusal};
pub use instance::{Fault, Interest, Loaded};

use crate::config::{ComponentSource, PluginName, PluginSpec};

/// The SHA-256 of a component's bytes: what "the component changed" means.
fn digest(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// Why a plugin instance could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("plugin `{plugin}` ({component}): {reason}")]
pub struct LoadError {
    pub plugin: PluginName,
    pub component: ComponentSource,
    pub reason: String,
}

/// Every loaded plugin instance, by name.
#[derive(Debug, Default)]
pub struct Plugins {
    loaded: HashMap<PluginName, Arc<Loaded>>,
    kv: Arc<kv::KvStore>,
    fetcher: Arc<fetch::Fetcher>,
}

impl Plugins {
    /// Loads every plugin instance; the first that fails is the error.
    pub async fn load(specs: &[PluginSpec]) -> Result<Self, LoadError> {
        let mut plugins = Self::default();
        for spec in specs {
            let loaded = plugins.load_one(spec.clone()).await?;
            plugins.loaded.insert(spec.name.clone(), Arc::new(loaded));
        }
        Ok(plugins)
    }

    /// The next set for `specs`, for a hot swap: an instance whose spec and
    /// component bytes are unchanged is kept as it is (warm instances
    /// included); a changed or new one is loaded (compiled off the request
    /// path, configured, described). The first failure refuses the whole set,
    /// so a half-applied change never serves. Returns the names that changed.
    pub async fn reload(
        &self,
        specs: &[PluginSpec],
    ) -> Result<(Plugins, Vec<PluginName>), LoadError> {
        let mut next = Plugins {
            loaded: HashMap::new(),
            kv: Arc::clone(&self.kv),
            fetcher: Arc::clone(&self.fetcher),
        };
        let mut changed = Vec::new();
        for spec in specs {
            let bytes = self.read(spec)?;
            let digest = digest(&bytes);
            match self.loaded.get(&spec.name) {
                Some(old) if old.spec == *spec && old.digest == digest => {
                    next.loaded.insert(spec.name.clone(), Arc::clone(old));
                }
                _ => {
                    let loaded = self.load_bytes(spec.clone(), bytes, digest).await?;
                    next.loaded.insert(spec.name.clone(), Arc::new(loaded));
                    changed.push(spec.name.clone());
                }
            }
        }
        changed.extend(
            self.loaded
                .keys()
                .filter(|n| !next.loaded.contains_key(*n))
                .cloned(),
        );
        Ok((next, changed))
    }

    /// The component files the instances were loaded from (to watch them).
    pub fn files(&self) -> Vec<std::path::PathBuf> {
        self.loaded
            .values()
            .filter_map(|l| match &l.spec.component {
                ComponentSource::File(p) => Some(p.clone()),
                ComponentSource::Builtin(_) => None,
            })
            .collect()
    }

    fn read(&self, spec: &PluginSpec) -> Result<Arc<[u8]>, LoadError> {
        let fail = |reason: String| LoadError {
            plugin: spec.name.clone(),
            component: spec.component.clone(),
            reason,
        };
        Ok(match &spec.component {
            ComponentSource::File(path) => std::fs::read(path)
                .map_err(|e| fail(format!("cannot read the component: {e}")))?
                .into(),
            ComponentSource::Builtin(name) => builtin::get(name)
                .ok_or_else(|| {
                    fail(format!(
                        "no built-in plugin has this name (built in: {})",
                        builtin::names().join(", ")
                    ))
                })?
                .into(),
        })
    }

    /// Loads one plugin instance (its kv namespace is shared with any
    /// earlier version of it).
    pub async fn load_one(&self, spec: PluginSpec) -> Result<Loaded, LoadError> {
        let bytes = self.read(&spec)?;
        let digest = digest(&bytes);
        self.load_bytes(spec, bytes, digest).await
    }

    async fn load_bytes(
        &self,
        spec: PluginSpec,
        bytes: Arc<[u8]>,
        digest: [u8; 32],
    ) -> Result<Loaded, LoadError> {
        let fail = |reason: String| LoadError {
            plugin: spec.name.clone(),
            component: spec.component.clone(),
            reason,
        };
        let engine = engine::shared().map_err(|e| fail(e.to_string()))?;
        let kv = self.kv.namespace(spec.name.as_str());
        Loaded::load(
            &engine,
            spec.clone(),
            bytes,
            kv,
            digest,
            Arc::clone(&self.fetcher),
        )
        .await
        .map_err(fail)
    }

    pub fn get(&self, name: &PluginName) -> Option<&Arc<Loaded>> {
        self.loaded.get(name)
    }

    /// The chain for these names (names were validated against the config,
    /// so a missing one is a bug; it is skipped rather than crash).
    pub fn chain(&self, names: &[PluginName]) -> Chain {
        Chain::new(
            names
                .iter()
                .filter_map(|n| self.loaded.get(n).cloned())
                .collect(),
        )
    }
}
