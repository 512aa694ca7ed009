//! The gateway's key-value store, owned by one plugin instance (one
//! `[plugins.NAME]` entry): keys never collide with another instance's, and
//! values survive instance recycling and hot swaps.
//!
//! Every operation is atomic. A TTL counts from the write that set it (it is
//! sent in whole milliseconds, rounded up); an expired key reads as absent.
//!
//! **Counters** are stored as the decimal ASCII text of an `i64` (`"42"`,
//! `"-7"`, as `i64::to_string` writes it), so [`get`] on a counter returns
//! that text and [`set`] of such text makes a counter. [`increment`] reads
//! the stored bytes as UTF-8 and parses them with `str::parse::<i64>`; a
//! value that does not parse is not a counter, and incrementing it is an
//! error. The gateway stores counters the same way.
//!
//! In native tests the store is the [`Harness`](crate::testing::Harness)'s,
//! with its controllable clock.
//!
//! ```
//! use std::time::Duration;
//! use switchyard_sdk::kv;
//!
//! // A fixed-window rate limit: at most 10 calls per principal per minute.
//! let calls = kv::increment("calls:alice", 1, Some(Duration::from_secs(60))).unwrap();
//! assert_eq!(calls, 1);
//! assert_eq!(kv::get("calls:alice").as_deref(), Some(&b"1"[..]));
//! assert!(calls <= 10);
//! ```

use std::time::Duration;

/// The value under `key`, if present and not expired.
pub fn get(key: &str) -> Option<Vec<u8>> {
    imp::get(key)
}

/// Stores `value` under `key`, expiring `ttl` after this write if given
/// (none: never).
pub fn set(key: &str, value: &[u8], ttl: Option<Duration>) {
    imp::set(key, value, ttl_ms(ttl))
}

/// Removes `key`; true if it was present (and not expired).
pub fn delete(key: &str) -> bool {
    imp::delete(key)
}

/// Adds `delta` to the counter under `key` and returns the new value.
///
/// An absent (or expired) key counts from 0 and gets `ttl`; an existing key
/// keeps its expiry, whatever `ttl` says. A value that is not a counter (see
/// the [module docs](self)), or a sum that overflows `i64`, is an error and
/// leaves the value unchanged.
pub fn increment(key: &str, delta: i64, ttl: Option<Duration>) -> Result<i64, String> {
    imp::increment(key, delta, ttl_ms(ttl))
}

/// Stores `value` under `key` only if the current value equals `expected`
/// (none: only if the key is absent); true if it stored. A store sets the
/// expiry from `ttl`, like [`set`].
///
/// ```
/// use switchyard_sdk::kv;
/// assert!(kv::compare_and_swap("lock", None, b"me", None));
/// assert!(!kv::compare_and_swap("lock", None, b"you", None));
/// assert!(kv::compare_and_swap("lock", Some(b"me"), b"free", None));
/// ```
pub fn compare_and_swap(
    key: &str,
    expected: Option<&[u8]>,
    value: &[u8],
    ttl: Option<Duration>,
) -> bool {
    imp::compare_and_swap(key, expected, value, ttl_ms(ttl))
}

/// A TTL in whole milliseconds, as the host takes it: rounded up, so that a
/// sub-millisecond TTL does not expire at once, and capped at `u64::MAX`.
fn ttl_ms(ttl: Option<Duration>) -> Option<u64> {
    ttl.map(|ttl| {
        let ms = ttl.as_nanos().div_ceil(1_000_000);
        u64::try_from(ms).unwrap_or(u64::MAX)
    })
}

/// A counter's value: the bytes as UTF-8 decimal `i64` text; none if they
/// are not.
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(crate) fn parse_counter(value: &[u8]) -> Option<i64> {
    std::str::from_utf8(value).ok()?.parse().ok()
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use crate::bindings::switchyard::plugin::kv;

    pub(super) fn get(key: &str) -> Option<Vec<u8>> {
        kv::get(key)
    }

    pub(super) fn set(key: &str, value: &[u8], ttl_ms: Option<u64>) {
        kv::set(key, value, ttl_ms)
    }

    pub(super) fn delete(key: &str) -> bool {
        kv::delete(key)
    }

    pub(super) fn increment(key: &str, delta: i64, ttl_ms: Option<u64>) -> Result<i64, String> {
        kv::increment(key, delta, ttl_ms)
    }

    pub(super) fn compare_and_swap(
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
        ttl_ms: Option<u64>,
    ) -> bool {
        kv::compare_and_swap(key, expected, value, ttl_ms)
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use crate::native;

    pub(super) fn get(key: &str) -> Option<Vec<u8>> {
        native::with(|b| b.kv_get(key))
    }

    pub(super) fn set(key: &str, value: &[u8], ttl_ms: Option<u64>) {
        native::with(|b| b.kv_set(key, value, ttl_ms))
    }

    pub(super) fn delete(key: &str) -> bool {
        native::with(|b| b.kv_delete(key))
    }

    pub(super) fn increment(key: &str, delta: i64, ttl_ms: Option<u64>) -> Result<i64, String> {
        native::with(|b| b.kv_increment(key, delta, ttl_ms))
    }

    pub(super) fn compare_and_swap(
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
        ttl_ms: Option<u64>,
    ) -> bool {
        native::with(|b| b.kv_compare_and_swap(key, expected, value, ttl_ms))
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::Plugin;
    use crate::testing::Harness;
    use std::time::SystemTime;

    struct Nothing;
    impl Plugin for Nothing {
        fn configure(_: serde_json::Value) -> Result<Self, String> {
            Ok(Nothing)
        }
    }

    /// A harness with its clock fixed, and a function that runs code on it.
    fn harness() -> Harness<Nothing> {
        let h = Harness::<Nothing>::new(serde_json::json!({})).unwrap();
        h.set_time(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000));
        h
    }

    #[test]
    fn set_get_delete() {
        let h = harness();
        h.run(|_| {
            assert_eq!(get("a"), None);
            set("a", b"1", None);
            assert_eq!(get("a").as_deref(), Some(&b"1"[..]));
            assert!(delete("a"));
            assert!(!delete("a"));
            assert_eq!(get("a"), None);
        });
    }

    #[test]
    fn ttl_counts_from_the_write() {
        let h = harness();
        h.run(|_| set("k", b"v", Some(Duration::from_secs(10))));
        h.advance(Duration::from_millis(9_999));
        h.run(|_| assert_eq!(get("k").as_deref(), Some(&b"v"[..])));
        // A rewrite restarts the TTL.
        h.run(|_| set("k", b"w", Some(Duration::from_secs(10))));
        h.advance(Duration::from_secs(5));
        assert_eq!(h.kv_get("k").as_deref(), Some(&b"w"[..]));
        h.advance(Duration::from_secs(5));
        assert_eq!(h.kv_get("k"), None, "expired exactly at the TTL");
        h.run(|_| assert!(!delete("k"), "an expired key is absent"));
        // No TTL: never expires.
        h.run(|_| set("forever", b"x", None));
        h.advance(Duration::from_secs(365 * 24 * 3600));
        assert!(h.kv_get("forever").is_some());
    }

    #[test]
    fn sub_millisecond_ttl_rounds_up() {
        assert_eq!(ttl_ms(Some(Duration::from_micros(1))), Some(1));
        assert_eq!(ttl_ms(Some(Duration::from_millis(1500))), Some(1500));
        assert_eq!(ttl_ms(Some(Duration::ZERO)), Some(0));
        assert_eq!(ttl_ms(Some(Duration::MAX)), Some(u64::MAX));
        assert_eq!(ttl_ms(None), None);
        let h = harness();
        h.run(|_| set("z", b"v", Some(Duration::ZERO)));
        assert_eq!(h.kv_get("z"), None, "a zero TTL expires at once");
    }

    #[test]
    fn increment_starts_at_zero_with_ttl_and_keeps_expiry() {
        let h = harness();
        let ttl = Some(Duration::from_secs(60));
        assert_eq!(h.run(|_| increment("n", 5, ttl)), Ok(5));
        h.advance(Duration::from_secs(50));
        // An existing key keeps its expiry, whatever TTL this call gives.
        assert_eq!(
            h.run(|_| increment("n", -2, Some(Duration::from_secs(3600)))),
            Ok(3)
        );
        assert_eq!(
            h.kv_get("n").as_deref(),
            Some(&b"3"[..]),
            "stored as decimal text"
        );
        h.advance(Duration::from_secs(10));
        assert_eq!(h.kv_get("n"), None, "expired 60 s after the first write");
        // Expired: counts from 0 again, with the new TTL.
        assert_eq!(h.run(|_| increment("n", 1, None)), Ok(1));
        h.advance(Duration::from_secs(3600));
        assert_eq!(h.kv_get("n").as_deref(), Some(&b"1"[..]));
    }

    #[test]
    fn increment_reads_counters_set_as_text() {
        let h = harness();
        h.run(|_| {
            set("c", b"-41", None);
            assert_eq!(increment("c", 1, None), Ok(-40));
            assert_eq!(get("c").as_deref(), Some(&b"-40"[..]));
        });
    }

    #[test]
    fn increment_on_a_non_counter_is_an_error() {
        let h = harness();
        h.run(|_| {
            set("s", b"hello", None);
            assert!(
                increment("s", 1, None)
                    .unwrap_err()
                    .contains("not a counter")
            );
            assert_eq!(get("s").as_deref(), Some(&b"hello"[..]), "unchanged");
            set("f", b"1.5", None);
            assert!(increment("f", 1, None).is_err());
            set("bin", &[0xff, 0x00], None);
            assert!(increment("bin", 1, None).is_err());
            set("max", i64::MAX.to_string().as_bytes(), None);
            assert!(increment("max", 1, None).unwrap_err().contains("overflow"));
            assert_eq!(increment("max", -1, None), Ok(i64::MAX - 1));
        });
    }

    #[test]
    fn compare_and_swap_absent_present_mismatch() {
        let h = harness();
        h.run(|_| {
            // Absent: stores only when `expected` is none.
            assert!(!compare_and_swap("k", Some(b"x"), b"v1", None));
            assert_eq!(get("k"), None);
            assert!(compare_and_swap("k", None, b"v1", None));
            // Present: none no longer matches; the right value does.
            assert!(!compare_and_swap("k", None, b"v2", None));
            assert!(!compare_and_swap("k", Some(b"wrong"), b"v2", None));
            assert_eq!(get("k").as_deref(), Some(&b"v1"[..]));
            assert!(compare_and_swap(
                "k",
                Some(b"v1"),
                b"v2",
                Some(Duration::from_secs(1))
            ));
            assert_eq!(get("k").as_deref(), Some(&b"v2"[..]));
        });
        // The swap set the TTL; once expired the key is absent again.
        h.advance(Duration::from_secs(1));
        h.run(|_| {
            assert!(!compare_and_swap("k", Some(b"v2"), b"v3", None));
            assert!(compare_and_swap("k", None, b"v3", None));
        });
    }

    #[test]
    fn counters_parse_as_documented() {
        assert_eq!(parse_counter(b"0"), Some(0));
        assert_eq!(parse_counter(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_counter(b" 1"), None);
        assert_eq!(parse_counter(b""), None);
    }
}
