//! The native stand-in for the gateway's services: an in-memory backend per
//! [`Harness`](crate::testing::Harness), installed in a thread-local while a
//! hook runs.
//!
//! Code that calls a service with no harness installed (a plain unit test
//! calling a hook directly, a doctest) uses the thread's default backend, so
//! tests running on different threads never share state.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use crate::log::Level;
use crate::testing::LogRecord;

/// A metric's identity: its name and its labels, sorted so that label order
/// does not matter.
pub(crate) type Series = (String, Vec<(String, String)>);

/// One key-value entry.
#[derive(Clone, Debug)]
struct Entry {
    value: Vec<u8>,
    /// When the entry stops existing; none for never.
    expires_at: Option<SystemTime>,
}

/// Everything a plugin can observe or change through the host imports.
#[derive(Debug)]
pub(crate) struct Backend {
    kv: HashMap<String, Entry>,
    pub(crate) scratch: HashMap<String, Vec<u8>>,
    /// A fixed time set by the test; none for the real clock.
    pub(crate) clock: Option<SystemTime>,
    pub(crate) logs: Vec<LogRecord>,
    pub(crate) counters: BTreeMap<Series, u64>,
    pub(crate) histograms: BTreeMap<Series, Vec<f64>>,
    /// The name and version the default description reports.
    pub(crate) package: (String, String),
    /// What `fetch::get` answers, by URL.
    pub(crate) fetches: HashMap<String, Result<String, String>>,
}

impl Backend {
    pub(crate) fn new() -> Backend {
        Backend {
            kv: HashMap::new(),
            scratch: HashMap::new(),
            clock: None,
            logs: Vec::new(),
            counters: BTreeMap::new(),
            histograms: BTreeMap::new(),
            package: crate::plugin::package::from_env(),
            fetches: HashMap::new(),
        }
    }

    pub(crate) fn now(&self) -> SystemTime {
        self.clock.unwrap_or_else(SystemTime::now)
    }

    /// When a write made now with `ttl_ms` expires.
    fn expiry(&self, ttl_ms: Option<u64>) -> Option<SystemTime> {
        ttl_ms.and_then(|ms| self.now().checked_add(Duration::from_millis(ms)))
    }

    /// The live entry under `key`, dropping it if it has expired.
    fn live(&mut self, key: &str) -> Option<&mut Entry> {
        let now = self.now();
        if self
            .kv
            .get(key)
            .and_then(|e| e.expires_at)
            .is_some_and(|at| now >= at)
        {
            self.kv.remove(key);
        }
        self.kv.get_mut(key)
    }

    pub(crate) fn kv_get(&mut self, key: &str) -> Option<Vec<u8>> {
        self.live(key).map(|e| e.value.clone())
    }

    pub(crate) fn kv_set(&mut self, key: &str, value: &[u8], ttl_ms: Option<u64>) {
        let expires_at = self.expiry(ttl_ms);
        self.kv.insert(
            key.to_string(),
            Entry {
                value: value.to_vec(),
                expires_at,
            },
        );
    }

    pub(crate) fn kv_delete(&mut self, key: &str) -> bool {
        self.live(key).is_some() && self.kv.remove(key).is_some()
    }

    pub(crate) fn kv_increment(
        &mut self,
        key: &str,
        delta: i64,
        ttl_ms: Option<u64>,
    ) -> Result<i64, String> {
        let Some(entry) = self.live(key) else {
            self.kv_set(key, delta.to_string().as_bytes(), ttl_ms);
            return Ok(delta);
        };
        let current = crate::kv::parse_counter(&entry.value).ok_or_else(|| {
            format!("the value under `{key}` is not a counter (decimal i64 text)")
        })?;
        let next = current.checked_add(delta).ok_or_else(|| {
            format!("the counter under `{key}` would overflow: {current} + {delta}")
        })?;
        entry.value = next.to_string().into_bytes();
        Ok(next)
    }

    pub(crate) fn kv_compare_and_swap(
        &mut self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
        ttl_ms: Option<u64>,
    ) -> bool {
        let current = self.live(key).map(|e| e.value.as_slice());
        if current != expected {
            return false;
        }
        self.kv_set(key, value, ttl_ms);
        true
    }

    pub(crate) fn log(&mut self, level: Level, message: &str, fields: &[(&str, &str)]) {
        self.logs.push(LogRecord {
            level,
            message: message.to_string(),
            fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        });
    }

    pub(crate) fn counter_add(&mut self, name: &str, delta: u64, labels: &[(&str, &str)]) {
        let total = self.counters.entry(series(name, labels)).or_default();
        *total = total.saturating_add(delta);
    }

    pub(crate) fn histogram_record(&mut self, name: &str, value: f64, labels: &[(&str, &str)]) {
        self.histograms
            .entry(series(name, labels))
            .or_default()
            .push(value);
    }
}

/// The identity of metric `name` with `labels`, labels sorted.
pub(crate) fn series(name: &str, labels: &[(&str, &str)]) -> Series {
    let mut labels: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    labels.sort();
    (name.to_string(), labels)
}

thread_local! {
    /// The backend of the harness whose hook is running, if any.
    static INSTALLED: RefCell<Option<Rc<RefCell<Backend>>>> = const { RefCell::new(None) };
    /// The backend used when no harness is installed.
    static DEFAULT: Rc<RefCell<Backend>> = Rc::new(RefCell::new(Backend::new()));
}

/// Runs `f` on the current backend: the installed harness's, else the
/// thread's default.
pub(crate) fn with<R>(f: impl FnOnce(&mut Backend) -> R) -> R {
    let backend = INSTALLED
        .with(|installed| installed.borrow().clone())
        .unwrap_or_else(|| DEFAULT.with(Rc::clone));
    let mut backend = backend.borrow_mut();
    f(&mut backend)
}

/// Installs `backend` until the guard drops, then restores what was there.
pub(crate) fn install(backend: &Rc<RefCell<Backend>>) -> Installed {
    let previous = INSTALLED.with(|installed| installed.replace(Some(Rc::clone(backend))));
    Installed { previous }
}

/// Restores the previously installed backend when dropped (also when a hook
/// panics, so one failing assertion does not leak state into the next test
/// on the thread).
pub(crate) struct Installed {
    previous: Option<Rc<RefCell<Backend>>>,
}

impl Drop for Installed {
    fn drop(&mut self) {
        let previous = self.previous.take();
        INSTALLED.with(|installed| *installed.borrow_mut() = previous);
    }
}
