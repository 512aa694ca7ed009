//! `switchyard stdio`: one route served over the process's own stdin and
//! stdout, for desktop clients that only launch stdio servers.
//!
//! No socket is opened. Each line of stdin becomes a request to the same
//! axum router the HTTP listener serves, called in process (`oneshot`), so
//! plugins, aggregation, sessions and the era bridge behave exactly as over
//! HTTP. What comes back (a JSON body, or the events of an SSE body) is
//! written to stdout one message per line; after `initialize`, the
//! session's standalone stream (server→client requests, change
//! notifications) is written there too. The only difference from HTTP: a
//! modern request's headers cannot mirror its body, so that check is off
//! (see [`server::FromStdio`]). Logs go to stderr, never stdout.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::config::Config;
use crate::pipeline::Gateway;
use crate::plugin::Plugins;
use crate::server::{self, FromStdio, SESSION_HEADER, ServerState};
use crate::upstream::Upstreams;

/// The bridge between the byte streams and the in-process router.
struct Front {
    app: axum::Router,
    path: String,
    session: Mutex<Option<String>>,
    out: mpsc::UnboundedSender<String>,
}

/// Serves `route` (default: the first configured route) over `input` and
/// `output` until `input` ends; then ends the session and stops the
/// upstreams.
pub async fn serve(
    config: Config,
    plugins: Plugins,
    route: Option<&str>,
    input: impl AsyncRead + Unpin + Send + 'static,
    mut output: impl AsyncWrite + Unpin + Send + 'static,
) -> anyhow::Result<()> {
    let path = match route {
        Some(r) => config
            .routes
            .iter()
            .find(|x| x.path.as_str() == r)
            .ok_or_else(|| anyhow::anyhow!("no route {r} in the configuration"))?
            .path
            .to_string(),
        None => config.routes[0].path.to_string(),
    };
    let upstreams = Upstreams::start(&config.upstreams);
    let gateway = Gateway::new(&config, Arc::clone(&upstreams), plugins);
    let stop = CancellationToken::new();
    let local = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let state = ServerState::new(gateway, config.server.clone(), false, local, stop.clone());
    server::spawn_session_reaper(Arc::clone(&state));
    let (out, mut lines_out) = mpsc::unbounded_channel::<String>();
    let writer = tokio::spawn(async move {
        while let Some(line) = lines_out.recv().await {
            if output.write_all(line.as_bytes()).await.is_err()
                || output.write_all(b"\n").await.is_err()
                || output.flush().await.is_err()
            {
                break;
            }
        }
    });
    let front = Arc::new(Front {
        app: server::router(state),
        path,
        session: Mutex::new(None),
        out,
    });
    tracing::info!(route = %front.path, "switchyard serving over stdio");

    let mut lines = BufReader::new(input).lines();
    let mut stream_open = false;
    while let Some(line) = lines.next_line().await? {
        if line.trim().is_empty() {
            continue;
        }
        let parsed: Option<Value> = serde_json::from_str(&line).ok();
        let method = parsed
            .as_ref()
            .and_then(|v| v.get("method"))
            .and_then(Value::as_str);
        let is_request = method.is_some() && parsed.as_ref().is_some_and(|v| v.get("id").is_some());
        if method == Some("initialize") {
            // In order: the session id it returns is needed by what follows.
            front.post(line).await;
            if !stream_open && front.session().is_some() {
                stream_open = true;
                tokio::spawn(Arc::clone(&front).listen());
            }
        } else if is_request {
            // Requests run concurrently, as over HTTP.
            tokio::spawn(Arc::clone(&front).post_owned(line));
        } else {
            // Notifications and answers to server requests keep their order.
            front.post(line).await;
        }
    }
    if let Some(sid) = front.session() {
        let req = Request::builder()
            .method(Method::DELETE)
            .uri(&front.path)
            .header(header::HOST, "localhost")
            .header(SESSION_HEADER, sid)
            .body(Body::empty())
            .expect("a valid request");
        let _ = front.app.clone().oneshot(req).await;
    }
    stop.cancel();
    upstreams.shutdown().await;
    drop(front);
    let _ = writer.await;
    Ok(())
}

impl Front {
    fn session(&self) -> Option<String> {
        self.session.lock().expect("session lock").clone()
    }

    async fn post_owned(self: Arc<Self>, line: String) {
        self.post(line).await;
    }

    /// Sends one message, and writes what comes back.
    async fn post(&self, line: String) {
        let id = serde_json::from_str::<Value>(&line)
            .ok()
            .and_then(|v| v.get("id").cloned());
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(&self.path)
            .header(header::HOST, "localhost")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json, text/event-stream");
        if let Some(sid) = self.session() {
            req = req.header(SESSION_HEADER, sid);
        }
        let mut req = req.body(Body::from(line)).expect("a valid request");
        req.extensions_mut().insert(FromStdio);
        let resp = match self.app.clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        if let Some(sid) = resp
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
        {
            *self.session.lock().expect("session lock") = Some(sid.to_owned());
        }
        let status = resp.status();
        let sse = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("text/event-stream"));
        if sse {
            self.relay_events(resp.into_body()).await;
            return;
        }
        let Ok(body) = axum::body::to_bytes(resp.into_body(), usize::MAX).await else {
            return;
        };
        if body.is_empty() {
            return;
        }
        match serde_json::from_slice::<Value>(&body) {
            Ok(v) => self.emit(&v),
            // A status with no JSON-RPC body (404 for an expired session):
            // the client still gets an answer to its request.
            Err(_) if id.is_some() && status != StatusCode::ACCEPTED => self.emit(&json!({
                "jsonrpc": "2.0",
                "id": id,
                "error": {"code": -32603, "message": format!("gateway answered HTTP {status}: {}", String::from_utf8_lossy(&body))},
            })),
            Err(_) => {}
        }
    }

    /// The session's standalone stream, for as long as it lasts.
    async fn listen(self: Arc<Self>) {
        let Some(sid) = self.session() else { return };
        let req = Request::builder()
            .method(Method::GET)
            .uri(&self.path)
            .header(header::HOST, "localhost")
            .header(header::ACCEPT, "text/event-stream")
            .header(SESSION_HEADER, sid)
            .body(Body::empty())
            .expect("a valid request");
        let Ok(resp) = self.app.clone().oneshot(req).await;
        if resp.status().is_success() {
            self.relay_events(resp.into_body()).await;
        }
    }

    async fn relay_events(&self, body: Body) {
        let mut events = body.into_data_stream().eventsource();
        while let Some(event) = events.next().await {
            let Ok(event) = event else { break };
            if event.data.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Value>(&event.data) {
                Ok(v) => self.emit(&v),
                Err(e) => tracing::warn!(error = %e, "an event the gateway sent is not JSON"),
            }
        }
    }

    fn emit(&self, msg: &Value) {
        let _ = self.out.send(msg.to_string());
    }
}
