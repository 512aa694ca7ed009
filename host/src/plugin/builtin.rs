//! The first-party plugins embedded in the binary (`builtin:NAME`).
//!
//! `host/build.rs` builds every crate under `plugins/` for `wasm32-wasip2`
//! and generates the table included here, so the one binary runs them with
//! no files beside it.

include!(concat!(env!("OUT_DIR"), "/builtins.rs"));

/// The component bytes of `builtin:NAME`.
pub fn get(name: &str) -> Option<&'static [u8]> {
    BUILTINS.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

/// Every built-in name, for error messages.
pub fn names() -> Vec<&'static str> {
    BUILTINS.iter().map(|(n, _)| *n).collect()
}
