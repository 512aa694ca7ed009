//! A WebSocket upstream (`url = "ws://…"` or `"wss://…"`, or
//! `transport = "websocket"`): one connection is one legacy session, as on
//! stdio. JSON-RPC text frames both ways; the upgrade request carries the
//! configured headers (an `Authorization`, say) and asks for the `mcp`
//! subprotocol. TLS (`wss://`) verifies against the system's roots
//! (`SSL_CERT_FILE` / `SSL_CERT_DIR` add a private CA).
//!
//! The socket is split: the reader task dispatches what arrives, the
//! writer task sends what the [`Dispatcher`] queues and pings every
//! [`PING_EVERY`] so an idle connection through a proxy stays open. Either
//! ending ends the connection, with its reason.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_util::sync::CancellationToken;

use crate::config::{Transport, UpstreamSpec};
use crate::upstream::conn::{Dispatcher, Outbound};

/// How often an idle connection is pinged.
pub const PING_EVERY: Duration = Duration::from_secs(30);
/// The largest message accepted from the upstream.
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// The dispatcher's outbound side: frames for the writer task.
struct FrameSender(mpsc::UnboundedSender<Message>);

impl Outbound for FrameSender {
    fn send(&self, msg: Value) {
        let text = serde_json::to_string(&msg).expect("a Value always serializes");
        // A closed channel means the connection is over; the reader's end
        // reports why.
        let _ = self.0.send(Message::text(text));
    }
}

/// A connected WebSocket upstream.
pub struct WsUpstream {
    pub conn: Arc<Dispatcher>,
    dead: CancellationToken,
    reason: Arc<Mutex<String>>,
    writer: Option<tokio::task::JoinHandle<()>>,
    reader: Option<tokio::task::JoinHandle<()>>,
}

impl WsUpstream {
    /// Opens the socket (within the upstream's timeout); the caller then
    /// runs the MCP handshake on [`WsUpstream::conn`].
    pub async fn connect(
        spec: &UpstreamSpec,
        on_change: impl Fn(Value) + Send + Sync + 'static,
    ) -> Result<WsUpstream, String> {
        let Transport::WebSocket { url, headers } = &spec.transport else {
            return Err("not a WebSocket upstream".into());
        };
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| format!("{url}: {e}"))?;
        let h = request.headers_mut();
        h.insert("sec-websocket-protocol", HeaderValue::from_static("mcp"));
        for (k, v) in headers {
            // Validated at load time.
            if let (Ok(k), Ok(v)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                h.insert(k, v);
            }
        }
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE))
            .max_frame_size(Some(MAX_MESSAGE))
            .read_buffer_size(crate::server::ws::READ_BUFFER);
        let connecting =
            tokio_tungstenite::connect_async_tls_with_config(request, Some(config), true, None);
        let (socket, _) = tokio::time::timeout(spec.timeout, connecting)
            .await
            .map_err(|_| format!("cannot reach {url}: no upgrade within {:?}", spec.timeout))?
            .map_err(|e| format!("cannot reach {url}: {e}"))?;
        let (mut sink, mut stream) = socket.split();
        let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
        let name = spec.name.to_string();
        let conn = Dispatcher::new(&name, FrameSender(tx), on_change);
        let dead = CancellationToken::new();
        let reason = Arc::new(Mutex::new(String::new()));
        let end = {
            let (dead, reason, conn) = (dead.clone(), Arc::clone(&reason), Arc::clone(&conn));
            let name = name.clone();
            move |why: String| {
                let mut r = reason.lock().expect("reason lock");
                if r.is_empty() {
                    *r = why.clone();
                }
                drop(r);
                // Pending calls fail now, not at their timeout.
                conn.close(format!("upstream `{name}`: {why}"));
                dead.cancel();
            }
        };

        let writer = {
            let (end, dead) = (end.clone(), dead.clone());
            tokio::spawn(async move {
                let mut ping = tokio::time::interval(PING_EVERY);
                ping.tick().await;
                loop {
                    let frame = tokio::select! {
                        () = dead.cancelled() => break,
                        m = rx.recv() => match m {
                            Some(m) => m,
                            None => break,
                        },
                        _ = ping.tick() => Message::Ping(Vec::new().into()),
                    };
                    if let Err(e) = sink.send(frame).await {
                        end(format!("sending failed: {e}"));
                        return;
                    }
                }
                let _ = sink.send(Message::Close(None)).await;
            })
        };
        let reader = {
            let conn = Arc::clone(&conn);
            tokio::spawn(async move {
                while let Some(frame) = stream.next().await {
                    match frame {
                        Ok(Message::Text(text)) => match serde_json::from_str::<Value>(&text) {
                            Ok(v) => conn.dispatch(v),
                            Err(e) => {
                                tracing::warn!(upstream = %name, error = %e, "upstream sent a frame that is not JSON");
                            }
                        },
                        Ok(Message::Binary(_)) => {
                            tracing::warn!(upstream = %name, "upstream sent a binary frame; MCP is text");
                        }
                        Ok(Message::Close(frame)) => {
                            end(match frame {
                                Some(f) => format!(
                                    "closed by the upstream ({} {})",
                                    u16::from(f.code),
                                    f.reason
                                ),
                                None => "closed by the upstream".into(),
                            });
                            return;
                        }
                        Ok(_) => {} // ping/pong: answered by the library
                        Err(e) => {
                            end(format!("the socket failed: {e}"));
                            return;
                        }
                    }
                }
                end("the socket closed".into());
            })
        };
        Ok(WsUpstream {
            conn,
            dead,
            reason,
            writer: Some(writer),
            reader: Some(reader),
        })
    }

    /// Waits until the connection ends; why.
    pub async fn closed(&self) -> String {
        self.dead.cancelled().await;
        self.reason.lock().expect("reason lock").clone()
    }

    /// Closes the socket (a Close frame, then the tasks end).
    pub async fn shutdown(mut self) {
        self.conn.close("the upstream is shutting down".into());
        self.dead.cancel();
        if let Some(writer) = self.writer.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
        }
    }
}

impl Drop for WsUpstream {
    fn drop(&mut self) {
        self.dead.cancel();
        for t in [&self.writer, &self.reader].into_iter().flatten() {
            t.abort();
        }
    }
}
