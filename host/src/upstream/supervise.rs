//! The supervisor: one task per upstream keeps it running as its
//! configuration and restart policy say.
//!
//! The loop, per upstream: wait until wanted (running, and used when lazy);
//! start (spawn + handshake, or connect); serve until the process exits, the
//! connection drops, a health check fails, it has been idle too long, or the
//! operator changes something; then decide. An operator's change (config
//! diff, admin API) applies at once, after in-flight calls drain. A failure
//! is restarted if the policy says so, after an exponential backoff with
//! jitter, unless it has already restarted `max` times within `window`: then
//! it is marked failed and stays down until the operator acts. Remote
//! upstreams reconnect for as long as they are configured (an outage there
//! is the network's, not a crash loop), with the same backoff.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::watch;

use super::{
    AbortOnDrop, Caller, Control, Live, UpState, Upstream, command_of, gateway_client_capabilities,
    handshake, http, listen_for_changes, modern_meta, stdio, ws,
};
use crate::config::{HealthCheck, RestartWhen, Transport, UpstreamSpec};
use crate::mcp::Era;

/// Restart backoff: doubles from the first value up to the second, each
/// delay drawn between half and all of it (jitter, so that upstreams that
/// failed together do not restart in lockstep); reset once a process has
/// stayed up for [`HEALTHY_AFTER`].
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));
const HEALTHY_AFTER: Duration = Duration::from_secs(30);

/// How a run of the upstream ended.
enum Ended {
    /// The process exited, the connection dropped, it never came up, or a
    /// health check failed. `failure` is false for a clean exit (status 0).
    Gone { reason: String, failure: bool },
    /// The operator changed something: apply it now.
    Control,
    /// Unused for `idle_timeout`: stopped until the next use.
    Idle,
    /// The supervisor is stopping (upstream removed, or gateway stopping).
    Stop,
}

impl Upstream {
    /// Keeps the upstream as the operator wants it until its stop token fires.
    pub(super) async fn supervise(self: Arc<Self>) {
        let mut ctl = self.control.subscribe();
        let mut recent: VecDeque<Instant> = VecDeque::new();
        let mut backoff = BACKOFF.0;
        let mut need_wake = ctl.borrow().spec.lazy;
        loop {
            let want = ctl.borrow_and_update().clone();
            if !want.run {
                self.state.send_replace(UpState::Stopped);
                tracing::info!(upstream = %self.name, "stopped by the operator");
                if !self.wait_control(&mut ctl).await {
                    break;
                }
                (recent, backoff, need_wake) = (VecDeque::new(), BACKOFF.0, false);
                continue;
            }
            if need_wake {
                self.state.send_replace(UpState::Idle);
                tokio::select! {
                    _ = self.wake.notified() => need_wake = false,
                    changed = ctl.changed() => {
                        if changed.is_err() {
                            break;
                        }
                        continue;
                    }
                    _ = self.stop.cancelled() => break,
                }
            }
            let started = Instant::now();
            let ended = match &want.spec.transport {
                Transport::Stdio { .. } => self.run_stdio(&want.spec, &mut ctl).await,
                Transport::Http { .. } => self.run_http(&want.spec, &mut ctl).await,
                Transport::WebSocket { .. } => self.run_ws(&want.spec, &mut ctl).await,
            };
            let (reason, failure) = match ended {
                Ended::Stop => break,
                Ended::Control => {
                    (recent, backoff) = (VecDeque::new(), BACKOFF.0);
                    continue;
                }
                Ended::Idle => {
                    need_wake = true;
                    continue;
                }
                Ended::Gone { reason, failure } => (reason, failure),
            };
            self.stats.lock().expect("stats lock").last_exit = Some(reason.clone());
            let remote = !matches!(want.spec.transport, Transport::Stdio { .. });
            let policy = want.spec.restart;
            let again = remote
                || match policy.when {
                    RestartWhen::Always => true,
                    RestartWhen::OnFailure => failure,
                    RestartWhen::Never => false,
                };
            let now = Instant::now();
            while recent
                .front()
                .is_some_and(|t| now.duration_since(*t) > policy.window)
            {
                recent.pop_front();
            }
            let give_up = if !again {
                Some(format!("{reason} (restart policy: {:?})", policy.when))
            } else if !remote && recent.len() >= policy.max as usize {
                Some(format!(
                    "crash loop: restarted {} times within {}s; last: {reason}",
                    recent.len(),
                    policy.window.as_secs()
                ))
            } else {
                None
            };
            if let Some(why) = give_up {
                tracing::error!(upstream = %self.name, "{why}; not restarting until the operator does");
                self.state.send_replace(UpState::Failed(why));
                if !self.wait_control(&mut ctl).await {
                    break;
                }
                (recent, backoff) = (VecDeque::new(), BACKOFF.0);
                continue;
            }
            recent.push_back(now);
            self.stats.lock().expect("stats lock").restarts += 1;
            metrics::counter!("switchyard_upstream_restarts_total", "upstream" => self.name.to_string())
                .increment(1);
            if started.elapsed() >= HEALTHY_AFTER {
                backoff = BACKOFF.0;
            }
            let delay = backoff.mul_f64(rand::random_range(0.5..=1.0));
            tracing::warn!(upstream = %self.name, %reason, delay_ms = delay.as_millis() as u64, "restarting");
            if !matches!(&*self.state.borrow(), UpState::Down(_)) {
                self.state.send_replace(UpState::Down(reason));
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                changed = ctl.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    (recent, backoff) = (VecDeque::new(), BACKOFF.0);
                    continue;
                }
                _ = self.stop.cancelled() => break,
            }
            backoff = (backoff * 2).min(BACKOFF.1);
        }
        self.state.send_replace(UpState::Stopped);
    }

    /// Waits for the operator to change something; false when stopping.
    async fn wait_control(&self, ctl: &mut watch::Receiver<Control>) -> bool {
        tokio::select! {
            changed = ctl.changed() => changed.is_ok(),
            _ = self.stop.cancelled() => false,
        }
    }

    /// One child process, from spawn to end.
    async fn run_stdio(
        self: &Arc<Self>,
        spec: &UpstreamSpec,
        ctl: &mut watch::Receiver<Control>,
    ) -> Ended {
        self.state.send_replace(UpState::Starting);
        let mut child = match stdio::StdioChild::spawn(spec, self.change_sink(), self.log_sink()) {
            Ok(c) => c,
            Err(e) => {
                return Ended::Gone {
                    reason: format!("could not start `{}`: {e}", command_of(spec)),
                    failure: true,
                };
            }
        };
        let pid = child.pid;
        tracing::info!(upstream = %self.name, pid, "child started");
        let conn = Arc::clone(&child.conn);
        let shook = tokio::select! {
            hs = handshake(&conn, spec.timeout) => hs,
            exit = child.wait() => {
                let reason = format!("child {} during the handshake", exit.how);
                child.conn.close(reason.clone());
                return Ended::Gone { reason, failure: !exit.clean };
            }
            changed = ctl.changed() => {
                child.stop().await;
                return if changed.is_ok() { Ended::Control } else { Ended::Stop };
            }
            _ = self.stop.cancelled() => {
                child.stop().await;
                return Ended::Stop;
            }
        };
        let info = match shook {
            Ok(info) => info,
            Err(e) => {
                child.stop().await;
                return Ended::Gone {
                    reason: format!("handshake failed: {e}"),
                    failure: true,
                };
            }
        };
        let live = Arc::new(Live { conn, info, pid });
        let ended = {
            let gone = async {
                let exit = child.wait().await;
                (format!("child process {}", exit.how), !exit.clean)
            };
            self.serve(&live, spec, ctl, gone).await
        };
        match &ended {
            // Dropping the child kills what is left of its process group.
            Ended::Gone { .. } => drop(child),
            Ended::Control => {
                self.drain(&live, spec.timeout).await;
                child.stop().await;
            }
            Ended::Idle | Ended::Stop => child.stop().await,
        }
        ended
    }

    /// One remote connection, from connect to end.
    async fn run_http(
        self: &Arc<Self>,
        spec: &UpstreamSpec,
        ctl: &mut watch::Receiver<Control>,
    ) -> Ended {
        self.state.send_replace(UpState::Starting);
        let remote = tokio::select! {
            r = http::HttpUpstream::connect(spec, self.change_sink()) => r,
            changed = ctl.changed() => {
                return if changed.is_ok() { Ended::Control } else { Ended::Stop };
            }
            _ = self.stop.cancelled() => return Ended::Stop,
        };
        let remote = match remote {
            Ok(r) => r,
            Err(e) => {
                return Ended::Gone {
                    reason: format!("could not connect: {e}"),
                    failure: true,
                };
            }
        };
        let live = Arc::new(Live {
            conn: Arc::clone(&remote.conn),
            info: remote.info.clone(),
            pid: None,
        });
        let ended = {
            let gone = async { (format!("connection lost: {}", remote.closed().await), true) };
            self.serve(&live, spec, ctl, gone).await
        };
        if matches!(ended, Ended::Control) {
            self.drain(&live, spec.timeout).await;
        }
        if !matches!(ended, Ended::Gone { .. }) {
            remote.shutdown().await;
        }
        ended
    }

    /// One WebSocket connection, from the upgrade to its end.
    async fn run_ws(
        self: &Arc<Self>,
        spec: &UpstreamSpec,
        ctl: &mut watch::Receiver<Control>,
    ) -> Ended {
        self.state.send_replace(UpState::Starting);
        let connecting = async {
            let socket = ws::WsUpstream::connect(spec, self.change_sink()).await?;
            let info = handshake(&socket.conn, spec.timeout)
                .await
                .map_err(|e| format!("handshake failed: {e}"))?;
            Ok::<_, String>((socket, info))
        };
        let connected = tokio::select! {
            c = connecting => c,
            changed = ctl.changed() => {
                return if changed.is_ok() { Ended::Control } else { Ended::Stop };
            }
            _ = self.stop.cancelled() => return Ended::Stop,
        };
        let (socket, info) = match connected {
            Ok(c) => c,
            Err(reason) => {
                return Ended::Gone {
                    reason,
                    failure: true,
                };
            }
        };
        let live = Arc::new(Live {
            conn: Arc::clone(&socket.conn),
            info,
            pid: None,
        });
        let ended = {
            let gone = async { (format!("connection lost: {}", socket.closed().await), true) };
            self.serve(&live, spec, ctl, gone).await
        };
        if matches!(ended, Ended::Control) {
            self.drain(&live, spec.timeout).await;
        }
        if !matches!(ended, Ended::Gone { .. }) {
            socket.shutdown().await;
        }
        ended
    }

    /// Serves a connected upstream until something ends it.
    async fn serve(
        self: &Arc<Self>,
        live: &Arc<Live>,
        spec: &UpstreamSpec,
        ctl: &mut watch::Receiver<Control>,
        gone: impl Future<Output = (String, bool)>,
    ) -> Ended {
        tracing::info!(upstream = %self.name, pid = live.pid, era = %live.info.era, version = %live.info.protocol_version, "upstream ready");
        self.stats.lock().expect("stats lock").since = Some(Instant::now());
        let _listen = listen_for_changes(live, self.watched.subscribe()).map(AbortOnDrop);
        self.touch();
        self.state.send_replace(UpState::Ready(Arc::clone(live)));
        let close = |reason: &str| {
            // Down first, so that no new call picks the dead connection.
            self.state.send_replace(UpState::Down(reason.to_owned()));
            live.conn
                .close(format!("upstream `{}`: {reason}", self.name));
        };
        tokio::select! {
            (reason, failure) = gone => {
                close(&reason);
                Ended::Gone { reason, failure }
            }
            reason = health_watch(live, spec.health) => {
                self.stats.lock().expect("stats lock").health_failures += 1;
                metrics::counter!("switchyard_upstream_health_failures_total", "upstream" => self.name.to_string())
                    .increment(1);
                close(&reason);
                Ended::Gone { reason, failure: true }
            }
            () = self.idle_watch(live, spec.idle_timeout) => {
                tracing::info!(upstream = %self.name, "idle: stopping until the next use");
                self.state.send_replace(UpState::Idle);
                Ended::Idle
            }
            changed = ctl.changed() => {
                if changed.is_err() {
                    return Ended::Stop;
                }
                // New calls wait for the restarted upstream (or fail at once
                // if it is being stopped) while these drain.
                let next = if ctl.borrow().run { UpState::Starting } else { UpState::Stopped };
                self.state.send_replace(next);
                Ended::Control
            }
            _ = self.stop.cancelled() => Ended::Stop,
        }
    }

    /// Waits for the calls in flight on `live` to finish, up to `limit`.
    async fn drain(&self, live: &Live, limit: Duration) {
        let deadline = Instant::now() + limit;
        while live.conn.in_flight() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Resolves once the upstream has had no call in flight and none sent
    /// for `idle`; never when `idle` is unset.
    async fn idle_watch(&self, live: &Live, idle: Option<Duration>) {
        let Some(idle) = idle else {
            return std::future::pending().await;
        };
        let tick = (idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        loop {
            tokio::time::sleep(tick).await;
            if live.conn.in_flight() == 0 && self.unused_for() >= idle {
                return;
            }
        }
    }
}

/// Probes `live` every interval; resolves with the reason when a probe goes
/// unanswered within the timeout. Any answer, even an error, proves the
/// upstream alive. Never resolves without a configured check.
async fn health_watch(live: &Live, check: Option<HealthCheck>) -> String {
    let Some(check) = check else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(check.interval).await;
        let (method, params) = match live.info.era {
            Era::Modern => (
                "server/discover",
                Some(json!({"_meta": modern_meta(&gateway_client_capabilities())})),
            ),
            Era::Legacy => ("ping", None),
        };
        let probe = async {
            match live.conn.call(
                method,
                params,
                Caller::GATEWAY,
                check.timeout + Duration::from_secs(1),
            ) {
                Ok(call) => call.result().await.map(|_| ()).or_else(|e| {
                    if live.conn.is_closed() {
                        Err(e.message)
                    } else {
                        Ok(())
                    }
                }),
                Err(e) => Err(e.message),
            }
        };
        match tokio::time::timeout(check.timeout, probe).await {
            Ok(Ok(())) => {}
            Ok(Err(msg)) => return format!("health check `{method}` failed: {msg}"),
            Err(_) => {
                return format!(
                    "health check `{method}` unanswered within {}s",
                    check.timeout.as_secs()
                );
            }
        }
    }
}
