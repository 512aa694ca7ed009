//! A remote upstream over HTTP, in whichever transport it speaks.
//!
//! Detection follows the spec's backward-compatibility rules, in order:
//!
//! 1. **modern streamable HTTP** (2026-07-28): `POST server/discover` with the
//!    modern headers; a result listing 2026-07-28 settles it;
//! 2. **legacy streamable HTTP** (2025-03-26 … 2025-11-25): on a 4xx whose
//!    body is not a recognised modern error (or any other answer), `POST
//!    initialize`, keeping the `Mcp-Session-Id` it returns;
//! 3. **HTTP+SSE** (2024-11-05): when `initialize` is refused with a 4xx, `GET`
//!    the URL as an event stream and post to the `endpoint` it announces.
//!
//! Every request is its own POST; its answer (JSON, or an SSE stream of
//! notifications ending with the response) is fed to the connection's
//! [`Dispatcher`], exactly like lines from a child's stdout.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use base64::Engine;
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Client, StatusCode, Url};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::config::{Transport, UpstreamSpec};
use crate::mcp::{self, Era, RpcError, code};
use crate::upstream::conn::{Dispatcher, Outbound};
use crate::upstream::{PeerInfo, gateway_client_capabilities, gateway_info, modern_meta};

const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
const METHOD_HEADER: &str = "mcp-method";
const NAME_HEADER: &str = "mcp-name";

/// Which transport a remote upstream turned out to speak.
#[derive(Debug, Clone)]
enum Mode {
    Modern,
    Streamable {
        session: Option<String>,
        version: String,
    },
    OldSse {
        post_url: Url,
    },
}

/// State shared by the outbound side and the background stream readers.
struct Shared {
    name: String,
    client: Client,
    url: Url,
    headers: HeaderMap,
    mode: OnceLock<Mode>,
    conn: OnceLock<Weak<Dispatcher>>,
    /// In-flight request POSTs by upstream id, so a cancel can close them.
    inflight: Mutex<HashMap<u64, tokio::task::AbortHandle>>,
    /// Fires when the connection must be re-established (session gone, SSE
    /// stream ended).
    dead: CancellationToken,
    reason: Mutex<String>,
}

impl Shared {
    fn die(&self, reason: String) {
        let mut r = self.reason.lock().expect("reason lock");
        if !self.dead.is_cancelled() {
            *r = reason;
            self.dead.cancel();
        }
    }

    /// Feeds a message to the connection; `on` is the call whose response
    /// stream carried it, if any.
    fn dispatch(&self, msg: Value, on: Option<u64>) {
        if let Some(conn) = self.conn.get().and_then(Weak::upgrade) {
            conn.dispatch_on(msg, on);
        }
    }

    fn request(&self, url: &Url, body: &Value) -> reqwest::RequestBuilder {
        let mut req = self
            .client
            .post(url.clone())
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json, text/event-stream");
        let method = body.get("method").and_then(Value::as_str);
        match self.mode.get() {
            None | Some(Mode::Modern) => {
                req = req.header(VERSION_HEADER, mcp::MODERN_VERSION);
                if let Some(m) = method {
                    req = req.header(METHOD_HEADER, m);
                    if let Some(n) = mcp::target_name(m, body.get("params")) {
                        req = req.header(NAME_HEADER, header_text(n));
                    }
                }
            }
            Some(Mode::Streamable { session, version }) => {
                req = req.header(VERSION_HEADER, version.as_str());
                if let Some(s) = session {
                    req = req.header(SESSION_HEADER, s.as_str());
                }
            }
            Some(Mode::OldSse { .. }) => {}
        }
        req.body(serde_json::to_vec(body).expect("a Value always serializes"))
    }
}

/// Encodes a header value as the modern era requires: ASCII as is, anything
/// else as `=?base64?…?=`.
fn header_text(s: &str) -> String {
    if s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        s.to_owned()
    } else {
        format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode(s)
        )
    }
}

/// The dispatcher's outbound side.
struct HttpOut(Arc<Shared>);

impl Outbound for HttpOut {
    fn send(&self, msg: Value) {
        let shared = Arc::clone(&self.0);
        let id = msg.get("method").and(msg.get("id")).and_then(Value::as_u64);
        let task = tokio::spawn(async move {
            post_message(&shared, msg, id).await;
            if let Some(id) = id {
                shared.inflight.lock().expect("inflight lock").remove(&id);
            }
        });
        if let Some(id) = id {
            self.0
                .inflight
                .lock()
                .expect("inflight lock")
                .insert(id, task.abort_handle());
        }
    }

    fn cancel(&self, id: u64) {
        // Closing the request's stream is the modern cancellation; legacy
        // transports are also told explicitly.
        if let Some(h) = self.0.inflight.lock().expect("inflight lock").remove(&id) {
            h.abort();
        }
        if !matches!(self.0.mode.get(), Some(Mode::Modern)) {
            self.send(mcp::notification(
                "notifications/cancelled",
                Some(json!({"requestId": id, "reason": "the client went away or cancelled"})),
            ));
        }
    }
}

async fn post_message(shared: &Shared, msg: Value, id: Option<u64>) {
    let url = match shared.mode.get() {
        Some(Mode::OldSse { post_url }) => post_url.clone(),
        _ => shared.url.clone(),
    };
    let fail = |message: String| {
        if let Some(id) = id {
            shared.dispatch(
                mcp::response(
                    Value::from(id),
                    Err(RpcError::new(code::UPSTREAM_ERROR, message)),
                ),
                Some(id),
            );
        }
    };
    let resp = match shared.request(&url, &msg).send().await {
        Ok(r) => r,
        Err(e) => return fail(format!("upstream `{}`: {e}", shared.name)),
    };
    let status = resp.status();
    if matches!(shared.mode.get(), Some(Mode::OldSse { .. })) {
        if !status.is_success() {
            fail(format!("upstream `{}` answered HTTP {status}", shared.name));
        }
        return;
    }
    if status == StatusCode::NOT_FOUND
        && matches!(
            shared.mode.get(),
            Some(Mode::Streamable {
                session: Some(_),
                ..
            })
        )
    {
        shared.die("the upstream ended the session (HTTP 404)".into());
        return fail(format!("upstream `{}` ended its session", shared.name));
    }
    match read_messages(resp, |m| shared.dispatch(m, id)).await {
        Ok(()) => {}
        Err(e) if status.is_success() => fail(format!("upstream `{}`: {e}", shared.name)),
        Err(e) => fail(format!(
            "upstream `{}` answered HTTP {status}: {e}",
            shared.name
        )),
    }
}

/// Reads a response body as one JSON message or an SSE stream of messages.
/// An empty body (202 Accepted) yields nothing. Errors describe a body that
/// is neither.
async fn read_messages(resp: reqwest::Response, mut each: impl FnMut(Value)) -> Result<(), String> {
    let is_sse = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let status = resp.status();
    if is_sse {
        let mut events = resp.bytes_stream().eventsource();
        while let Some(ev) = events.next().await {
            let ev = ev.map_err(|e| format!("broken event stream: {e}"))?;
            if (ev.event.is_empty() || ev.event == "message") && !ev.data.trim().is_empty() {
                match serde_json::from_str(&ev.data) {
                    Ok(v) => each(v),
                    Err(e) => {
                        tracing::warn!(error = %e, "upstream sent an SSE event that is not JSON")
                    }
                }
            }
        }
        return Ok(());
    }
    let body = resp.bytes().await.map_err(|e| e.to_string())?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return if status.is_success() {
            Ok(())
        } else {
            Err("empty body".into())
        };
    }
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(items)) => items.into_iter().for_each(each),
        Ok(v) if v.get("jsonrpc").is_some() => each(v),
        _ => {
            return Err(String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
        }
    }
    Ok(())
}

/// A connected remote upstream.
pub struct HttpUpstream {
    pub conn: Arc<Dispatcher>,
    pub info: PeerInfo,
    shared: Arc<Shared>,
    stream: Option<tokio::task::JoinHandle<()>>,
}

impl HttpUpstream {
    /// Detects the transport and era and completes the handshake.
    pub async fn connect(
        spec: &UpstreamSpec,
        on_change: impl Fn(Value) + Send + Sync + 'static,
    ) -> Result<HttpUpstream, RpcError> {
        let Transport::Http { url, headers } = &spec.transport else {
            return Err(RpcError::new(code::INTERNAL_ERROR, "not a remote upstream"));
        };
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            let (Ok(k), Ok(v)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) else {
                continue; // validated at load time
            };
            map.insert(k, v);
        }
        let client = Client::builder()
            .connect_timeout(spec.timeout)
            .build()
            .map_err(|e| RpcError::new(code::INTERNAL_ERROR, e.to_string()))?;
        let shared = Arc::new(Shared {
            name: spec.name.to_string(),
            client,
            url: url.clone(),
            headers: map,
            mode: OnceLock::new(),
            conn: OnceLock::new(),
            inflight: Mutex::new(HashMap::new()),
            dead: CancellationToken::new(),
            reason: Mutex::new(String::new()),
        });
        let upstream_err = |m: String| RpcError::new(code::UPSTREAM_ERROR, m);

        // 1. modern
        let discover = mcp::request(
            json!("discover"),
            "server/discover",
            Some(json!({"_meta": modern_meta(&gateway_client_capabilities())})),
        );
        let resp = shared
            .request(url, &discover)
            .timeout(spec.timeout)
            .send()
            .await
            .map_err(|e| upstream_err(format!("cannot reach {url}: {e}")))?;
        let mut legacy_version = mcp::LATEST_LEGACY.to_owned();
        let mut first = None;
        let _ = read_messages(resp, |m| {
            first.get_or_insert(m);
        })
        .await;
        if let Some(msg) = first {
            match mcp::Message::from_value(msg) {
                Ok(mcp::Message::Response { result: Ok(r), .. })
                    if r.get("supportedVersions")
                        .and_then(Value::as_array)
                        .is_some_and(|v| v.iter().any(|v| v == mcp::MODERN_VERSION)) =>
                {
                    let _ = shared.mode.set(Mode::Modern);
                    let conn =
                        Dispatcher::new(&shared.name, HttpOut(Arc::clone(&shared)), on_change);
                    let _ = shared.conn.set(Arc::downgrade(&conn));
                    let info = PeerInfo {
                        era: Era::Modern,
                        protocol_version: mcp::MODERN_VERSION.to_owned(),
                        capabilities: r.get("capabilities").cloned().unwrap_or(json!({})),
                        server_info: r
                            .get("_meta")
                            .and_then(|m| m.get(mcp::meta::SERVER_INFO))
                            .cloned()
                            .unwrap_or(json!({})),
                        instructions: r
                            .get("instructions")
                            .and_then(Value::as_str)
                            .map(str::to_owned),
                    };
                    return Ok(HttpUpstream {
                        conn,
                        info,
                        shared,
                        stream: None,
                    });
                }
                Ok(mcp::Message::Response { result: Err(e), .. })
                    if e.code == code::UNSUPPORTED_VERSION =>
                {
                    if let Some(v) = e
                        .data
                        .as_ref()
                        .and_then(|d| d.get("supported"))
                        .and_then(Value::as_array)
                        && let Some(l) = mcp::LEGACY_VERSIONS
                            .iter()
                            .find(|l| v.iter().any(|x| x.as_str() == Some(l)))
                    {
                        legacy_version = (*l).to_owned();
                    }
                }
                _ => {}
            }
        }

        // 2. legacy streamable HTTP
        let init = mcp::request(
            json!("init"),
            "initialize",
            Some(json!({
                "protocolVersion": legacy_version,
                "capabilities": gateway_client_capabilities(),
                "clientInfo": gateway_info(),
            })),
        );
        let resp = shared
            .client
            .post(url.clone())
            .headers(shared.headers.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json, text/event-stream")
            .body(init.to_string())
            .timeout(spec.timeout)
            .send()
            .await
            .map_err(|e| upstream_err(format!("cannot reach {url}: {e}")))?;
        let status = resp.status();
        if status.is_success() {
            let session = resp
                .headers()
                .get(SESSION_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let mut result = None;
            read_messages(resp, |m| {
                if m.get("id").is_some() {
                    result.get_or_insert(m);
                }
            })
            .await
            .map_err(upstream_err)?;
            let init = match result.map(mcp::Message::from_value) {
                Some(Ok(mcp::Message::Response { result: Ok(r), .. })) => r,
                Some(Ok(mcp::Message::Response { result: Err(e), .. })) => return Err(e),
                _ => return Err(upstream_err("initialize got no result".into())),
            };
            let version = init
                .get("protocolVersion")
                .and_then(Value::as_str)
                .unwrap_or(&legacy_version)
                .to_owned();
            let _ = shared.mode.set(Mode::Streamable {
                session,
                version: version.clone(),
            });
            let conn = Dispatcher::new(&shared.name, HttpOut(Arc::clone(&shared)), on_change);
            let _ = shared.conn.set(Arc::downgrade(&conn));
            conn.notify("notifications/initialized", None);
            let stream = Some(tokio::spawn(listen_get_stream(Arc::clone(&shared))));
            return Ok(HttpUpstream {
                conn,
                info: legacy_info(version, &init),
                shared,
                stream,
            });
        }
        if !status.is_client_error() {
            return Err(upstream_err(format!("initialize answered HTTP {status}")));
        }

        // 3. HTTP+SSE (2024-11-05)
        let resp = shared
            .client
            .get(url.clone())
            .headers(shared.headers.clone())
            .header(ACCEPT, "text/event-stream")
            .send()
            .await
            .map_err(|e| upstream_err(format!("cannot reach {url}: {e}")))?;
        if !resp.status().is_success() {
            return Err(upstream_err(format!(
                "{url} speaks neither streamable HTTP (initialize: HTTP {status}) nor HTTP+SSE (GET: HTTP {})",
                resp.status()
            )));
        }
        let mut events = resp.bytes_stream().eventsource();
        let endpoint = loop {
            match tokio::time::timeout(spec.timeout, events.next()).await {
                Ok(Some(Ok(ev))) if ev.event == "endpoint" => break ev.data,
                Ok(Some(Ok(_))) => continue,
                _ => return Err(upstream_err("the SSE stream announced no endpoint".into())),
            }
        };
        let post_url = url
            .join(endpoint.trim())
            .map_err(|e| upstream_err(format!("bad endpoint `{endpoint}`: {e}")))?;
        let _ = shared.mode.set(Mode::OldSse { post_url });
        let conn = Dispatcher::new(&shared.name, HttpOut(Arc::clone(&shared)), on_change);
        let _ = shared.conn.set(Arc::downgrade(&conn));
        let reader = Arc::clone(&shared);
        let stream = tokio::spawn(async move {
            while let Some(ev) = events.next().await {
                match ev {
                    Ok(ev) if ev.event.is_empty() || ev.event == "message" => {
                        match serde_json::from_str(&ev.data) {
                            Ok(v) => reader.dispatch(v, None),
                            Err(e) => {
                                tracing::warn!(upstream = %reader.name, error = %e, "SSE message is not JSON")
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        reader.die(format!("the SSE stream broke: {e}"));
                        return;
                    }
                }
            }
            reader.die("the SSE stream ended".into());
        });
        let info = match super::handshake_legacy(&conn, spec.timeout, &legacy_version).await {
            Ok(info) => info,
            Err(e) => {
                stream.abort();
                return Err(e);
            }
        };
        Ok(HttpUpstream {
            conn,
            info,
            shared,
            stream: Some(stream),
        })
    }

    /// Resolves when the connection must be re-established, with the reason.
    pub async fn closed(&self) -> String {
        self.shared.dead.cancelled().await;
        let reason = self.shared.reason.lock().expect("reason lock").clone();
        self.conn
            .close(format!("upstream `{}`: {reason}", self.shared.name));
        reason
    }

    /// Ends the session (best effort) and stops background streams.
    pub async fn shutdown(mut self) {
        self.conn.close("the upstream is shutting down".into());
        if let Some(s) = self.stream.take() {
            s.abort();
        }
        if let Some(Mode::Streamable {
            session: Some(session),
            ..
        }) = self.shared.mode.get()
        {
            let _ = self
                .shared
                .client
                .delete(self.shared.url.clone())
                .headers(self.shared.headers.clone())
                .header(SESSION_HEADER, session.as_str())
                .timeout(std::time::Duration::from_secs(2))
                .send()
                .await;
        }
    }
}

fn legacy_info(version: String, init: &Value) -> PeerInfo {
    PeerInfo {
        era: Era::Legacy,
        protocol_version: version,
        capabilities: init.get("capabilities").cloned().unwrap_or(json!({})),
        server_info: init.get("serverInfo").cloned().unwrap_or(json!({})),
        instructions: init
            .get("instructions")
            .and_then(Value::as_str)
            .map(str::to_owned),
    }
}

/// The legacy streamable transport's standalone GET stream: server
/// notifications and requests outside any POST. Optional for servers (405).
async fn listen_get_stream(shared: Arc<Shared>) {
    let Some(Mode::Streamable { session, version }) = shared.mode.get().cloned() else {
        return;
    };
    let mut backoff = std::time::Duration::from_millis(200);
    loop {
        let mut req = shared
            .client
            .get(shared.url.clone())
            .headers(shared.headers.clone())
            .header(ACCEPT, "text/event-stream")
            .header(VERSION_HEADER, version.as_str());
        if let Some(s) = &session {
            req = req.header(SESSION_HEADER, s.as_str());
        }
        match req.send().await {
            Ok(resp) if resp.status().is_success() => {
                backoff = std::time::Duration::from_millis(200);
                let _ = read_messages(resp, |m| shared.dispatch(m, None)).await;
            }
            Ok(resp) if resp.status() == StatusCode::NOT_FOUND && session.is_some() => {
                shared.die("the upstream ended the session (HTTP 404)".into());
                return;
            }
            // 405: the server offers no standalone stream; nothing to listen to.
            Ok(_) => return,
            Err(e) => tracing::debug!(upstream = %shared.name, error = %e, "GET stream failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shared.dead.cancelled() => return,
        }
        backoff = (backoff * 2).min(std::time::Duration::from_secs(10));
    }
}
