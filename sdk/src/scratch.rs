//! Scratch space for one request: what `on_request` sets, `on_response` of
//! the same request (and later plugins' hooks) can read. Namespaced per
//! plugin instance; dropped when the request ends.
//!
//! In native tests the scratch space is the
//! [`Harness`](crate::testing::Harness)'s; it lasts until
//! [`clear_scratch`](crate::testing::Harness::clear_scratch).
//!
//! ```
//! use switchyard_sdk::scratch;
//! // In on_request: remember when the call started.
//! scratch::set("started", b"1700000000000");
//! // In on_response of the same request:
//! assert_eq!(scratch::get("started").as_deref(), Some(&b"1700000000000"[..]));
//! ```

/// The value this request's scratch space holds under `key`.
pub fn get(key: &str) -> Option<Vec<u8>> {
    imp::get(key)
}

/// Stores `value` under `key` for the rest of this request.
pub fn set(key: &str, value: &[u8]) {
    imp::set(key, value)
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use crate::bindings::switchyard::plugin::scratch;

    pub(super) fn get(key: &str) -> Option<Vec<u8>> {
        scratch::get(key)
    }

    pub(super) fn set(key: &str, value: &[u8]) {
        scratch::set(key, value)
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use crate::native;

    pub(super) fn get(key: &str) -> Option<Vec<u8>> {
        native::with(|b| b.scratch.get(key).cloned())
    }

    pub(super) fn set(key: &str, value: &[u8]) {
        native::with(|b| b.scratch.insert(key.to_string(), value.to_vec()));
    }
}
