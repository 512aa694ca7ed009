//! wasmtime, narrowed to what Switchyard uses: the component model with
//! async calls, epoch deadlines, memory caps, the pooling allocator and the
//! on-disk compilation cache. Nothing else touches `wasmtime::Config`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::{Cache, CacheConfig, Config, Enabled, Engine, InstanceAllocationStrategy};
use wasmtime::{PoolingAllocationConfig, component::Component};

use crate::config::MAX_PLUGIN_MEMORY_MB;

/// How often the epoch advances. A hook's deadline is a number of these
/// ticks, so a runaway plugin is stopped within one tick past its budget.
pub const TICK: Duration = Duration::from_millis(5);

/// Hook calls that may run at once across every plugin: the pool's bound on
/// live instances. Pooled plugins keep a few idle instances each, fresh ones
/// hold one per call in flight; past this a call falls back to… nothing: it
/// fails with "out of instances", so the bound is generous.
const POOL_INSTANCES: u32 = 1000;

/// The process-wide engine, shared by every plugin version.
#[derive(Clone)]
pub struct PluginEngine {
    engine: Engine,
    /// Whether the pooling allocator is in use (else on-demand).
    pub pooled: bool,
}

impl std::fmt::Debug for PluginEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginEngine")
            .field("pooled", &self.pooled)
            .finish()
    }
}

impl PluginEngine {
    /// Builds the engine and starts its epoch ticker (a plain thread holding
    /// a weak reference: it stops when the last engine clone is dropped).
    pub fn new() -> anyhow::Result<Self> {
        let (engine, pooled) = match Engine::new(&config(true)?) {
            Ok(e) => (e, true),
            Err(e) => {
                // The pool reserves address space up front; some systems
                // (small virtual address spaces, strict overcommit) refuse.
                tracing::warn!(error = %e, "pooling allocator unavailable; instances are allocated on demand");
                (Engine::new(&config(false)?)?, false)
            }
        };
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("switchyard-epoch".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(TICK);
                    match weak.upgrade() {
                        Some(e) => e.increment_epoch(),
                        None => return,
                    }
                }
            })?;
        Ok(Self { engine, pooled })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compiles a component (or loads it from the compilation cache). Slow
    /// on a miss (hundreds of milliseconds): call it on a blocking thread.
    pub fn compile(&self, bytes: &[u8]) -> anyhow::Result<Component> {
        Ok(Component::new(&self.engine, bytes)?)
    }

    /// The number of epoch ticks that covers `budget`, plus one for the
    /// partial tick the call starts in.
    pub fn ticks(budget: Duration) -> u64 {
        budget.as_micros().div_ceil(TICK.as_micros()) as u64 + 1
    }
}

fn config(pooling: bool) -> anyhow::Result<Config> {
    let mut c = Config::new();
    c.wasm_component_model(true);
    c.epoch_interruption(true);
    if let Some(dir) = cache_dir() {
        let mut cc = CacheConfig::new();
        cc.with_directory(dir);
        match Cache::new(cc) {
            Ok(cache) => {
                c.cache(Some(cache));
            }
            Err(e) => tracing::warn!(error = %e, "wasmtime compilation cache disabled"),
        }
    }
    if pooling {
        let mut p = PoolingAllocationConfig::new();
        p.total_component_instances(POOL_INSTANCES)
            .total_core_instances(POOL_INSTANCES * 4)
            .total_memories(POOL_INSTANCES)
            .total_tables(POOL_INSTANCES * 4)
            .total_stacks(POOL_INSTANCES)
            .max_memory_size((MAX_PLUGIN_MEMORY_MB * 1024 * 1024) as usize)
            // Keeping a recycled slot's first pages resident saves the
            // page faults of a fresh instance (measured: 97 → 66 µs per
            // instantiate-call-drop cycle).
            .linear_memory_keep_resident(2 * 1024 * 1024)
            .table_keep_resident(256 * 1024)
            .pagemap_scan(Enabled::Auto);
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(p));
    }
    Ok(c)
}

/// Where compiled components are cached between runs:
/// `$SWITCHYARD_CACHE_DIR`, else `$XDG_CACHE_HOME/switchyard/wasmtime`,
/// else `~/.cache/switchyard/wasmtime`. None if none can be named.
fn cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("SWITCHYARD_CACHE_DIR") {
        return Some(PathBuf::from(d).join("wasmtime"));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("switchyard").join("wasmtime"))
}

/// One engine per process, made on first use (a gateway without plugins
/// never starts the ticker or reserves the pool).
pub fn shared() -> anyhow::Result<PluginEngine> {
    static ENGINE: std::sync::OnceLock<Result<PluginEngine, Arc<anyhow::Error>>> =
        std::sync::OnceLock::new();
    ENGINE
        .get_or_init(|| PluginEngine::new().map_err(Arc::new))
        .clone()
        .map_err(|e| anyhow::anyhow!("the WebAssembly engine could not start: {e:#}"))
}
