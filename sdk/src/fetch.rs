//! Documents from the network (a JWKS), fetched by the gateway: only URLs
//! the operator granted in the plugin's `grants.urls`, only GET, cached by
//! the gateway (five minutes), so asking on every request is cheap.
//!
//! In native tests the answers are the
//! [`Harness`](crate::testing::Harness)'s ([`set_fetch`](crate::testing::Harness::set_fetch));
//! an unset URL is an error, as an ungranted one is in the gateway.
//!
//! ```
//! use switchyard_sdk::fetch;
//! // Without a granted URL (or, in a test, an answer set for it):
//! assert!(fetch::get("https://auth.example.com/jwks.json").is_err());
//! ```

/// The body of `GET url`, or why not (not granted, unreachable, an HTTP
/// status).
pub fn get(url: &str) -> Result<String, String> {
    imp::get(url)
}

#[cfg(target_arch = "wasm32")]
mod imp {
    pub(super) fn get(url: &str) -> Result<String, String> {
        crate::bindings::switchyard::plugin::fetch::get(url)
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use crate::native;

    pub(super) fn get(url: &str) -> Result<String, String> {
        native::with(|b| b.fetches.get(url).cloned()).unwrap_or_else(|| {
            Err(format!(
                "{url} is not granted (no answer set with Harness::set_fetch)"
            ))
        })
    }
}
