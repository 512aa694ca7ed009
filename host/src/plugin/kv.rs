//! The key-value store behind the `kv` import: one namespace per plugin
//! instance, in memory, with per-key TTL, atomic increment and
//! compare-and-swap.
//!
//! Written by hand rather than on a cache crate: increment and
//! compare-and-swap need an atomic read-modify-write with a per-key expiry
//! that the first write sets and later increments keep, which is a few lines
//! over a locked map and awkward through a cache's entry API. The store lives
//! in the gateway, not in a plugin version, so a hot swap keeps it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// Every namespace.
#[derive(Debug, Default)]
pub struct KvStore {
    namespaces: Mutex<HashMap<String, Arc<Namespace>>>,
}

impl KvStore {
    /// The namespace of one plugin instance (made on first use).
    pub fn namespace(&self, name: &str) -> Arc<Namespace> {
        let mut all = self.namespaces.lock().expect("kv namespaces lock");
        Arc::clone(all.entry(name.to_owned()).or_default())
    }
}

/// One plugin instance's keys.
#[derive(Debug, Default)]
pub struct Namespace {
    entries: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    map: HashMap<String, Entry>,
    /// Writes since the last sweep of expired keys.
    writes: u32,
}

#[derive(Debug)]
struct Entry {
    value: Vec<u8>,
    expires: Option<Instant>,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|t| t > now)
    }
}

/// Expired keys are dropped on access, and all of them every this many
/// writes, so a plugin that writes many short-lived keys does not grow the
/// map without bound.
const SWEEP_EVERY: u32 = 1024;

impl Entries {
    fn live(&mut self, key: &str, now: Instant) -> Option<&mut Entry> {
        if self.map.get(key).is_some_and(|e| !e.live(now)) {
            self.map.remove(key);
        }
        self.map.get_mut(key)
    }

    fn wrote(&mut self, now: Instant) {
        self.writes += 1;
        if self.writes >= SWEEP_EVERY {
            self.writes = 0;
            self.map.retain(|_, e| e.live(now));
        }
    }
}

fn expiry(now: Instant, ttl: Option<Duration>) -> Option<Instant> {
    ttl.map(|t| now + t)
}

impl Namespace {
    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().expect("kv lock")
    }

    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let now = Instant::now();
        self.lock().live(key, now).map(|e| e.value.clone())
    }

    pub fn set(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) {
        let now = Instant::now();
        let mut g = self.lock();
        g.map.insert(
            key.to_owned(),
            Entry {
                value,
                expires: expiry(now, ttl),
            },
        );
        g.wrote(now);
    }

    pub fn delete(&self, key: &str) -> bool {
        let now = Instant::now();
        let mut g = self.lock();
        let present = g.live(key, now).is_some();
        g.map.remove(key);
        present
    }

    /// Adds to the counter (decimal ASCII text of an i64); an absent key
    /// starts at 0 with `ttl`, a present one keeps its expiry.
    pub fn increment(&self, key: &str, delta: i64, ttl: Option<Duration>) -> Result<i64, String> {
        let now = Instant::now();
        let mut g = self.lock();
        let next = match g.live(key, now) {
            Some(e) => {
                let current: i64 = std::str::from_utf8(&e.value)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| format!("the value under `{key}` is not a counter"))?;
                let next = current
                    .checked_add(delta)
                    .ok_or_else(|| format!("the counter under `{key}` would overflow"))?;
                e.value = next.to_string().into_bytes();
                next
            }
            None => {
                g.map.insert(
                    key.to_owned(),
                    Entry {
                        value: delta.to_string().into_bytes(),
                        expires: expiry(now, ttl),
                    },
                );
                delta
            }
        };
        g.wrote(now);
        Ok(next)
    }

    /// Stores `value` if the current value is `expected` (`None`: absent).
    pub fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> bool {
        let now = Instant::now();
        let mut g = self.lock();
        let current = g.live(key, now).map(|e| e.value.as_slice());
        if current != expected {
            return false;
        }
        g.map.insert(
            key.to_owned(),
            Entry {
                value,
                expires: expiry(now, ttl),
            },
        );
        g.wrote(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn ttl_counts_from_the_write_and_increment_keeps_it() {
        let ns = Namespace::default();
        assert_eq!(ns.increment("n", 2, Some(Duration::from_secs(10))), Ok(2));
        tokio::time::advance(Duration::from_secs(6)).await;
        // An existing counter keeps its first expiry, whatever ttl is passed.
        assert_eq!(ns.increment("n", 3, Some(Duration::from_secs(60))), Ok(5));
        assert_eq!(ns.get("n"), Some(b"5".to_vec()));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(ns.get("n"), None);
        assert_eq!(ns.increment("n", 1, None), Ok(1));
    }

    #[tokio::test(start_paused = true)]
    async fn compare_and_swap_matches_absent_and_present_values() {
        let ns = Namespace::default();
        assert!(ns.compare_and_swap("k", None, b"a".to_vec(), None));
        assert!(!ns.compare_and_swap("k", None, b"b".to_vec(), None));
        assert!(!ns.compare_and_swap("k", Some(b"x"), b"b".to_vec(), None));
        assert!(ns.compare_and_swap("k", Some(b"a"), b"b".to_vec(), Some(Duration::from_secs(1))));
        assert_eq!(ns.get("k"), Some(b"b".to_vec()));
        tokio::time::advance(Duration::from_secs(2)).await;
        // Expired reads as absent, for CAS too.
        assert!(ns.compare_and_swap("k", None, b"c".to_vec(), None));
        assert!(ns.delete("k"));
        assert!(!ns.delete("k"));
    }

    #[test]
    fn increment_refuses_a_value_that_is_not_a_counter() {
        let ns = Namespace::default();
        ns.set("k", b"hello".to_vec(), None);
        assert!(
            ns.increment("k", 1, None)
                .unwrap_err()
                .contains("not a counter")
        );
        ns.set("m", i64::MAX.to_string().into_bytes(), None);
        assert!(ns.increment("m", 1, None).unwrap_err().contains("overflow"));
    }

    #[test]
    fn namespaces_do_not_share_keys() {
        let store = KvStore::default();
        store.namespace("a").set("k", b"1".to_vec(), None);
        assert_eq!(store.namespace("b").get("k"), None);
        assert_eq!(store.namespace("a").get("k"), Some(b"1".to_vec()));
    }
}
