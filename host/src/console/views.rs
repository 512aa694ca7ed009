//! What each page shows, as template structs (`host/templates/`), built
//! from the gateway's state through [`Ops`]. Numbers are formatted here so
//! that the templates only place text.

use std::time::{Duration, SystemTime};

use askama::Template;
use serde_json::{Value, json};

use super::Caller;
use super::forms::{self, FieldErrors, UpstreamForm};
use crate::admin::ops::{Ops, Tried};
use crate::config::{ComponentSource, FailureMode, Isolation};
use crate::telemetry::history::{self, Interval};
use crate::upstream::{Upstream, UpstreamReport};

/// What every page has: its title, the navigation, the session's CSRF token
/// and whether it may change anything, the asset URLs, a message.
pub struct Page {
    pub title: String,
    pub nav: &'static str,
    pub csrf: String,
    pub can_change: bool,
    pub css: String,
    pub js: String,
    pub flash: Option<String>,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginView {
    pub error: Option<String>,
    pub css: String,
}

impl LoginView {
    pub fn new(error: Option<String>) -> Self {
        LoginView {
            error,
            css: super::ASSETS.css.url(),
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorView {
    pub page: Page,
}

/// One upstream's figures, formatted.
pub struct Row {
    pub name: String,
    pub state: &'static str,
    pub detail: String,
    pub era: String,
    pub transport: &'static str,
    pub pid: String,
    pub uptime: String,
    pub restarts: u64,
    pub health_failures: u64,
    pub last_exit: String,
    pub rss: String,
    pub cpu: String,
    pub in_flight: usize,
}

impl Row {
    pub fn of(r: &UpstreamReport) -> Row {
        Row {
            name: r.name.clone(),
            state: r.state,
            detail: r.detail.clone().unwrap_or_default(),
            era: r.era.clone().unwrap_or_else(|| "–".into()),
            transport: r.transport,
            pid: r.pid.map_or_else(|| "–".into(), |p| p.to_string()),
            uptime: r
                .uptime_seconds
                .map_or_else(|| "–".into(), |s| age(s as u64)),
            restarts: r.restarts,
            health_failures: r.health_failures,
            last_exit: r.last_exit.clone().unwrap_or_else(|| "–".into()),
            rss: r.rss_bytes.map_or_else(
                || "–".into(),
                |b| format!("{:.1} MiB", b as f64 / 1048576.0),
            ),
            cpu: r
                .cpu_seconds
                .map_or_else(|| "–".into(), |s| format!("{s:.2} s")),
            in_flight: r.in_flight,
        }
    }
}

/// `2h 03m`, `4m 05s`, `12s`.
pub fn age(secs: u64) -> String {
    match secs {
        s if s >= 3600 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{}m {:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

/// The upstream table's rows (the overview renders them, and its live
/// stream sends them again as they change).
#[derive(Template)]
#[template(path = "upstream_rows.html")]
pub struct UpstreamRows {
    pub rows: Vec<Row>,
}

impl UpstreamRows {
    pub fn of(ops: &Ops) -> Self {
        UpstreamRows {
            rows: ops.reports().iter().map(Row::of).collect(),
        }
    }
}

/// Traffic over the last five minutes.
#[derive(Template)]
#[template(path = "stats.html")]
pub struct StatsView {
    pub rate: String,
    pub errors: String,
    pub p50: String,
    pub p99: String,
    pub window: String,
}

impl StatsView {
    pub fn now() -> Self {
        let window = Duration::from_secs(300);
        let i = history::get().since(window, SystemTime::now(), &history::current());
        StatsView {
            rate: format!("{:.1}/s", i.rate()),
            errors: format!("{:.1}%", i.error_ratio() * 100.0),
            p50: ms(i.latency_quantile(0.5)),
            p99: ms(i.latency_quantile(0.99)),
            window: age(i.seconds as u64),
        }
    }
}

fn ms(seconds: Option<f64>) -> String {
    seconds.map_or_else(|| "–".into(), |s| format!("{:.2} ms", s * 1000.0))
}

/// A plugin instance as the routes page shows it.
pub struct PluginView {
    pub name: String,
    pub component: String,
    pub failure: &'static str,
    pub isolation: &'static str,
    /// Mean hook time and calls over the last hour.
    pub hooks: String,
    pub failures: String,
}

/// A plugin in a route's chain, with the chains its buttons would set.
pub struct ChainEntry {
    pub plugin: PluginView,
    pub up: Option<String>,
    pub down: Option<String>,
    pub without: String,
}

/// A route with its chain.
pub struct RouteView {
    pub path: String,
    pub upstreams: Vec<String>,
    pub every_upstream: bool,
    pub plugins: Vec<ChainEntry>,
    /// The chain as the form field lists it.
    pub chain: String,
}

/// The entries of `names`, each with the chain moved up, down, or without it.
fn chain_entries(names: &[&str], view: impl Fn(&str) -> PluginView) -> Vec<ChainEntry> {
    let joined = |v: &[&str]| v.join(", ");
    (0..names.len())
        .map(|i| {
            let swapped = |j: usize| {
                let mut v = names.to_vec();
                v.swap(i, j);
                joined(&v)
            };
            let mut without = names.to_vec();
            without.remove(i);
            ChainEntry {
                plugin: view(names[i]),
                up: (i > 0).then(|| swapped(i - 1)),
                down: (i + 1 < names.len()).then(|| swapped(i + 1)),
                without: joined(&without),
            }
        })
        .collect()
}

impl RouteView {
    pub fn all(ops: &Ops) -> Vec<RouteView> {
        let config = ops.gateway().config();
        let hour = hour();
        let plugin = |name: &str| {
            let spec = config.plugins.iter().find(|p| p.name.as_str() == name);
            plugin_view(name, spec, &hour)
        };
        config
            .routes
            .iter()
            .map(|r| {
                let names: Vec<&str> = r.plugins.iter().map(|p| p.as_str()).collect();
                RouteView {
                    path: r.path.to_string(),
                    upstreams: r.upstreams.iter().map(|u| u.to_string()).collect(),
                    every_upstream: r.every_upstream,
                    plugins: chain_entries(&names, plugin),
                    chain: names.join(", "),
                }
            })
            .collect()
    }
}

/// The last hour, as one interval.
fn hour() -> Interval {
    history::get().since(
        Duration::from_secs(3600),
        SystemTime::now(),
        &history::current(),
    )
}

fn plugin_view(
    name: &str,
    spec: Option<&crate::config::PluginSpec>,
    hour: &Interval,
) -> PluginView {
    let (sum, calls) = hour.hooks.get(name).copied().unwrap_or_default();
    PluginView {
        name: name.to_owned(),
        component: spec.map_or_else(String::new, |s| match &s.component {
            ComponentSource::Builtin(b) => format!("builtin:{b}"),
            ComponentSource::File(f) => f.file_name().map_or_else(
                || f.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ),
        }),
        failure: match spec.map(|s| s.failure) {
            Some(FailureMode::Open) => "open",
            _ => "closed",
        },
        isolation: match spec.map(|s| s.isolation) {
            Some(Isolation::Fresh) => "fresh",
            _ => "pooled",
        },
        hooks: if calls > 0.0 {
            format!("{:.1} µs mean over {calls} calls", sum / calls * 1e6)
        } else {
            "no calls yet".into()
        },
        failures: format!(
            "{}",
            hour.hook_failures.get(name).copied().unwrap_or_default()
        ),
    }
}

#[derive(Template)]
#[template(path = "overview.html")]
pub struct OverviewView {
    pub page: Page,
    pub rows: UpstreamRows,
    pub stats: StatsView,
    pub routes: Vec<RouteView>,
}

#[derive(Template)]
#[template(path = "upstream.html")]
pub struct UpstreamView {
    pub page: Page,
    pub row: Row,
    pub form: UpstreamForm,
    pub errors: FieldErrors,
    pub log_tail: Vec<String>,
}

impl UpstreamView {
    pub fn new(page: Page, up: &Upstream, form: UpstreamForm, errors: FieldErrors) -> Self {
        let (tail, _) = up.follow_logs();
        UpstreamView {
            page,
            row: Row::of(&up.report()),
            form,
            errors,
            log_tail: tail,
        }
    }
}

#[derive(Template)]
#[template(path = "new_upstream.html")]
pub struct NewUpstreamView {
    pub page: Page,
    pub form: UpstreamForm,
    pub errors: FieldErrors,
    pub import_text: String,
    pub import_error: Option<String>,
}

#[derive(Template)]
#[template(path = "routes.html")]
pub struct RoutesView {
    pub page: Page,
    pub routes: Vec<RouteView>,
    pub instances: Vec<PluginView>,
    pub builtins: Vec<&'static str>,
    pub problem: Option<String>,
}

impl RoutesView {
    pub fn new(page: Page, ops: &Ops, problem: Option<String>) -> Self {
        let config = ops.gateway().config();
        let hour = hour();
        RoutesView {
            page,
            routes: RouteView::all(ops),
            instances: config
                .plugins
                .iter()
                .map(|p| plugin_view(p.name.as_str(), Some(p), &hour))
                .collect(),
            builtins: crate::plugin::builtin::names(),
            problem,
        }
    }
}

/// One input of a "try it" form.
pub struct FieldView {
    pub name: String,
    /// `string`, `integer`, `number`, `checkbox` or `json`.
    pub kind: &'static str,
    pub required: bool,
    pub description: String,
}

pub struct ToolView {
    pub name: String,
    pub title: String,
    pub description: String,
    pub schema_pretty: String,
    pub schema: String,
    pub fields: Vec<FieldView>,
    /// `read-only`, `destructive`, ... from the annotations.
    pub hints: String,
}

impl ToolView {
    fn of(tool: &Value) -> ToolView {
        let schema = tool.get("inputSchema").cloned().unwrap_or(json!({}));
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let fields = schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|props| {
                props
                    .iter()
                    .map(|(name, p)| FieldView {
                        name: name.clone(),
                        kind: forms::property_kind(p),
                        required: required.contains(&name.as_str()),
                        description: text(p, "description"),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let a = tool.get("annotations");
        let flag = |k: &str| a.and_then(|a| a.get(k)).and_then(Value::as_bool) == Some(true);
        let hints: Vec<&str> = [
            ("readOnlyHint", "read-only"),
            ("destructiveHint", "destructive"),
            ("idempotentHint", "idempotent"),
            ("openWorldHint", "open world"),
        ]
        .into_iter()
        .filter(|(k, _)| flag(k))
        .map(|(_, w)| w)
        .collect();
        ToolView {
            name: text(tool, "name"),
            title: text(tool, "title"),
            description: text(tool, "description"),
            schema_pretty: serde_json::to_string_pretty(&schema).unwrap_or_default(),
            schema: schema.to_string(),
            fields,
            hints: hints.join(", "),
        }
    }
}

fn text(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or("").to_owned()
}

/// A resource or prompt, as listed.
pub struct ItemView {
    pub name: String,
    pub detail: String,
    pub description: String,
}

/// The outcome of a "try it".
pub struct TriedView {
    pub tool: String,
    pub ok: bool,
    pub body: String,
    pub upstream: String,
    pub latency: String,
}

impl TriedView {
    pub fn of(tool: &str, t: &Tried) -> Self {
        let (ok, v) = match &t.result {
            Ok(v) => (v.get("isError") != Some(&json!(true)), v),
            Err(e) => (false, e),
        };
        TriedView {
            tool: tool.to_owned(),
            ok,
            body: serde_json::to_string_pretty(v).unwrap_or_default(),
            upstream: t.upstream.clone().unwrap_or_else(|| "–".into()),
            latency: format!("{:.2} ms", t.latency.as_secs_f64() * 1000.0),
        }
    }

    pub fn problem(tool: &str, message: &str) -> Self {
        TriedView {
            tool: tool.to_owned(),
            ok: false,
            body: message.to_owned(),
            upstream: "–".into(),
            latency: "–".into(),
        }
    }
}

#[derive(Template)]
#[template(path = "explorer.html")]
pub struct ExplorerView {
    pub page: Page,
    pub routes: Vec<String>,
    pub caller: Caller,
    pub tools: Vec<ToolView>,
    pub resources: Vec<ItemView>,
    pub prompts: Vec<ItemView>,
    pub problems: Vec<String>,
    pub tried: Option<TriedView>,
}

impl ExplorerView {
    /// Lists the route's tools, resources and prompts through its chain, as
    /// `caller` names the principal.
    pub async fn load(page: Page, ops: &Ops, mut caller: Caller, tried: Option<TriedView>) -> Self {
        let routes = ops.gateway().route_paths();
        if caller.route.is_empty() {
            caller.route = routes.first().cloned().unwrap_or_default();
        }
        let ctx = ops.operator(
            Some(caller.principal.trim().to_owned()).filter(|p| !p.is_empty()),
            Some(caller.authorization.trim()).filter(|a| !a.is_empty()),
        );
        let mut problems = Vec::new();
        let mut list = async |method: &str, key: &str| -> Vec<Value> {
            match ops.call_as(&caller.route, &ctx, method, None).await {
                Ok(Tried { result: Ok(v), .. }) => v
                    .get(key)
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
                Ok(Tried { result: Err(e), .. }) => {
                    problems.push(format!("{method}: {}", text(&e, "message")));
                    Vec::new()
                }
                Err(p) => {
                    problems.push(format!("{method}: {}", p.message));
                    Vec::new()
                }
            }
        };
        let q = caller.q.trim().to_lowercase();
        let matches = |v: &Value| {
            q.is_empty()
                || text(v, "name").to_lowercase().contains(&q)
                || text(v, "description").to_lowercase().contains(&q)
        };
        let tools = list("tools/list", "tools").await;
        let resources = list("resources/list", "resources").await;
        let prompts = list("prompts/list", "prompts").await;
        ExplorerView {
            page,
            routes,
            tools: tools
                .iter()
                .filter(|t| matches(t))
                .map(ToolView::of)
                .collect(),
            resources: resources
                .iter()
                .filter(|r| matches(r))
                .map(|r| ItemView {
                    name: text(r, "name"),
                    detail: text(r, "uri"),
                    description: text(r, "description"),
                })
                .collect(),
            prompts: prompts
                .iter()
                .filter(|p| matches(p))
                .map(|p| ItemView {
                    name: text(p, "name"),
                    detail: p
                        .get("arguments")
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .map(|x| text(x, "name"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        })
                        .unwrap_or_default(),
                    description: text(p, "description"),
                })
                .collect(),
            caller,
            problems,
            tried,
        }
    }
}

#[derive(Template)]
#[template(path = "config.html")]
pub struct ConfigView {
    pub page: Page,
    pub path: String,
    pub effective: String,
    pub text: String,
    /// The check's verdict: a note, or why the edit is refused.
    pub check: Option<Result<String, String>>,
    pub diff: Option<String>,
}

impl ConfigView {
    pub fn new(
        page: Page,
        ops: &Ops,
        text: String,
        check: Option<Result<String, String>>,
        diff: Option<String>,
    ) -> Self {
        let source = ops.gateway().config().source;
        ConfigView {
            page,
            path: source.as_ref().map_or_else(
                || "(defaults: no config file)".into(),
                |p| p.display().to_string(),
            ),
            effective: effective(source.as_deref()),
            text,
            check,
            diff,
        }
    }
}

/// The configuration in force as TOML (file, environment and state file),
/// every secret replaced by `(secret)`: tokens, every `env` and `headers`
/// value, and plugin settings whose key names a secret.
pub fn effective(path: Option<&std::path::Path>) -> String {
    let raw = match crate::config::load_raw(path) {
        Ok(r) => r,
        Err(e) => return format!("# cannot be read: {e}"),
    };
    let mut v = match toml::Value::try_from(&raw) {
        Ok(v) => v,
        Err(e) => return format!("# cannot be shown: {e}"),
    };
    redact(&mut v, false);
    toml::to_string_pretty(&v).unwrap_or_default()
}

const SECRET: &str = "(secret)";

fn secret_key(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    [
        "token",
        "secret",
        "password",
        "passwd",
        "authorization",
        "key",
        "credential",
        "hash",
    ]
    .iter()
    .any(|w| k.contains(w))
}

fn redact(v: &mut toml::Value, all: bool) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t.iter_mut() {
                if all || secret_key(k) {
                    match v {
                        toml::Value::Table(_) | toml::Value::Array(_) => redact(v, true),
                        _ => *v = toml::Value::String(SECRET.into()),
                    }
                } else {
                    redact(v, k == "env" || k == "headers");
                }
            }
        }
        toml::Value::Array(a) => a.iter_mut().for_each(|v| redact(v, all)),
        other if all => *other = toml::Value::String(SECRET.into()),
        _ => {}
    }
}

/// A unified diff of the config file's text and an edit of it.
pub fn diff(old: &str, new: &str) -> String {
    let d = similar::TextDiff::from_lines(old, new);
    let text = d
        .unified_diff()
        .context_radius(2)
        .header("in force", "edited")
        .to_string();
    if text.is_empty() {
        "(no change)".into()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_and_the_rest_is_kept() {
        let mut v: toml::Value = toml::from_str(
            r#"
            [admin]
            token = "s3cret-admin-token"
            listen = "127.0.0.1:8081"
            [upstreams.a]
            command = "demo"
            env = { API = "k-123" }
            headers = { Authorization = "Bearer x" }
            [plugins.auth]
            component = "builtin:auth"
            config = { keys = [{ hash = "abc", name = "n" }], issuer = "me" }
            "#,
        )
        .unwrap();
        redact(&mut v, false);
        let text = toml::to_string(&v).unwrap();
        for s in ["s3cret-admin-token", "k-123", "Bearer x", "abc"] {
            assert!(!text.contains(s), "{s} leaked:\n{text}");
        }
        for s in ["127.0.0.1:8081", "demo", "builtin:auth", "issuer"] {
            assert!(text.contains(s), "{s} lost:\n{text}");
        }
    }

    #[test]
    fn chain_buttons_set_the_chain_moved() {
        let view = |n: &str| PluginView {
            name: n.into(),
            component: String::new(),
            failure: "closed",
            isolation: "pooled",
            hooks: String::new(),
            failures: String::new(),
        };
        let e = chain_entries(&["a", "b", "c"], view);
        assert_eq!(
            (e[0].up.as_deref(), e[0].down.as_deref()),
            (None, Some("b, a, c"))
        );
        assert_eq!(e[1].up.as_deref(), Some("b, a, c"));
        assert_eq!(e[2].down, None);
        assert_eq!(e[1].without, "a, c");
    }

    #[test]
    fn ages_read_well() {
        assert_eq!(age(5), "5s");
        assert_eq!(age(65), "1m 05s");
        assert_eq!(age(7380), "2h 03m");
    }

    #[test]
    fn a_diff_shows_the_changed_lines() {
        let d = diff("a = 1\nb = 2\n", "a = 1\nb = 3\n");
        assert!(d.contains("-b = 2") && d.contains("+b = 3"), "{d}");
        assert_eq!(diff("x\n", "x\n"), "(no change)");
    }
}

/// One chart: a series over the last hour as an SVG polyline.
pub struct Chart {
    pub title: String,
    /// `x,y x,y …` in a 360×100 box (one x per 10 s step).
    pub points: String,
    pub max: String,
    pub last: String,
    pub empty: bool,
}

const CHART_W: f64 = 360.0;
const CHART_H: f64 = 100.0;

impl Chart {
    fn of(title: &str, values: &[(usize, Option<f64>)], fmt: impl Fn(f64) -> String) -> Chart {
        let max = values
            .iter()
            .filter_map(|(_, v)| *v)
            .fold(0.0_f64, f64::max);
        let scale = if max > 0.0 { max } else { 1.0 };
        let points = values
            .iter()
            .filter_map(|(i, v)| {
                v.map(|v| {
                    format!(
                        "{:.1},{:.1}",
                        *i as f64,
                        CHART_H - v / scale * (CHART_H - 4.0)
                    )
                })
            })
            .collect::<Vec<_>>()
            .join(" ");
        Chart {
            title: title.to_owned(),
            empty: points.is_empty(),
            points,
            max: fmt(max),
            last: values
                .iter()
                .rev()
                .find_map(|(_, v)| *v)
                .map_or_else(|| "–".into(), &fmt),
        }
    }
}

/// Requests, errors by route and upstream (last hour).
pub struct CountRow {
    pub name: String,
    pub requests: String,
    pub errors: String,
}

#[derive(Template)]
#[template(path = "metrics.html")]
pub struct MetricsView {
    pub page: Page,
    pub charts: Vec<Chart>,
    pub by_route: Vec<CountRow>,
    pub by_upstream: Vec<CountRow>,
    pub width: f64,
    pub height: f64,
}

impl MetricsView {
    pub fn now(page: Page) -> Self {
        let steps = history::get().steps();
        // Position each step by its age, so gaps (a restart) show as gaps.
        let now = SystemTime::now();
        let step = history::STEP.as_secs_f64();
        let x = |at: SystemTime| {
            let age = now.duration_since(at).unwrap_or_default().as_secs_f64();
            (CHART_W - age / step).max(0.0) as usize
        };
        let series = |f: &dyn Fn(&Interval) -> Option<f64>| -> Vec<(usize, Option<f64>)> {
            steps.iter().map(|(at, i)| (x(*at), f(i))).collect()
        };
        let per_s = |v: f64| format!("{v:.1}/s");
        let msf = |v: f64| format!("{:.2} ms", v * 1000.0);
        let pct = |v: f64| format!("{:.1}%", v * 100.0);
        let charts = vec![
            Chart::of("Requests per second", &series(&|i| Some(i.rate())), per_s),
            Chart::of("p50 latency", &series(&|i| i.latency_quantile(0.5)), msf),
            Chart::of("p99 latency", &series(&|i| i.latency_quantile(0.99)), msf),
            Chart::of(
                "Errors (share of requests)",
                &series(&|i| (i.requests > 0.0).then(|| i.error_ratio())),
                pct,
            ),
            Chart::of(
                "Plugin hook time (mean)",
                &series(&|i| i.hook_mean()),
                |v| format!("{:.1} µs", v * 1e6),
            ),
            Chart::of("Cache hit ratio", &series(&|i| i.cache_hit_ratio()), pct),
            Chart::of(
                "Rate-limit refusals per second",
                &series(&|i| {
                    Some(if i.seconds > 0.0 {
                        i.rate_limited / i.seconds
                    } else {
                        0.0
                    })
                }),
                per_s,
            ),
        ];
        let hour = hour();
        let rows = |m: &std::collections::BTreeMap<String, (f64, f64)>| {
            m.iter()
                .filter(|(_, (n, _))| *n > 0.0)
                .map(|(k, (n, e))| CountRow {
                    name: if k.is_empty() {
                        "(the gateway)".into()
                    } else {
                        k.clone()
                    },
                    requests: format!("{n}"),
                    errors: format!("{e}"),
                })
                .collect()
        };
        MetricsView {
            page,
            charts,
            by_route: rows(&hour.by_route),
            by_upstream: rows(&hour.by_upstream),
            width: CHART_W,
            height: CHART_H,
        }
    }
}

/// The most verbose level a `?level=` keeps (default `info`).
pub fn level_floor(level: &str) -> tracing::Level {
    match level {
        "error" => tracing::Level::ERROR,
        "warn" => tracing::Level::WARN,
        "debug" => tracing::Level::DEBUG,
        "trace" => tracing::Level::TRACE,
        _ => tracing::Level::INFO,
    }
}

#[derive(Template)]
#[template(path = "logs.html")]
pub struct LogsView {
    pub page: Page,
    pub level: String,
    pub lines: Vec<String>,
    pub levels: [&'static str; 4],
}

impl LogsView {
    pub fn new(page: Page, level: &str) -> Self {
        let floor = level_floor(level);
        let (kept, _) = crate::telemetry::logtail::follow();
        LogsView {
            page,
            level: floor.to_string().to_lowercase(),
            lines: kept
                .iter()
                .filter(|l| l.level <= floor)
                .map(|l| l.text.clone())
                .collect(),
            levels: ["error", "warn", "info", "debug"],
        }
    }
}

pub struct ClientRow {
    pub route: String,
    pub era: &'static str,
    pub session: String,
    /// The session id's first characters.
    pub short: String,
    pub principal: String,
    pub version: String,
    pub age: String,
    pub idle: String,
    pub calls: u64,
}

#[derive(Template)]
#[template(path = "sessions.html")]
pub struct SessionsView {
    pub page: Page,
    pub rows: Vec<ClientRow>,
}

impl SessionsView {
    pub fn new(page: Page, ops: &Ops) -> Self {
        SessionsView {
            page,
            rows: ops
                .clients()
                .into_iter()
                .map(|c| ClientRow {
                    route: c.route,
                    era: c.era,
                    short: c
                        .session
                        .as_deref()
                        .map(|s| s.chars().take(8).collect())
                        .unwrap_or_default(),
                    session: c.session.unwrap_or_default(),
                    principal: c.principal,
                    version: c.protocol_version.unwrap_or_else(|| "–".into()),
                    age: age(c.age_seconds),
                    idle: age(c.idle_seconds),
                    calls: c.calls,
                })
                .collect(),
        }
    }
}
