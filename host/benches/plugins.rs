//! `plugins`: what the plugin layer adds to a request, and how long a swap takes.
//!
//! ```text
//! cargo bench -p switchyard --bench plugins
//! cargo bench -p switchyard --bench plugins -- --iterations 50000
//! ```
//!
//! Drives the real chain (`switchyard::plugin`) with components built from
//! `tests/plugins/probe` (release, `wasm32-wasip2`), in process, one request
//! at a time on a current-thread runtime, so each figure is the time the
//! chain adds to one request (what a request pays on top of the relay):
//!
//! | case | plugin |
//! |---|---|
//! | context-only | `request = "noop"`: looks at the context only, continues |
//! | parse 1 KB | `request = "parse"`: parses the ~1 KB `tools/call` params, continues |
//! | 5-plugin chain | five context-only plugins, request phase and request + response |
//!
//! each in `pooled` (warm instances) and `fresh` (a new instance per call)
//! isolation; and the swap: [`Plugins::reload`] of one plugin whose config
//! changed (instantiate, configure, describe; compiled code comes from
//! wasmtime's cache) plus the chain store, as a hot swap does it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use serde_json::{Value, json};
use switchyard::config::PluginSpec;
use switchyard::mcp::Era;
use switchyard::plugin::{Chain, Decision, Facts, Passage, Plugins};

fn build_probe() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap().join("wasm");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .current_dir(root)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .args(["-p", "switchyard-test-probe", "--target-dir"])
        .arg(&target)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the probe plugin failed");
    target.join("wasm32-wasip2/release/switchyard_test_probe.wasm")
}

/// Plugin specs through the real config loader.
fn specs(probe: &Path, plugins: &[(&str, Value, &str)]) -> Vec<PluginSpec> {
    let mut toml = String::from("[upstreams.none]\ncommand = \"true\"\n\n");
    for (name, config, isolation) in plugins {
        toml += &format!(
            "[plugins.{name}]\ncomponent = {:?}\nisolation = \"{isolation}\"\nconfig = {}\n\n",
            probe.display().to_string(),
            toml_inline(config)
        );
    }
    let vars = std::collections::HashMap::<String, String>::new();
    switchyard::config::from_toml_str(&toml, Path::new("bench.toml"), &vars)
        .expect("bench config is valid")
        .plugins
}

fn toml_inline(v: &Value) -> String {
    match v {
        Value::Object(m) => format!(
            "{{ {} }}",
            m.iter()
                .map(|(k, v)| format!("{k:?} = {}", toml_inline(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(toml_inline).collect::<Vec<_>>().join(", ")
        ),
        other => other.to_string(),
    }
}

/// ~1 KB of realistic `tools/call` params.
fn params_1kb() -> Value {
    let p = json!({
        "name": "search_issues",
        "arguments": {
            "repository": "example-org/example-repository",
            "query": "label:bug state:open sort:updated-desc ".repeat(8),
            "fields": ["title", "body", "labels", "assignees", "milestone", "comments", "reactions"],
            "filters": {"author": "someone", "since": "2026-01-01T00:00:00Z", "limit": 50},
            "context": "x".repeat(300),
        },
        "_meta": {"progressToken": "tok-1"},
    });
    let len = p.to_string().len();
    assert!((900..1200).contains(&len), "params are {len} bytes");
    p
}

struct Stats {
    median: f64,
    p99: f64,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    Stats {
        median: at(0.5),
        p99: at(0.99),
    }
}

/// Times `iterations` requests through `chain` (request phase, and the
/// response phase too if `response`).
async fn time_chain(chain: &Chain, params: &Value, iterations: usize, response: bool) -> Stats {
    let facts = Facts {
        request_id: "1",
        route: "/mcp",
        upstream: Some("demo"),
        method: "tools/call",
        target: Some("search_issues"),
        headers: None,
        client_address: None,
        client_cert: None,
        era: Era::Legacy,
        protocol_version: "2025-11-25",
    };
    let result = json!({"content": [{"type": "text", "text": "ok"}]});
    let mut samples = Vec::with_capacity(iterations);
    for i in 0..iterations + iterations / 10 {
        let started = Instant::now();
        let mut passage = Passage::default();
        let decision = chain
            .on_request(&facts, &mut passage, Some(params.clone()))
            .await;
        assert!(matches!(decision, Decision::Continue(_)), "{decision:?}");
        if response {
            let out = chain
                .on_response(&facts, &mut passage, Some(params), Ok(result.clone()))
                .await;
            assert!(out.is_ok());
        }
        let took = started.elapsed();
        if i >= iterations / 10 {
            samples.push(took);
        }
    }
    stats(samples)
}

/// A first-party plugin's typical call: `method` with `params` (request
/// phase) and `result` (response phase), as `principal` with an API key.
struct Typical {
    label: &'static str,
    method: &'static str,
    target: Option<&'static str>,
    params: Value,
    result: Value,
}

/// Times the request and response phases of `chain` on one typical call;
/// any decision but a refusal is fine (a cache hit responds).
async fn time_typical(chain: &Chain, t: &Typical, iterations: usize) -> Stats {
    let mut headers = axum::http::HeaderMap::new();
    headers.insert(
        "authorization",
        "Bearer bench-key-0123456789".parse().unwrap(),
    );
    headers.insert("host", "127.0.0.1:8080".parse().unwrap());
    let facts = Facts {
        request_id: "1",
        route: "/mcp",
        upstream: Some("demo"),
        method: t.method,
        target: t.target,
        headers: Some(&headers),
        client_address: None,
        client_cert: None,
        era: Era::Legacy,
        protocol_version: "2025-11-25",
    };
    let mut samples = Vec::with_capacity(iterations);
    for i in 0..iterations + iterations / 10 {
        let started = Instant::now();
        let mut passage = Passage::default();
        let decision = chain
            .on_request(&facts, &mut passage, Some(t.params.clone()))
            .await;
        match decision {
            Decision::Reject(r) => panic!("{}: refused: {r:?}", t.label),
            Decision::Continue(_) | Decision::Respond(_) => {}
        }
        let out = chain
            .on_response(&facts, &mut passage, Some(&t.params), Ok(t.result.clone()))
            .await;
        assert!(out.is_ok(), "{}: {out:?}", t.label);
        if i >= iterations / 10 {
            samples.push(started.elapsed());
        }
    }
    stats(samples)
}

/// `(instance name, builtin name, config)`.
type BuiltinEntry = (&'static str, &'static str, Value);

/// Specs of builtins, through the real config loader.
fn builtin_specs(plugins: &[BuiltinEntry]) -> Vec<PluginSpec> {
    let mut toml = String::from("[upstreams.none]\ncommand = \"true\"\n\n");
    for (name, builtin, config) in plugins {
        toml += &format!(
            "[plugins.{name}]\ncomponent = \"builtin:{builtin}\"\nconfig = {}\n\n",
            toml_inline(config)
        );
    }
    let vars = std::collections::HashMap::<String, String>::new();
    switchyard::config::from_toml_str(&toml, Path::new("bench.toml"), &vars)
        .expect("bench config is valid")
        .plugins
}

/// The same work without a chain: what cloning the params costs, to
/// subtract.
fn baseline(params: &Value, iterations: usize) -> Stats {
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let started = Instant::now();
        std::hint::black_box(params.clone());
        samples.push(started.elapsed());
    }
    stats(samples)
}

fn main() {
    let mut iterations = 20_000usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--iterations" {
            iterations = args
                .next()
                .and_then(|v| v.parse().ok())
                .expect("--iterations N");
        }
    }
    let probe = build_probe();
    // A compile cache of our own, empty: the first load compiles, the next
    // one finds the artefact on disk (what a restart does).
    let cache = std::env::temp_dir().join(format!("switchyard-bench-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    // SAFETY: no other thread exists yet.
    unsafe { std::env::set_var("SWITCHYARD_CACHE_DIR", &cache) };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let one = specs(&probe, &[("p", json!({"request": "noop"}), "pooled")]);
        let started = Instant::now();
        Plugins::load(&one).await.expect("plugin loads");
        let cold = started.elapsed();
        let started = Instant::now();
        Plugins::load(&one).await.expect("plugin loads");
        let cached = started.elapsed();
        let params = params_1kb();
        let noop = json!({"request": "noop", "hooks": ["request"]});
        let noop_both = json!({"request": "noop", "hooks": ["request", "response"]});
        let parse = json!({"request": "parse", "hooks": ["request"]});
        let mut rows: Vec<(String, Stats)> = Vec::new();
        let base = baseline(&params, iterations);
        rows.push(("no plugin (params clone only)".into(), base));
        for isolation in ["pooled", "fresh"] {
            for (label, config) in [("context-only", &noop), ("parse 1 KB", &parse)] {
                let s = specs(&probe, &[("p", config.clone(), isolation)]);
                let plugins = Plugins::load(&s).await.expect("plugin loads");
                let chain = plugins.chain(&[s[0].name.clone()]);
                let st = time_chain(&chain, &params, iterations, false).await;
                rows.push((format!("{label}, {isolation}: one hook"), st));
            }
            let five: Vec<_> = (0..5)
                .map(|i| (["a", "b", "c", "d", "e"][i], noop_both.clone(), isolation))
                .collect();
            let s = specs(&probe, &five);
            let plugins = Plugins::load(&s).await.expect("plugins load");
            let names: Vec<_> = s.iter().map(|p| p.name.clone()).collect();
            let chain = plugins.chain(&names);
            let st = time_chain(&chain, &params, iterations, false).await;
            rows.push((format!("5-plugin chain, {isolation}: request phase"), st));
            let st = time_chain(&chain, &params, iterations, true).await;
            rows.push((format!("5-plugin chain, {isolation}: request + response"), st));
        }

        // The swap: reload with one plugin's config changed, then store.
        let mut plugins =
            Plugins::load(&specs(&probe, &[("p", json!({"request": "noop", "tag": "0"}), "pooled")]))
                .await
                .expect("plugin loads");
        let slot = ArcSwap::from_pointee(Chain::default());
        let mut samples = Vec::new();
        for i in 1..=40 {
            let next_specs = specs(
                &probe,
                &[("p", json!({"request": "noop", "tag": i.to_string()}), "pooled")],
            );
            let started = Instant::now();
            let (next, changed) = plugins.reload(&next_specs).await.expect("reload");
            slot.store(Arc::new(next.chain(&[next_specs[0].name.clone()])));
            samples.push(started.elapsed());
            assert_eq!(changed.len(), 1);
            plugins = next;
        }
        let swap = stats(samples);

        // The first-party plugins, each on its typical call, then the
        // example chain (auth → rate-limit → filter → tool-rewrite → cache).
        let key_hash = {
            use sha2::Digest;
            let mut h = sha2::Sha256::new();
            h.update(b"salt");
            h.update(b"bench-key-0123456789");
            let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
            format!("sha256:{}:{}", hex(b"salt"), hex(&h.finalize()))
        };
        let auth = json!({"api_keys": [{"principal": "bench", "key_hash": key_hash, "roles": ["dev"]}],
                          "roles": {"dev": {"tools": ["*"], "prompts": ["*"], "resources": ["*"]}}});
        let limit = json!({"capacity": 1e12, "refill_per_second": 1e9, "key": ["principal", "tool"]});
        let filter = json!({"tools": {"deny": ["*delete*"]}, "builtin_redactions": true, "max_response_bytes": 65536});
        let rewrite = json!({"tools": {"search_issues": {"name": "search", "description": "Search"}}});
        let cache = json!({"ttl_seconds": 3600, "default_scope": "public"});
        let pin = json!({"on_change": "warn"});
        let tools_list = json!({"tools": (0..10).map(|i| json!({"name": format!("tool_{i}"),
            "description": "A tool of the bench", "inputSchema": {"type": "object", "properties": {"q": {"type": "string"}}}}))
            .collect::<Vec<_>>()});
        let call_result = json!({"content": [{"type": "text", "text": "a short answer with no secret in it"}]});
        let call = |label| Typical {
            label,
            method: "tools/call",
            target: Some("search_issues"),
            params: params.clone(),
            result: call_result.clone(),
        };
        let list = |label| Typical {
            label,
            method: "tools/list",
            target: None,
            params: json!({}),
            result: tools_list.clone(),
        };
        let cases: Vec<(Vec<BuiltinEntry>, Typical)> = vec![
            (vec![("keys", "auth", auth.clone())], call("auth: API key + RBAC on tools/call")),
            (vec![("limit", "rate-limit", limit.clone())], call("rate-limit: take a token (CAS) on tools/call")),
            (vec![("guard", "filter", filter.clone())], call("filter: deny list + redaction + size on tools/call")),
            (vec![("rewrite", "tool-rewrite", rewrite.clone())], Typical { target: Some("search"), ..call("tool-rewrite: map a renamed call back") }),
            (vec![("cache", "cache", cache.clone())], list("cache: tools/list hit")),
            (vec![("pin", "pin", pin.clone())], list("pin: hash a 10-tool list")),
            (
                vec![
                    ("keys", "auth", auth),
                    ("limit", "rate-limit", limit),
                    ("guard", "filter", filter),
                    ("rewrite", "tool-rewrite", rewrite),
                    ("cache", "cache", cache),
                ],
                Typical {
                    target: Some("search"),
                    ..call("example chain (auth → rate-limit → filter → tool-rewrite → cache), tools/call")
                },
            ),
        ];
        let mut builtin_rows = Vec::new();
        for (plugins, typical) in cases {
            let s = builtin_specs(&plugins);
            let loaded = Plugins::load(&s).await.expect("builtins load");
            let names: Vec<_> = s.iter().map(|p| p.name.clone()).collect();
            let chain = loaded.chain(&names);
            let st = time_typical(&chain, &typical, iterations).await;
            builtin_rows.push((typical.label, st));
        }

        println!("\nPer request, {iterations} iterations each (µs; the 'no plugin' row is the floor):\n");
        println!("| case | median µs | p99 µs |");
        println!("|---|---|---|");
        for (label, st) in &rows {
            println!("| {label} | {:.1} | {:.1} |", st.median, st.p99);
        }
        println!("\nFirst-party plugins on their typical call, request + response phase (µs):\n");
        println!("| plugin, call | median µs | p99 µs |");
        println!("|---|---|---|");
        for (label, st) in &builtin_rows {
            println!("| {label} | {:.1} | {:.1} |", st.median, st.p99);
        }
        println!(
            "\nSwap (reload one changed plugin + chain store), 40 swaps: median {:.2} ms, p99 {:.2} ms",
            swap.median / 1e3,
            swap.p99 / 1e3
        );
        println!(
            "Load of the probe component ({} KiB): cold compile {:.1} ms, from the compile cache {:.1} ms",
            std::fs::metadata(&probe).map(|m| m.len() / 1024).unwrap_or(0),
            cold.as_secs_f64() * 1e3,
            cached.as_secs_f64() * 1e3
        );
    });
}
