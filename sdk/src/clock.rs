//! The wall clock a plugin should use, so that tests can control time.
//!
//! Inside a component [`now`] is `SystemTime::now()`, the WASI clock the
//! gateway links. In native tests it is the
//! [`Harness`](crate::testing::Harness)'s clock: real time until a test calls
//! [`set_time`](crate::testing::Harness::set_time) or
//! [`advance`](crate::testing::Harness::advance), fixed after.
//!
//! ```
//! use switchyard_sdk::clock;
//! let started = clock::now();
//! assert!(clock::now() >= started);
//! ```

use std::time::SystemTime;

/// The current time.
pub fn now() -> SystemTime {
    #[cfg(target_arch = "wasm32")]
    {
        SystemTime::now()
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        crate::native::with(|b| b.now())
    }
}
