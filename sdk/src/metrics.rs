//! The gateway's metrics, named `switchyard_plugin_NAME` and labelled with
//! the plugin instance's name.
//!
//! Keep label values few (a route, a decision), never per-request (a
//! principal, an id): each distinct label set is a series the gateway keeps.
//! In native tests values are captured by the
//! [`Harness`](crate::testing::Harness)
//! ([`counter`](crate::testing::Harness::counter)).
//!
//! ```
//! use switchyard_sdk::metrics;
//! metrics::counter("rejected_total", 1, &[("reason", "rate_limit")]);
//! metrics::histogram("key_lookup_seconds", 0.000_42, &[]);
//! ```

/// Adds `delta` to the counter `name` with these labels.
pub fn counter(name: &str, delta: u64, labels: &[(&str, &str)]) {
    imp::counter(name, delta, labels)
}

/// Records `value` in the histogram `name` with these labels.
pub fn histogram(name: &str, value: f64, labels: &[(&str, &str)]) {
    imp::histogram(name, value, labels)
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use crate::bindings::switchyard::plugin::metrics;

    fn owned(labels: &[(&str, &str)]) -> Vec<(String, String)> {
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    pub(super) fn counter(name: &str, delta: u64, labels: &[(&str, &str)]) {
        metrics::counter_add(name, delta, &owned(labels))
    }

    pub(super) fn histogram(name: &str, value: f64, labels: &[(&str, &str)]) {
        metrics::histogram_record(name, value, &owned(labels))
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use crate::native;

    pub(super) fn counter(name: &str, delta: u64, labels: &[(&str, &str)]) {
        native::with(|b| b.counter_add(name, delta, labels))
    }

    pub(super) fn histogram(name: &str, value: f64, labels: &[(&str, &str)]) {
        native::with(|b| b.histogram_record(name, value, labels))
    }
}
