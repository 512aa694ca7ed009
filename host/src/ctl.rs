//! `switchyard health` and `switchyard tools`: asking a running gateway,
//! over its public endpoints (no admin token needed).

use serde_json::{Value, json};

use crate::mcp::{self, meta};

/// A running gateway could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{url} answered: {reason}")]
    Refused { url: String, reason: String },
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .expect("an HTTP client")
}

/// `GET {base}/healthz`.
pub async fn health(base: &str) -> Result<Value, CtlError> {
    let url = format!("{}/healthz", base.trim_end_matches('/'));
    let unreachable = |e: reqwest::Error| CtlError::Unreachable {
        url: url.clone(),
        reason: e.to_string(),
    };
    let resp = client().get(&url).send().await.map_err(unreachable)?;
    if !resp.status().is_success() {
        return Err(CtlError::Refused {
            url: url.clone(),
            reason: format!("HTTP {}", resp.status()),
        });
    }
    resp.json().await.map_err(unreachable)
}

/// Whether a health report is all good: every upstream ready or idle.
pub fn healthy(report: &Value) -> bool {
    report["upstreams"].as_array().is_some_and(|ups| {
        ups.iter()
            .all(|u| matches!(u["state"].as_str(), Some("ready" | "idle")))
    })
}

/// Every tool at the route `url` (all pages), asked as a modern client
/// with `headers` added (e.g. `Authorization` when the route has auth).
pub async fn tools(url: &str, headers: &[(String, String)]) -> Result<Vec<Value>, CtlError> {
    let http = client();
    let mut tools = Vec::new();
    let mut cursor: Option<String> = None;
    for page in 0..100 {
        let mut params = json!({"_meta": {
            meta::PROTOCOL_VERSION: mcp::MODERN_VERSION,
            meta::CLIENT_CAPABILITIES: {},
            meta::CLIENT_INFO: {"name": "switchyard-cli", "version": env!("CARGO_PKG_VERSION")},
        }});
        if let Some(c) = &cursor {
            params["cursor"] = json!(c);
        }
        let mut req = http
            .post(url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", mcp::MODERN_VERSION)
            .header("mcp-method", "tools/list")
            .json(&json!({"jsonrpc": "2.0", "id": page, "method": "tools/list", "params": params}));
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let resp = req.send().await.map_err(|e| CtlError::Unreachable {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        // A plain JSON body, or the last `data:` line of an SSE body.
        let body = text
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("data:"))
            .unwrap_or(&text);
        let reply: Value = serde_json::from_str(body.trim()).map_err(|_| CtlError::Refused {
            url: url.to_owned(),
            reason: format!("HTTP {status}: {}", text.trim()),
        })?;
        if let Some(e) = reply.get("error") {
            return Err(CtlError::Refused {
                url: url.to_owned(),
                reason: format!("HTTP {status}: {e}"),
            });
        }
        if let Some(page) = reply["result"]["tools"].as_array() {
            tools.extend(page.iter().cloned());
        }
        match reply["result"]["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    Ok(tools)
}
