//! The last hour of the gateway's metrics, kept in memory for the console.
//!
//! Nothing is added to the request path: every [`STEP`] a task renders the
//! Prometheus exposition the gateway already keeps (the same numbers as
//! `/metrics`), parses it (`prometheus-parse`), and keeps the totals that
//! the console charts: requests and errors (all, by route, by upstream),
//! the request-latency histogram, plugin hook time and failures, cache hits
//! and misses, rate-limit refusals. Rates and percentiles of an interval are
//! differences between two samples.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use prometheus_parse::{Scrape, Value};

/// How often a sample is taken.
pub const STEP: Duration = Duration::from_secs(10);
/// How many samples are kept (an hour's).
const KEPT: usize = 361;

/// Cumulative totals at one instant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    pub requests: f64,
    pub errors: f64,
    /// route → (requests, errors)
    pub by_route: BTreeMap<String, (f64, f64)>,
    /// upstream → (requests, errors); requests the gateway answered itself
    /// are under "".
    pub by_upstream: BTreeMap<String, (f64, f64)>,
    /// Request latency: (upper bound in seconds, requests at or under it),
    /// summed over every route and method.
    pub latency: Vec<(f64, f64)>,
    /// plugin → (hook seconds, hook calls)
    pub hooks: BTreeMap<String, (f64, f64)>,
    /// plugin → failed hook calls
    pub hook_failures: BTreeMap<String, f64>,
    pub cache_hits: f64,
    pub cache_misses: f64,
    pub rate_limited: f64,
}

impl Totals {
    /// Reads the totals out of a Prometheus text exposition.
    pub fn parse(text: &str) -> Totals {
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        let Ok(scrape) = Scrape::parse(lines) else {
            return Totals::default();
        };
        let mut t = Totals::default();
        for s in &scrape.samples {
            let label = |k: &str| s.labels.get(k).unwrap_or("").to_owned();
            let value = match &s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
                Value::Histogram(buckets) => {
                    if s.metric == "switchyard_request_duration_seconds" {
                        merge_buckets(&mut t.latency, buckets);
                    }
                    continue;
                }
                Value::Summary(_) => continue,
            };
            match s.metric.as_str() {
                "switchyard_requests_total" => {
                    let failed = if label("outcome") == "ok" { 0.0 } else { value };
                    t.requests += value;
                    t.errors += failed;
                    let r = t.by_route.entry(label("route")).or_default();
                    r.0 += value;
                    r.1 += failed;
                    let u = t.by_upstream.entry(label("upstream")).or_default();
                    u.0 += value;
                    u.1 += failed;
                }
                "switchyard_plugin_hook_duration_seconds_sum" => {
                    t.hooks.entry(label("plugin")).or_default().0 += value;
                }
                "switchyard_plugin_hook_duration_seconds_count" => {
                    t.hooks.entry(label("plugin")).or_default().1 += value;
                }
                "switchyard_plugin_failures_total" => {
                    *t.hook_failures.entry(label("plugin")).or_default() += value;
                }
                "switchyard_plugin_cache_hits_total" => t.cache_hits += value,
                "switchyard_plugin_cache_misses_total" => t.cache_misses += value,
                "switchyard_plugin_rate_limit_rejections_total" => t.rate_limited += value,
                _ => {}
            }
        }
        t
    }
}

fn merge_buckets(into: &mut Vec<(f64, f64)>, buckets: &[prometheus_parse::HistogramCount]) {
    for b in buckets {
        match into.iter_mut().find(|(le, _)| *le == b.less_than) {
            Some(slot) => slot.1 += b.count,
            None => into.push((b.less_than, b.count)),
        }
    }
    into.sort_by(|a, b| a.0.total_cmp(&b.0));
}

/// What happened between two samples.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Interval {
    pub seconds: f64,
    pub requests: f64,
    pub errors: f64,
    pub by_route: BTreeMap<String, (f64, f64)>,
    pub by_upstream: BTreeMap<String, (f64, f64)>,
    latency: Vec<(f64, f64)>,
    pub hooks: BTreeMap<String, (f64, f64)>,
    pub hook_failures: BTreeMap<String, f64>,
    pub cache_hits: f64,
    pub cache_misses: f64,
    pub rate_limited: f64,
}

impl Interval {
    /// `after` minus `before` (totals only grow; a series missing before
    /// counts from zero).
    pub fn between(before: &Totals, after: &Totals, seconds: f64) -> Interval {
        let pairs = |a: &BTreeMap<String, (f64, f64)>, b: &BTreeMap<String, (f64, f64)>| {
            a.iter()
                .map(|(k, v)| {
                    let o = b.get(k).copied().unwrap_or_default();
                    (k.clone(), ((v.0 - o.0).max(0.0), (v.1 - o.1).max(0.0)))
                })
                .collect()
        };
        Interval {
            seconds,
            requests: (after.requests - before.requests).max(0.0),
            errors: (after.errors - before.errors).max(0.0),
            by_route: pairs(&after.by_route, &before.by_route),
            by_upstream: pairs(&after.by_upstream, &before.by_upstream),
            latency: after
                .latency
                .iter()
                .map(|(le, n)| {
                    let o = before
                        .latency
                        .iter()
                        .find(|(l, _)| l == le)
                        .map_or(0.0, |(_, n)| *n);
                    (*le, (n - o).max(0.0))
                })
                .collect(),
            hooks: pairs(&after.hooks, &before.hooks),
            hook_failures: after
                .hook_failures
                .iter()
                .map(|(k, v)| {
                    let o = before.hook_failures.get(k).copied().unwrap_or_default();
                    (k.clone(), (v - o).max(0.0))
                })
                .collect(),
            cache_hits: (after.cache_hits - before.cache_hits).max(0.0),
            cache_misses: (after.cache_misses - before.cache_misses).max(0.0),
            rate_limited: (after.rate_limited - before.rate_limited).max(0.0),
        }
    }

    pub fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.requests / self.seconds
        } else {
            0.0
        }
    }

    pub fn error_ratio(&self) -> f64 {
        if self.requests > 0.0 {
            self.errors / self.requests
        } else {
            0.0
        }
    }

    /// The `q` quantile of request latency in seconds (linear within the
    /// histogram bucket it falls in), `None` without requests.
    pub fn latency_quantile(&self, q: f64) -> Option<f64> {
        let total = self.latency.last().map(|(_, n)| *n)?;
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        let mut lower = (0.0, 0.0);
        for &(le, n) in &self.latency {
            if n >= rank {
                if le.is_infinite() {
                    return Some(lower.0);
                }
                let span = n - lower.1;
                let within = if span > 0.0 {
                    (rank - lower.1) / span
                } else {
                    1.0
                };
                return Some(lower.0 + (le - lower.0) * within);
            }
            lower = (le, n);
        }
        Some(lower.0)
    }

    /// Mean hook time in seconds over every plugin, `None` without calls.
    pub fn hook_mean(&self) -> Option<f64> {
        let (sum, n) = self
            .hooks
            .values()
            .fold((0.0, 0.0), |(s, c), (a, b)| (s + a, c + b));
        (n > 0.0).then(|| sum / n)
    }

    pub fn cache_hit_ratio(&self) -> Option<f64> {
        let n = self.cache_hits + self.cache_misses;
        (n > 0.0).then(|| self.cache_hits / n)
    }
}

/// The samples, oldest first.
#[derive(Default)]
pub struct History {
    samples: Mutex<VecDeque<(SystemTime, Totals)>>,
}

static HISTORY: OnceLock<History> = OnceLock::new();

/// The process's history (empty until [`start`]).
pub fn get() -> &'static History {
    HISTORY.get_or_init(History::default)
}

/// Starts sampling (once per process; later calls do nothing).
pub fn start() {
    static STARTED: OnceLock<()> = OnceLock::new();
    if STARTED.set(()).is_err() {
        return;
    }
    tokio::spawn(async {
        let mut tick = tokio::time::interval(STEP);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            get().record(SystemTime::now(), current());
        }
    });
}

/// The totals as of now.
pub fn current() -> Totals {
    Totals::parse(&super::handle().render())
}

impl History {
    pub fn record(&self, at: SystemTime, totals: Totals) {
        let mut s = self.samples.lock().expect("history lock");
        if s.len() == KEPT {
            s.pop_front();
        }
        s.push_back((at, totals));
    }

    /// From the sample about `window` before `now` (or the oldest kept) to
    /// `totals` taken at `now`.
    pub fn since(&self, window: Duration, now: SystemTime, totals: &Totals) -> Interval {
        let s = self.samples.lock().expect("history lock");
        let from = now.checked_sub(window).unwrap_or(SystemTime::UNIX_EPOCH);
        let base = s
            .iter()
            .find(|(at, _)| *at >= from)
            .or_else(|| s.back())
            .cloned();
        match base {
            Some((at, before)) => {
                let secs = now.duration_since(at).unwrap_or_default().as_secs_f64();
                Interval::between(&before, totals, secs)
            }
            None => Interval::default(),
        }
    }

    /// Each step's interval, oldest first, with the time it ended.
    pub fn steps(&self) -> Vec<(SystemTime, Interval)> {
        let s = self.samples.lock().expect("history lock");
        s.iter()
            .zip(s.iter().skip(1))
            .map(|((a, ta), (b, tb))| {
                let secs = b.duration_since(*a).unwrap_or_default().as_secs_f64();
                (*b, Interval::between(ta, tb, secs))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# TYPE switchyard_requests_total counter
switchyard_requests_total{route="/mcp",upstream="demo",method="tools/call",outcome="ok"} 90
switchyard_requests_total{route="/mcp",upstream="demo",method="tools/call",outcome="rejected"} 10
switchyard_requests_total{route="/b",upstream="",method="ping",outcome="ok"} 5
# TYPE switchyard_request_duration_seconds histogram
switchyard_request_duration_seconds_bucket{route="/mcp",method="tools/call",le="0.001"} 50
switchyard_request_duration_seconds_bucket{route="/mcp",method="tools/call",le="0.01"} 100
switchyard_request_duration_seconds_bucket{route="/mcp",method="tools/call",le="+Inf"} 100
switchyard_request_duration_seconds_sum{route="/mcp",method="tools/call"} 0.3
switchyard_request_duration_seconds_count{route="/mcp",method="tools/call"} 100
# TYPE switchyard_plugin_hook_duration_seconds histogram
switchyard_plugin_hook_duration_seconds_bucket{plugin="guard",hook="on-request",le="+Inf"} 4
switchyard_plugin_hook_duration_seconds_sum{plugin="guard",hook="on-request"} 0.002
switchyard_plugin_hook_duration_seconds_count{plugin="guard",hook="on-request"} 4
# TYPE switchyard_plugin_cache_hits_total counter
switchyard_plugin_cache_hits_total{plugin="cache",method="tools/list"} 3
# TYPE switchyard_plugin_cache_misses_total counter
switchyard_plugin_cache_misses_total{plugin="cache",method="tools/list"} 1
# TYPE switchyard_plugin_rate_limit_rejections_total counter
switchyard_plugin_rate_limit_rejections_total{plugin="rl",route="/mcp"} 7
"#;

    #[test]
    fn totals_are_read_from_the_exposition() {
        let t = Totals::parse(TEXT);
        assert_eq!(t.requests, 105.0);
        assert_eq!(t.errors, 10.0);
        assert_eq!(t.by_route["/mcp"], (100.0, 10.0));
        assert_eq!(t.by_upstream[""], (5.0, 0.0));
        assert_eq!(
            t.latency,
            vec![(0.001, 50.0), (0.01, 100.0), (f64::INFINITY, 100.0)]
        );
        assert_eq!(t.hooks["guard"], (0.002, 4.0));
        assert_eq!(
            (t.cache_hits, t.cache_misses, t.rate_limited),
            (3.0, 1.0, 7.0)
        );
    }

    #[test]
    fn an_interval_is_the_difference_and_quantiles_interpolate() {
        let after = Totals::parse(TEXT);
        let mut before = after.clone();
        before.requests = 5.0;
        before.errors = 0.0;
        before.latency = vec![(0.001, 0.0), (0.01, 0.0), (f64::INFINITY, 0.0)];
        before.cache_hits = 3.0;
        before.cache_misses = 0.0;
        let i = Interval::between(&before, &after, 10.0);
        assert_eq!(i.rate(), 10.0);
        assert_eq!(i.error_ratio(), 0.1);
        // Half the calls are under 1 ms: the median is the bucket's top.
        assert_eq!(i.latency_quantile(0.5), Some(0.001));
        // p99: 49 of the 50 calls in (1 ms, 10 ms].
        let p99 = i.latency_quantile(0.99).unwrap();
        assert!((p99 - (0.001 + 0.009 * 49.0 / 50.0)).abs() < 1e-12, "{p99}");
        assert_eq!(i.cache_hit_ratio(), Some(0.0));
        assert_eq!(Interval::default().latency_quantile(0.5), None);
    }

    #[test]
    fn the_history_keeps_an_hour_and_measures_since_a_window() {
        let h = History::default();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        for i in 0..400u32 {
            let t = Totals {
                requests: f64::from(i) * 10.0,
                ..Totals::default()
            };
            h.record(t0 + STEP * i, t);
        }
        assert_eq!(h.steps().len(), KEPT - 1);
        let now = t0 + STEP * 399;
        let last = Totals {
            requests: 3990.0,
            ..Totals::default()
        };
        let i = h.since(Duration::from_secs(60), now, &last);
        assert_eq!(i.seconds, 60.0);
        assert_eq!(i.requests, 60.0);
    }
}
