//! `GET {route}/ws`: MCP over WebSocket (subprotocol `mcp`), one legacy
//! session per connection.
//!
//! The session is the HTTP+SSE transport's kind (`old_sse`): every message
//! for the client, answers included, goes to its one stream, and here that
//! stream is the socket. Client frames are JSON-RPC messages handled by
//! [`super::session_message`] exactly as `POST {route}/messages` handles
//! them, so the route's chain, `initialize`, server→client requests and
//! cancellation behave as on HTTP.
//!
//! At the upgrade: the Origin check (the router's layer, as on HTTP), then
//! the route's chain admits the connection as it admits `initialize` (an
//! auth plugin refuses a wrong token with its 401 before any upgrade). A
//! browser, which cannot set `Authorization` on a WebSocket, may offer the
//! token as a subprotocol `bearer.TOKEN` beside `mcp`.
//!
//! Limits: a message or frame above `max_body_bytes` closes with 1009; a
//! binary frame with 1003. Backpressure: at most [`MAX_IN_FLIGHT`] requests
//! of a socket run at once (the next frame is not read until one ends, so
//! a client that floods waits on TCP), and a client that does not read
//! while [`MAX_QUEUED`] messages wait for it is closed with 1008. Keep-alive:
//! a ping every `websocket_ping`; a client that answers no ping for two
//! intervals, or sends nothing for `session_idle_timeout`, is closed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message as Frame, WebSocket, WebSocketUpgrade, close_code};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};

use super::session::{STANDALONE, Session, SseEvent};
use super::{ServerState, Target, edge, parse_message, session_message, spawn_change_forwarder};
use crate::mcp::{self, Era};
use crate::pipeline::{ClientCtx, Inbound};
use crate::route::Route;

/// The subprotocol spoken.
pub const SUBPROTOCOL: &str = "mcp";
/// A subprotocol entry carrying a bearer token (browsers).
const BEARER_PREFIX: &str = "bearer.";
/// Requests of one socket running at once.
pub const MAX_IN_FLIGHT: usize = 64;
/// Messages waiting for a client that does not read before it is closed.
pub const MAX_QUEUED: usize = 4096;
/// How long one frame may take to be written.
/// A socket's read buffer. tungstenite allocates 128 KiB per socket up front
/// by default, most of what an idle socket costs; a larger message grows
/// the buffer for as long as it takes to read it.
pub const READ_BUFFER: usize = 8 * 1024;
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// The upgrade (see the module docs).
pub(super) async fn connect(
    st: Arc<ServerState>,
    route: Arc<Route>,
    mut inbound: Inbound,
    upgrade: WebSocketUpgrade,
) -> Response {
    let offered: Vec<String> = inbound
        .headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect();
    if !offered.is_empty() && !offered.iter().any(|p| p == SUBPROTOCOL) {
        return edge::reply(
            StatusCode::BAD_REQUEST,
            json!({"error": format!("the WebSocket subprotocol must be `{SUBPROTOCOL}`")}),
        );
    }
    if !inbound.headers.contains_key(header::AUTHORIZATION)
        && let Some(token) = offered.iter().find_map(|p| p.strip_prefix(BEARER_PREFIX))
        && let Ok(v) = format!("Bearer {token}").parse()
    {
        inbound.headers.insert(header::AUTHORIZATION, v);
    }
    // The offered token is not an HTTP header a plugin should see twice.
    strip_token_protocols(&mut inbound.headers);
    let inbound = Arc::new(inbound);
    let ctx = ClientCtx {
        client: st.client_key(),
        era: Era::Legacy,
        protocol_version: mcp::LATEST_LEGACY.into(),
        capabilities: json!({}),
        log_level: None,
        binding: None,
        principal: None,
        inbound: Some(Arc::clone(&inbound)),
    };
    if let Err(f) = st.gateway.admit(&route, &ctx, "initialize", None).await {
        return edge::error_reply(
            Value::Null,
            f.error,
            f.side,
            Era::Legacy,
            f.http_status,
            &f.headers,
        );
    }
    let ctx = ClientCtx {
        inbound: None,
        ..ctx
    };
    let limit = st.settings.max_body_bytes;
    upgrade
        .protocols([SUBPROTOCOL])
        .max_message_size(limit)
        .max_frame_size(limit)
        .read_buffer_size(READ_BUFFER)
        .on_failed_upgrade(|e| tracing::debug!(error = %e, "WebSocket upgrade failed"))
        .on_upgrade(move |socket| async move {
            let session = st.sessions.create(route.path.as_str(), ctx, true);
            tracing::debug!(session = %session.id, route = %route.path, "WebSocket session started");
            let events = session.attach_standalone();
            spawn_change_forwarder(&st, &route, &session);
            metrics::gauge!("switchyard_websocket_connections").increment(1.0);
            let why = run(&st, &route, &session, inbound, events, socket).await;
            metrics::gauge!("switchyard_websocket_connections").decrement(1.0);
            tracing::debug!(session = %session.id, why, "WebSocket session ended");
            st.sessions.remove(&session.id);
            super::end_session(&st, &route, &session).await;
        })
}

/// Removes `bearer.…` entries from the subprotocol header.
fn strip_token_protocols(headers: &mut HeaderMap) {
    let kept: Vec<String> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.starts_with(BEARER_PREFIX))
        .map(str::to_owned)
        .collect();
    headers.remove(header::SEC_WEBSOCKET_PROTOCOL);
    if let Ok(v) = kept.join(", ").parse() {
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, v);
    }
}

/// The connection's loop; returns why it ended.
async fn run(
    st: &Arc<ServerState>,
    route: &Arc<Route>,
    session: &Arc<Session>,
    inbound: Arc<Inbound>,
    mut events: mpsc::UnboundedReceiver<SseEvent>,
    mut socket: WebSocket,
) -> &'static str {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let ping_every = st.settings.websocket_ping;
    let idle_limit = st.settings.session_idle_timeout;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    let mut last_frame = Instant::now();
    let mut last_message = Instant::now();
    let stop = st.stop.clone();
    let closed = session.closed.clone();
    loop {
        tokio::select! {
            () = stop.cancelled() => {
                return close(socket, close_code::AWAY, "the gateway is shutting down").await;
            }
            () = closed.cancelled() => {
                return close(socket, close_code::NORMAL, "the session was ended").await;
            }
            ev = events.recv() => {
                let Some(ev) = ev else { return "stream ended" };
                if events.len() > MAX_QUEUED {
                    return close(socket, close_code::POLICY, "the client reads too slowly").await;
                }
                match tokio::time::timeout(WRITE_TIMEOUT, socket.send(Frame::text(ev.data))).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return "write failed",
                    Err(_) => return "write timed out",
                }
            }
            frame = socket.recv(), if slots.available_permits() > 0 => {
                last_frame = Instant::now();
                let frame = match frame {
                    None => return "client went away",
                    Some(Ok(f)) => f,
                    Some(Err(e)) => {
                        if is_too_big(&e) {
                            return close(socket, close_code::SIZE, "the message exceeds the size limit").await;
                        }
                        return "read failed";
                    }
                };
                match frame {
                    Frame::Text(text) => {
                        last_message = Instant::now();
                        session.touch();
                        let permit = Arc::clone(&slots).try_acquire_owned().expect("a slot is free");
                        let (st, route, session, inbound) =
                            (Arc::clone(st), Arc::clone(route), Arc::clone(session), Arc::clone(&inbound));
                        tokio::spawn(async move {
                            let _permit = permit;
                            handle(&st, route, &session, inbound, text.as_bytes()).await;
                        });
                    }
                    Frame::Binary(_) => {
                        return close(socket, close_code::UNSUPPORTED, "MCP messages are text frames").await;
                    }
                    Frame::Close(_) => return "client closed",
                    // Pings are answered by the library; a pong is liveness.
                    Frame::Ping(_) | Frame::Pong(_) => {}
                }
            }
            _ = ping.tick() => {
                if last_message.elapsed() > idle_limit {
                    return close(socket, close_code::NORMAL, "idle").await;
                }
                if last_frame.elapsed() > 2 * ping_every {
                    return close(socket, close_code::AWAY, "no answer to ping").await;
                }
                if socket.send(Frame::Ping(Default::default())).await.is_err() {
                    return "write failed";
                }
            }
        }
    }
}

/// One client message; what the HTTP+SSE transport would have answered on
/// the POST (an error before the request ran) goes on the socket too.
async fn handle(
    st: &Arc<ServerState>,
    route: Arc<Route>,
    session: &Arc<Session>,
    inbound: Arc<Inbound>,
    bytes: &[u8],
) {
    let reply = match parse_message(bytes) {
        Err((id, e)) => Some(mcp::response(id, Err(e)).to_string()),
        Ok(msg) => {
            let resp =
                session_message(st, route, Arc::clone(session), msg, Target::OldSse, inbound).await;
            if resp.status() == StatusCode::ACCEPTED {
                None
            } else {
                axum::body::to_bytes(resp.into_body(), usize::MAX)
                    .await
                    .ok()
                    .filter(|b| !b.is_empty())
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
            }
        }
    };
    if let Some(text) = reply {
        session.push(STANDALONE, Some("message"), text);
    }
}

fn is_too_big(e: &axum::Error) -> bool {
    let text = e.to_string();
    text.contains("Space limit exceeded") || text.contains("too long") || text.contains("too big")
}

async fn close(mut socket: WebSocket, code: u16, reason: &'static str) -> &'static str {
    let _ = socket
        .send(Frame::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
    reason
}
