//! Legacy client sessions and their resumable SSE streams.
//!
//! A session is created by `initialize` (or by connecting to the HTTP+SSE
//! transport) and named by a 192-bit random id. It remembers what the client
//! declared, the server→client requests waiting for its answers, the requests
//! it may cancel, its resource subscriptions, and a bounded log of the events
//! sent on each of its SSE streams, so that a client that reconnects with
//! `Last-Event-ID` gets what it missed.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use base64::Engine;
use rand::RngCore;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::pipeline::ClientCtx;
use crate::upstream::Reply;

/// Events kept per stream for resumption. A client that falls further behind
/// than this while disconnected loses the oldest events.
const STREAM_LOG: usize = 256;

/// Finished POST streams whose logs a session keeps for late resumption;
/// older ones are forgotten, so a long session does not grow without bound.
const FINISHED_STREAMS: usize = 16;

/// The stream id of a session's standalone GET stream (and of the HTTP+SSE
/// transport's one stream); POST streams count up from 1.
pub const STANDALONE: u64 = 0;

/// One SSE event: `id` is `{stream}-{seq}`.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: Option<String>,
    /// `event:` name; `None` is the default `message`.
    pub event: Option<&'static str>,
    pub data: String,
}

/// The replay log and live receiver of one SSE stream.
#[derive(Default)]
struct StreamLog {
    next_seq: u64,
    events: VecDeque<(u64, SseEvent)>,
    live: Option<mpsc::UnboundedSender<SseEvent>>,
    finished: bool,
}

/// A legacy client session.
pub struct Session {
    pub id: String,
    pub route: String,
    /// What the client declared; set again by `initialize` on HTTP+SSE sessions.
    pub ctx: Mutex<ClientCtx>,
    /// Whether this is an HTTP+SSE (2024-11-05 transport) session, whose
    /// every message goes to the one stream.
    pub old_sse: bool,
    pub created: Instant,
    /// Requests made in this session (for the console).
    pub calls: AtomicU64,
    last_seen: Mutex<Instant>,
    next_stream: AtomicU64,
    next_server_request: AtomicU64,
    streams: Mutex<HashMap<u64, StreamLog>>,
    /// Downstream id (as JSON text) → where the answer goes.
    server_requests: Mutex<HashMap<String, Reply>>,
    /// Client request id (as JSON text) → cancels that request.
    inflight: Mutex<HashMap<String, CancellationToken>>,
    pub subscriptions: Mutex<HashSet<String>>,
    /// Fires when the session ends (DELETE, idle expiry, shutdown).
    pub closed: CancellationToken,
}

impl Session {
    /// What the client declared.
    pub fn ctx(&self) -> ClientCtx {
        self.ctx.lock().expect("ctx lock").clone()
    }

    pub fn touch(&self) {
        *self.last_seen.lock().expect("last_seen lock") = Instant::now();
    }

    pub fn idle_for(&self) -> std::time::Duration {
        self.last_seen.lock().expect("last_seen lock").elapsed()
    }

    /// Opens a new POST stream; returns its id and live receiver.
    pub fn open_stream(&self) -> (u64, mpsc::UnboundedReceiver<SseEvent>) {
        let id = self.next_stream.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        self.streams.lock().expect("streams lock").insert(
            id,
            StreamLog {
                live: Some(tx),
                ..StreamLog::default()
            },
        );
        (id, rx)
    }

    /// (Re)attaches the standalone stream's live receiver. A new GET replaces
    /// the previous one, which ends.
    pub fn attach_standalone(&self) -> mpsc::UnboundedReceiver<SseEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut streams = self.streams.lock().expect("streams lock");
        streams.entry(STANDALONE).or_default().live = Some(tx);
        rx
    }

    /// Resumes a stream after `last_event_id`: replays what was logged since,
    /// and keeps the receiver live if the stream is not finished. `None` when
    /// the id names no stream of this session.
    pub fn resume(&self, last_event_id: &str) -> Option<mpsc::UnboundedReceiver<SseEvent>> {
        let (stream, seq) = last_event_id.split_once('-')?;
        let (stream, seq): (u64, u64) = (stream.parse().ok()?, seq.parse().ok()?);
        let mut streams = self.streams.lock().expect("streams lock");
        let log = streams.get_mut(&stream)?;
        let (tx, rx) = mpsc::unbounded_channel();
        for (s, ev) in &log.events {
            if *s > seq {
                let _ = tx.send(ev.clone());
            }
        }
        if !log.finished {
            log.live = Some(tx);
        }
        Some(rx)
    }

    /// Logs and sends one message on a stream (the standalone stream, or the
    /// HTTP+SSE one, when `stream` is [`STANDALONE`]).
    pub fn push(&self, stream: u64, event: Option<&'static str>, data: String) {
        let mut streams = self.streams.lock().expect("streams lock");
        let log = streams.entry(stream).or_default();
        let seq = log.next_seq;
        log.next_seq += 1;
        let ev = SseEvent {
            id: (!self.old_sse).then(|| format!("{stream}-{seq}")),
            event,
            data,
        };
        if log.events.len() == STREAM_LOG {
            log.events.pop_front();
        }
        log.events.push_back((seq, ev.clone()));
        if let Some(live) = &log.live
            && live.send(ev).is_err()
        {
            log.live = None;
        }
    }

    /// Marks a POST stream complete: its live receiver ends; the log stays
    /// for late resumption until the session ends.
    pub fn finish(&self, stream: u64) {
        let mut streams = self.streams.lock().expect("streams lock");
        if let Some(log) = streams.get_mut(&stream) {
            log.finished = true;
            log.live = None;
        }
        let mut finished: Vec<u64> = streams
            .iter()
            .filter(|(id, l)| l.finished && **id != STANDALONE)
            .map(|(id, _)| *id)
            .collect();
        if finished.len() > FINISHED_STREAMS {
            finished.sort_unstable();
            for id in &finished[..finished.len() - FINISHED_STREAMS] {
                streams.remove(id);
            }
        }
    }

    /// Ends the session: its requests are cancelled, its streams close, and
    /// server requests it never answered are answered with an error, so the
    /// upstream is not left waiting.
    fn end(&self) {
        self.closed.cancel();
        let waiting: Vec<Reply> = self
            .server_requests
            .lock()
            .expect("server_requests lock")
            .drain()
            .map(|(_, r)| r)
            .collect();
        for reply in waiting {
            reply.send(Err(crate::mcp::RpcError::new(
                crate::mcp::code::INTERNAL_ERROR,
                "the client session ended before answering",
            )));
        }
    }

    /// Registers a server→client request; returns the id the client sees.
    pub fn register_server_request(&self, reply: Reply) -> Value {
        let n = self.next_server_request.fetch_add(1, Ordering::Relaxed);
        let id = Value::from(n);
        self.server_requests
            .lock()
            .expect("server_requests lock")
            .insert(id.to_string(), reply);
        id
    }

    /// Takes the waiting server→client request the client answered.
    pub fn take_server_request(&self, id: &Value) -> Option<Reply> {
        self.server_requests
            .lock()
            .expect("server_requests lock")
            .remove(&id.to_string())
    }

    /// Tracks a client request so that `notifications/cancelled` can stop it.
    pub fn track(&self, id: &Value) -> CancellationToken {
        let token = self.closed.child_token();
        self.inflight
            .lock()
            .expect("inflight lock")
            .insert(id.to_string(), token.clone());
        token
    }

    pub fn untrack(&self, id: &Value) {
        self.inflight
            .lock()
            .expect("inflight lock")
            .remove(&id.to_string());
    }

    /// Cancels the client's request `id`, if it is running.
    pub fn cancel(&self, id: &Value) -> bool {
        match self
            .inflight
            .lock()
            .expect("inflight lock")
            .remove(&id.to_string())
        {
            Some(t) => {
                t.cancel();
                true
            }
            None => false,
        }
    }
}

/// What the gateway remembers of a modern (sessionless) caller.
#[derive(Debug, Clone, Copy)]
pub struct CallerStats {
    pub first: Instant,
    pub last: Instant,
    pub calls: u64,
}

/// Recent modern callers per route, by principal (a hash of their
/// `Authorization` header, or "" for none), for the console: at most
/// [`CALLERS_KEPT`] per route, the longest quiet forgotten first.
#[derive(Default)]
pub struct Callers {
    by_route: Mutex<HashMap<String, HashMap<String, CallerStats>>>,
}

pub const CALLERS_KEPT: usize = 256;

impl Callers {
    pub fn record(&self, route: &str, principal: Option<&str>) {
        let principal = principal.unwrap_or("");
        let now = Instant::now();
        let mut all = self.by_route.lock().expect("callers lock");
        let routes = match all.get_mut(route) {
            Some(r) => r,
            None => all.entry(route.to_owned()).or_default(),
        };
        if let Some(c) = routes.get_mut(principal) {
            c.last = now;
            c.calls += 1;
            return;
        }
        if routes.len() >= CALLERS_KEPT
            && let Some(oldest) = routes
                .iter()
                .min_by_key(|(_, c)| c.last)
                .map(|(k, _)| k.clone())
        {
            routes.remove(&oldest);
        }
        routes.insert(
            principal.to_owned(),
            CallerStats {
                first: now,
                last: now,
                calls: 1,
            },
        );
    }

    /// (route, principal, stats), most recent first.
    pub fn recent(&self) -> Vec<(String, String, CallerStats)> {
        let all = self.by_route.lock().expect("callers lock");
        let mut out: Vec<_> = all
            .iter()
            .flat_map(|(r, m)| m.iter().map(|(p, c)| (r.clone(), p.clone(), *c)))
            .collect();
        out.sort_by_key(|(_, _, c)| std::cmp::Reverse(c.last));
        out
    }
}

/// Every live legacy session.
#[derive(Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, Arc<Session>>>,
}

impl Sessions {
    /// Creates a session with a fresh 192-bit random id.
    pub fn create(&self, route: &str, ctx: ClientCtx, old_sse: bool) -> Arc<Session> {
        let mut bytes = [0u8; 24];
        rand::rng().fill_bytes(&mut bytes);
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let session = Arc::new(Session {
            id: id.clone(),
            route: route.to_owned(),
            ctx: Mutex::new(ctx),
            old_sse,
            created: Instant::now(),
            calls: AtomicU64::new(0),
            last_seen: Mutex::new(Instant::now()),
            next_stream: AtomicU64::new(1),
            next_server_request: AtomicU64::new(1),
            streams: Mutex::new(HashMap::new()),
            server_requests: Mutex::new(HashMap::new()),
            inflight: Mutex::new(HashMap::new()),
            subscriptions: Mutex::new(HashSet::new()),
            closed: CancellationToken::new(),
        });
        self.by_id
            .lock()
            .expect("sessions lock")
            .insert(id, Arc::clone(&session));
        session
    }

    /// The session with this id on this route, refreshing its idle clock.
    pub fn get(&self, id: &str, route: &str) -> Option<Arc<Session>> {
        let s = self.by_id.lock().expect("sessions lock").get(id).cloned()?;
        (s.route == route).then(|| {
            s.touch();
            s.calls.fetch_add(1, Ordering::Relaxed);
            s
        })
    }

    /// Every live session (for the console).
    pub fn all(&self) -> Vec<Arc<Session>> {
        self.by_id
            .lock()
            .expect("sessions lock")
            .values()
            .cloned()
            .collect()
    }

    /// Ends a session: its streams close and its requests are cancelled.
    pub fn remove(&self, id: &str) -> Option<Arc<Session>> {
        let s = self.by_id.lock().expect("sessions lock").remove(id)?;
        s.end();
        Some(s)
    }

    /// Removes sessions idle longer than `max_idle` that have no stream
    /// attached; returns them so their subscriptions can be released.
    pub fn expire(&self, max_idle: std::time::Duration) -> Vec<Arc<Session>> {
        let mut by_id = self.by_id.lock().expect("sessions lock");
        let stale: Vec<String> = by_id
            .iter()
            .filter(|(_, s)| {
                s.idle_for() > max_idle
                    && !s
                        .streams
                        .lock()
                        .expect("streams lock")
                        .values()
                        .any(|l| l.live.as_ref().is_some_and(|t| !t.is_closed()))
            })
            .map(|(k, _)| k.clone())
            .collect();
        stale
            .into_iter()
            .filter_map(|k| by_id.remove(&k))
            .inspect(|s| s.end())
            .collect()
    }

    pub fn len(&self) -> usize {
        self.by_id.lock().expect("sessions lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::mcp::Era;

    fn session() -> Arc<Session> {
        let ctx = ClientCtx {
            client: 1,
            era: Era::Legacy,
            protocol_version: "2025-11-25".into(),
            capabilities: json!({}),
            log_level: None,
            binding: None,
            principal: None,
            inbound: None,
        };
        Sessions::default().create("/mcp", ctx, false)
    }

    fn drain(rx: &mut mpsc::UnboundedReceiver<SseEvent>) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(ev) = rx.try_recv() {
            out.push(ev.data);
        }
        out
    }

    #[test]
    fn resume_replays_after_the_last_event_and_stays_live() {
        let s = session();
        let (sid, mut live) = s.open_stream();
        for n in 0..3 {
            s.push(sid, None, format!("m{n}"));
        }
        assert_eq!(drain(&mut live), ["m0", "m1", "m2"]);
        let mut resumed = s.resume(&format!("{sid}-0")).unwrap();
        assert_eq!(drain(&mut resumed), ["m1", "m2"]);
        s.push(sid, None, "m3".into());
        assert_eq!(drain(&mut resumed), ["m3"], "the resumed receiver is live");
        s.finish(sid);
        let mut late = s.resume(&format!("{sid}-2")).unwrap();
        assert_eq!(drain(&mut late), ["m3"]);
        assert!(late.try_recv().is_err());
        assert!(s.resume("99-0").is_none());
        assert!(s.resume("garbage").is_none());
    }

    #[test]
    fn finished_stream_logs_are_bounded() {
        let s = session();
        let first = s.open_stream().0;
        s.push(first, None, "x".into());
        s.finish(first);
        for _ in 0..FINISHED_STREAMS {
            let (sid, _rx) = s.open_stream();
            s.push(sid, None, "y".into());
            s.finish(sid);
        }
        assert!(
            s.resume(&format!("{first}-0")).is_none(),
            "the oldest log is gone"
        );
        assert_eq!(s.streams.lock().unwrap().len(), FINISHED_STREAMS);
    }
}
