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

pub mod history;
pub mod logtail;

use std::collections::HashMap;
use std::sync::{LazyLock, OnceLock, RwLock};
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::upstream::{UpState, UpstreamReport};

/// The process-wide recorder, once installed.
static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide recorder (installed on first use; several gateways in
/// one process, as in tests, share it).
fn handle() -> &'static PrometheusHandle {
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
pub fn render(upstreams: &[UpstreamReport]) -> String {
    let handle = handle();
    for report in upstreams {
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

/// The handles of one label set of the request metrics.
struct RequestHandles {
    count: metrics::Counter,
    duration: metrics::Histogram,
}

/// Request metric handles by route, upstream, then (method, outcome). The
/// macros build a key (two label strings, a label vector) and look it up
/// in the recorder's registry for each metric on every call; through a
/// cached handle a request is a few map lookups and two atomic updates.
/// Bounded: routes and upstreams come from the configuration, methods and
/// outcomes from fixed lists.
type HandleMap =
    HashMap<String, HashMap<String, HashMap<(&'static str, &'static str), RequestHandles>>>;

static REQUEST_HANDLES: LazyLock<RwLock<HandleMap>> = LazyLock::new(Default::default);

/// Counts one client request and its duration (nothing before the recorder
/// is installed: handles taken then would stay no-ops for good).
pub fn record_request(
    route: &str,
    upstream: Option<&str>,
    method: &str,
    outcome: &'static str,
    took: Duration,
) {
    if HANDLE.get().is_none() {
        return;
    }
    let method = method_label(method);
    let upstream = upstream.unwrap_or("");
    let seconds = took.as_secs_f64();
    let record = |h: &RequestHandles| {
        h.count.increment(1);
        h.duration.record(seconds);
    };
    {
        let map = REQUEST_HANDLES.read().expect("metric handles lock");
        if let Some(h) = map
            .get(route)
            .and_then(|m| m.get(upstream))
            .and_then(|m| m.get(&(method, outcome)))
        {
            record(h);
            return;
        }
    }
    let handles = RequestHandles {
        count: metrics::counter!(
            "switchyard_requests_total",
            "route" => route.to_owned(),
            "upstream" => upstream.to_owned(),
            "method" => method,
            "outcome" => outcome,
        ),
        duration: metrics::histogram!(
            "switchyard_request_duration_seconds",
            "route" => route.to_owned(),
            "method" => method,
        ),
    };
    record(&handles);
    REQUEST_HANDLES
        .write()
        .expect("metric handles lock")
        .entry(route.to_owned())
        .or_default()
        .entry(upstream.to_owned())
        .or_default()
        .insert((method, outcome), handles);
}

// ---------------------------------------------------------------------------
// Logs and traces.
//
// One `tracing` subscriber: a fmt layer (text or JSON, filtered by
// `RUST_LOG`, default `info`) and, when `[telemetry] otlp_endpoint` is set,
// a `tracing-opentelemetry` layer that turns the gateway's trace spans
// (target `switchyard::trace`, level DEBUG, so they cost nothing when no
// exporter wants them) into OpenTelemetry spans exported over OTLP/HTTP
// (JSON) in batches. Spans, nested as a request meets them:
//
//   mcp.request      route, method, upstream, outcome; parent: `_meta.traceparent`
//   ├─ plugin.hook   plugin, hook (each plugin call of either phase)
//   └─ upstream.call upstream, method
// ---------------------------------------------------------------------------

/// The target of the gateway's trace spans.
pub const TRACE_TARGET: &str = "switchyard::trace";

/// Flushes and stops the trace exporter when dropped (at exit).
pub struct TraceGuard(Option<opentelemetry_sdk::trace::SdkTracerProvider>);

impl Drop for TraceGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take()
            && let Err(e) = p.shutdown()
        {
            eprintln!("switchyard: flushing traces failed: {e}");
        }
    }
}

/// The exporter's HTTP client: our reqwest, run on the gateway's runtime
/// (the batch exporter calls from its own thread, outside any runtime).
#[derive(Debug)]
struct OtlpHttp {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for OtlpHttp {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let client = self.client.clone();
        let (parts, body) = request.into_parts();
        let sent = self.runtime.spawn(async move {
            let resp = client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await?;
            let (status, headers) = (resp.status(), resp.headers().clone());
            Ok::<_, reqwest::Error>((status, headers, resp.bytes().await?))
        });
        let (status, headers, body) = sent.await??;
        let mut resp = http::Response::new(body);
        *resp.status_mut() = status;
        *resp.headers_mut() = headers;
        Ok(resp)
    }
}

/// Installs the process's logging (and trace export, if configured). Call
/// once, inside the runtime the gateway will run on.
pub fn init_logs_and_traces(config: &crate::config::TelemetryConfig) -> anyhow::Result<TraceGuard> {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};

    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match std::env::var("SWITCHYARD_LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("text") => false,
        _ => config.log_format == crate::config::LogFormat::Json,
    };
    // Colours only for a terminal: piped logs stay plain text for tools.
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(|| crate::secrets::Redacting(std::io::stderr()));
    let fmt = if json {
        fmt.json().boxed()
    } else {
        fmt.boxed()
    };
    let (otel, provider) = match &config.otlp_endpoint {
        None => (None, None),
        Some(base) => {
            let endpoint = format!("{}/v1/traces", base.as_str().trim_end_matches('/'));
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_http_client(OtlpHttp {
                    client: reqwest::Client::new(),
                    runtime: tokio::runtime::Handle::current(),
                })
                .with_protocol(opentelemetry_otlp::Protocol::HttpJson)
                .with_endpoint(endpoint)
                .build()?;
            let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(
                    opentelemetry_sdk::Resource::builder()
                        .with_service_name(config.service_name.clone())
                        .build(),
                )
                .build();
            let layer = tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("switchyard"))
                .with_filter(
                    tracing_subscriber::filter::Targets::new()
                        .with_target(TRACE_TARGET, tracing::Level::DEBUG),
                );
            (Some(layer), Some(provider))
        }
    };
    // The console's log page keeps what stderr gets (a filter of its own:
    // EnvFilter is not Clone).
    let tail_filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(logtail::TailLayer.with_filter(tail_filter))
        .with(otel)
        .try_init()?;
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    Ok(TraceGuard(provider))
}

/// Reads W3C trace context (`traceparent`, `tracestate`) from a request's
/// `_meta`.
struct MetaCarrier<'a>(&'a serde_json::Map<String, serde_json::Value>);

impl opentelemetry::propagation::Extractor for MetaCarrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(serde_json::Value::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// The span of one client request; its parent is the client's trace when
/// `_meta` carries a `traceparent`.
pub fn request_span(
    route: &str,
    method: &str,
    upstream: Option<&str>,
    params: Option<&serde_json::Value>,
) -> tracing::Span {
    let span = tracing::debug_span!(
        target: TRACE_TARGET,
        "mcp.request",
        otel.name = %format!("mcp {method}"),
        otel.kind = "server",
        rpc.system = "mcp",
        rpc.method = method,
        route,
        upstream = upstream.unwrap_or(""),
        outcome = tracing::field::Empty,
    );
    if !span.is_disabled()
        && let Some(meta) = params
            .and_then(|p| p.get("_meta"))
            .and_then(serde_json::Value::as_object)
        && meta.contains_key("traceparent")
    {
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        let parent =
            opentelemetry::global::get_text_map_propagator(|p| p.extract(&MetaCarrier(meta)));
        let _ = span.set_parent(parent);
    }
    span
}
