//! Which era a request speaks, which handler serves it, and how its result is
//! shaped for that era.
//!
//! Era rules (see [`Era`]):
//! - a request whose `_meta` carries protocolVersion `2026-07-28` is modern;
//!   an unknown `_meta` version is -32022 with `data.supported`;
//! - otherwise it belongs to the legacy `initialize` session (dual and legacy
//!   modes), or is refused (modern-only mode: `initialize` gets -32022,
//!   anything else without the `_meta` version -32602);
//! - legacy-only mode ignores `_meta` and answers `server/discover` with
//!   -32601, which is how a dual-era client recognizes a legacy server.
//!
//! Modern results get `resultType`, `_meta` serverInfo and, for lists, reads
//! and discovery, the cache hints `ttlMs`/`cacheScope` ([`decorate_modern`]).

use std::sync::Arc;

use serde_json::{Value, json};

use crate::protocol::{
    LATEST_LEGACY_VERSION, LEGACY_VERSIONS, LogLevel, MODERN_VERSION, RpcError, meta, meta_field,
};
use crate::request::{ModernMeta, Request, RequestEra};
use crate::session::{Session, SubscriptionFilter};
use crate::{Era, Options, completion, pagination, prompts, resources, tools};

const INSTRUCTIONS: &str = "Switchyard's demo server. `echo`, `add` and `slow` are simple demo tools; \
the test_* tools, test:// resources and test_* prompts are the MCP conformance fixture.";

/// Methods whose modern results carry `ttlMs` and `cacheScope`.
const CACHEABLE: [&str; 6] = [
    "server/discover",
    "tools/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "prompts/list",
];

/// Serves one request to completion. `subscriptions/listen` never completes:
/// it ends by cancellation or at shutdown (see `session`).
pub(crate) async fn handle_request(
    session: &Arc<Session>,
    id: &Value,
    method: &str,
    params: Value,
) -> Result<Value, RpcError> {
    let era = request_era(&session.opts, method, &params)?;
    let req = Request {
        id: id.clone(),
        params,
        era,
        session: session.clone(),
    };
    match req.era {
        RequestEra::Legacy => legacy(&req, method).await,
        RequestEra::Modern(_) => {
            let result = modern(&req, method).await?;
            Ok(decorate_modern(&session.opts, method, result))
        }
    }
}

/// Work that runs beside the requests for the whole connection.
pub(crate) async fn background(session: Arc<Session>) {
    if let Some(interval) = session.opts.watch_interval {
        resources::watch(session, interval).await;
    }
}

fn request_era(opts: &Options, method: &str, params: &Value) -> Result<RequestEra, RpcError> {
    let version = meta_field(params, meta::PROTOCOL_VERSION).map(|v| v.as_str().unwrap_or(""));
    match (opts.era, version) {
        (Era::Legacy, _) => Ok(RequestEra::Legacy),
        (Era::Modern, _) if method == "initialize" => {
            let requested = params
                .get("protocolVersion")
                .and_then(Value::as_str)
                .unwrap_or("");
            Err(RpcError::unsupported_version(
                requested,
                &supported_versions(opts.era),
            ))
        }
        (_, Some(MODERN_VERSION)) => modern_meta(params),
        (Era::Dual, Some(v)) if LEGACY_VERSIONS.contains(&v) => Ok(RequestEra::Legacy),
        (_, Some(v)) => Err(RpcError::unsupported_version(
            v,
            &supported_versions(opts.era),
        )),
        // Discovery is a modern method whatever the client forgot to send.
        (_, None) if method == "server/discover" => modern_meta(params),
        (Era::Dual, None) => Ok(RequestEra::Legacy),
        (Era::Modern, None) => Err(RpcError::invalid_params(format!(
            "missing _meta \"{}\": this server speaks only {MODERN_VERSION}",
            meta::PROTOCOL_VERSION
        ))),
    }
}

/// What `server/discover` and -32022 list, newest first.
fn supported_versions(era: Era) -> Vec<&'static str> {
    let mut versions = Vec::new();
    if era.serves_modern() {
        versions.push(MODERN_VERSION);
    }
    if era.serves_legacy() {
        versions.extend(LEGACY_VERSIONS);
    }
    versions
}

fn modern_meta(params: &Value) -> Result<RequestEra, RpcError> {
    let client_capabilities = meta_field(params, meta::CLIENT_CAPABILITIES)
        .cloned()
        .unwrap_or_else(|| json!({}));
    let log_level = match meta_field(params, meta::LOG_LEVEL) {
        None => None,
        Some(level) => Some(level.as_str().and_then(LogLevel::parse).ok_or_else(|| {
            RpcError::invalid_params(format!("invalid _meta \"{}\": {level}", meta::LOG_LEVEL))
        })?),
    };
    Ok(RequestEra::Modern(ModernMeta {
        client_capabilities,
        log_level,
    }))
}

fn capabilities() -> Value {
    json!({
        "tools": { "listChanged": true },
        "resources": { "subscribe": true, "listChanged": true },
        "prompts": { "listChanged": true },
        "logging": {},
        "completions": {},
    })
}

async fn legacy(req: &Request, method: &str) -> Result<Value, RpcError> {
    match method {
        "initialize" => initialize(req),
        "ping" => Ok(json!({})),
        "logging/setLevel" => {
            let name = req.str_param("level")?;
            let level = LogLevel::parse(name)
                .ok_or_else(|| RpcError::invalid_params(format!("unknown log level {name:?}")))?;
            req.session.set_legacy_log_level(level);
            Ok(json!({}))
        }
        "resources/subscribe" => {
            req.session.subscribe(req.str_param("uri")?);
            Ok(json!({}))
        }
        "resources/unsubscribe" => {
            req.session.unsubscribe(req.str_param("uri")?);
            Ok(json!({}))
        }
        _ => features(req, method).await,
    }
}

async fn modern(req: &Request, method: &str) -> Result<Value, RpcError> {
    match method {
        "server/discover" => Ok(json!({
            "supportedVersions": supported_versions(req.session.opts.era),
            "capabilities": capabilities(),
            "instructions": INSTRUCTIONS,
        })),
        "subscriptions/listen" => listen(req).await,
        _ => features(req, method).await,
    }
}

/// The methods both eras share.
async fn features(req: &Request, method: &str) -> Result<Value, RpcError> {
    match method {
        "tools/list" => list_page(req, "tools", tools::list(&req.session)),
        "tools/call" => tools::call(req).await,
        "resources/list" => list_page(req, "resources", resources::list()),
        "resources/templates/list" => list_page(req, "resourceTemplates", resources::templates()),
        "resources/read" => resources::read(req),
        "prompts/list" => list_page(req, "prompts", prompts::list()),
        "prompts/get" => prompts::get(req).await,
        "completion/complete" => completion::complete(&req.params),
        _ => Err(RpcError::method_not_found(method)),
    }
}

fn initialize(req: &Request) -> Result<Value, RpcError> {
    let requested = req.str_param("protocolVersion")?;
    let version = if LEGACY_VERSIONS.contains(&requested) {
        requested
    } else {
        LATEST_LEGACY_VERSION
    };
    let client_capabilities = req
        .params
        .get("capabilities")
        .cloned()
        .unwrap_or_else(|| json!({}));
    req.session.legacy_initialize(client_capabilities);
    tracing::info!(requested, negotiated = version, client = %req.params["clientInfo"], "legacy session initialized");
    Ok(json!({
        "protocolVersion": version,
        "capabilities": capabilities(),
        "serverInfo": req.session.opts.server_info(),
        "instructions": INSTRUCTIONS,
    }))
}

/// `subscriptions/listen`: acknowledge, then stay open; the stream's
/// notifications are sent by `Session::announce` while the guard lives.
async fn listen(req: &Request) -> Result<Value, RpcError> {
    let filter = req
        .params
        .get("notifications")
        .ok_or_else(|| RpcError::invalid_params("missing `notifications`"))
        .and_then(|value| SubscriptionFilter::from_json(value).map_err(RpcError::invalid_params))?;
    let _stream = req.session.open_listen(&req.id, filter);
    std::future::pending().await
}

/// One page of a list result: `{ field: [...], nextCursor? }`.
fn list_page(req: &Request, field: &str, items: Vec<Value>) -> Result<Value, RpcError> {
    let cursor = match req.params.get("cursor") {
        None | Some(Value::Null) => None,
        Some(Value::String(cursor)) => Some(cursor.as_str()),
        Some(_) => return Err(RpcError::invalid_params("`cursor` must be a string")),
    };
    let page = pagination::page(field, items, cursor, req.session.opts.page_size)?;
    let mut result = json!({ field: page.items });
    if let Some(next) = page.next_cursor {
        result["nextCursor"] = json!(next);
    }
    Ok(result)
}

/// Adds what every 2026-07-28 result carries: `resultType` (kept if the
/// handler set it, e.g. `input_required`), `_meta` serverInfo, and cache
/// hints on complete results of [`CACHEABLE`] methods.
fn decorate_modern(opts: &Options, method: &str, mut result: Value) -> Value {
    let Value::Object(obj) = &mut result else {
        return result;
    };
    let complete = obj
        .entry("resultType")
        .or_insert_with(|| json!("complete"))
        .as_str()
        == Some("complete");
    let result_meta = obj.entry("_meta").or_insert_with(|| json!({}));
    if let Value::Object(result_meta) = result_meta {
        result_meta.insert(meta::SERVER_INFO.to_owned(), opts.server_info());
    }
    if complete && CACHEABLE.contains(&method) {
        obj.entry("ttlMs").or_insert_with(|| json!(opts.ttl_ms));
        obj.entry("cacheScope").or_insert_with(|| json!("public"));
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(era: Era) -> Options {
        Options {
            era,
            ..Options::default()
        }
    }

    fn with_version(version: &str) -> Value {
        json!({ "_meta": { meta::PROTOCOL_VERSION: version, meta::CLIENT_CAPABILITIES: {} } })
    }

    #[test]
    fn dual_mode_picks_the_era_per_request() {
        let dual = opts(Era::Dual);
        assert!(matches!(
            request_era(&dual, "tools/list", &json!({})),
            Ok(RequestEra::Legacy)
        ));
        assert!(matches!(
            request_era(&dual, "tools/list", &with_version(MODERN_VERSION)),
            Ok(RequestEra::Modern(_))
        ));
        assert!(matches!(
            request_era(&dual, "tools/list", &with_version("2025-11-25")),
            Ok(RequestEra::Legacy)
        ));
        let error = request_era(&dual, "tools/list", &with_version("1900-01-01")).unwrap_err();
        assert_eq!(
            error.code,
            crate::protocol::code::UNSUPPORTED_PROTOCOL_VERSION
        );
        assert_eq!(error.data.unwrap()["supported"][0], MODERN_VERSION);
    }

    #[test]
    fn single_era_modes_refuse_the_other_era() {
        let legacy = opts(Era::Legacy);
        assert!(matches!(
            request_era(&legacy, "server/discover", &with_version(MODERN_VERSION)),
            Ok(RequestEra::Legacy)
        ));
        let modern = opts(Era::Modern);
        let error = request_era(
            &modern,
            "initialize",
            &json!({ "protocolVersion": "2025-11-25" }),
        )
        .unwrap_err();
        assert_eq!(
            error.code,
            crate::protocol::code::UNSUPPORTED_PROTOCOL_VERSION
        );
        assert_eq!(error.data.unwrap()["supported"], json!([MODERN_VERSION]));
        assert!(request_era(&modern, "ping", &json!({})).is_err());
    }

    #[test]
    fn modern_results_get_type_meta_and_cache_hints() {
        let o = opts(Era::Dual);
        let listed = decorate_modern(&o, "tools/list", json!({ "tools": [] }));
        assert_eq!(listed["resultType"], "complete");
        assert_eq!(listed["ttlMs"], 60_000);
        assert_eq!(listed["cacheScope"], "public");
        assert_eq!(
            listed["_meta"][meta::SERVER_INFO]["name"],
            "switchyard-demo"
        );
        let called = decorate_modern(&o, "tools/call", json!({ "resultType": "input_required" }));
        assert_eq!(called["resultType"], "input_required");
        assert!(called.get("ttlMs").is_none());
    }
}
