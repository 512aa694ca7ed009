//! Metrics and logs.
//!
//! Metrics go through the `metrics` facade (the plugin runtime and the
//! supervisor record there too) into one process-wide Prometheus recorder,
//! rendered as text at `GET /metrics` on the main listener. Upstream states
//! and process figures are gauges set at scrape time from the live
//! upstreams, so they never go stale.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `switchyard_requests_total` | counter | route, upstream, method, outcome |
//! | `switchyard_request_duration_seconds` | histogram | route, method |
//! | `switchyard_plugin_hook_duration_seconds` | histogram | plugin, hook |
//! | `switchyard_plugin_failures_total` | counter | plugin, hook, outcome |
//! | `switchyard_plugin_*` | counter/histogram | plugin + the plugin's own (cache hits, rate-limit rejections) |
//! | `switchyard_upstream_restarts_total` | counter | upstream |
//! | `switchyard_upstream_health_failures_total` | counter | upstream |
//! | `switchyard_upstream_up` | gauge | upstream, state (1 for the current state) |
//! | `switchyard_upstream_rss_bytes`, `_cpu_seconds`, `_in_flight` | gauge | upstream |

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::upstream::{UpState, Upstream};

/// The process-wide recorder (installed on first use; several gateways in
/// one process, as in tests, share it).
fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[
                0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05,
                0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ])
            .expect("bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
        }
        handle
    })
}

/// Installs the recorder (call once at start, before traffic).
pub fn init_metrics() {
    handle();
}

/// The Prometheus text exposition, with upstream gauges as of now.
pub fn render(upstreams: &[std::sync::Arc<Upstream>]) -> String {
    let handle = handle();
    for up in upstreams {
        let report = up.report();
        let name = report.name.clone();
        for word in UpState::WORDS {
            metrics::gauge!("switchyard_upstream_up", "upstream" => name.clone(), "state" => word)
                .set(if word == report.state { 1.0 } else { 0.0 });
        }
        metrics::gauge!("switchyard_upstream_in_flight", "upstream" => name.clone())
            .set(report.in_flight as f64);
        metrics::gauge!("switchyard_upstream_rss_bytes", "upstream" => name.clone())
            .set(report.rss_bytes.unwrap_or(0) as f64);
        metrics::gauge!("switchyard_upstream_cpu_seconds", "upstream" => name)
            .set(report.cpu_seconds.unwrap_or(0.0));
    }
    handle.render()
}

/// Methods counted under their own name; anything else is `other` (a
/// client must not be able to grow the label set without bound).
const METHODS: [&str; 22] = [
    "initialize",
    "ping",
    "server/discover",
    "tools/list",
    "tools/call",
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "subscriptions/listen",
    "completion/complete",
    "logging/setLevel",
    "tasks/get",
    "tasks/list",
    "tasks/result",
    "tasks/cancel",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/roots/list_changed",
];

fn method_label(method: &str) -> &'static str {
    METHODS
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("other")
}

/// Counts one client request and its duration.
pub fn record_request(
    route: &str,
    upstream: Option<&str>,
    method: &str,
    outcome: &'static str,
    took: Duration,
) {
    let method = method_label(method);
    metrics::counter!(
        "switchyard_requests_total",
        "route" => route.to_owned(),
        "upstream" => upstream.unwrap_or("").to_owned(),
        "method" => method,
        "outcome" => outcome,
    )
    .increment(1);
    metrics::histogram!(
        "switchyard_request_duration_seconds",
        "route" => route.to_owned(),
        "method" => method,
    )
    .record(took.as_secs_f64());
}
