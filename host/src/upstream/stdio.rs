//! A stdio upstream: one child process speaking newline-delimited JSON-RPC.
//!
//! The child runs in its own process group so that stopping it also stops
//! whatever it spawned (`npx` and `uvx` wrappers leave grandchildren
//! otherwise). Its stdout is protocol; its stderr is logging, forwarded line by
//! line to the gateway's log tagged with the upstream's name.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use crate::config::{Transport, UpstreamSpec};
use crate::upstream::conn::{Dispatcher, Outbound};

/// How long a child gets to exit on its own after its stdin closes, and then
/// again after SIGTERM, before the next, harsher step.
const STOP_STEP: Duration = Duration::from_millis(1500);

/// Queues lines for the writer task.
struct LineSender(mpsc::UnboundedSender<Value>);

impl Outbound for LineSender {
    fn send(&self, msg: Value) {
        let _ = self.0.send(msg);
    }
}

/// A running child and the connection over its pipes.
pub struct StdioChild {
    pub conn: Arc<Dispatcher>,
    child: Child,
    pub pid: Option<u32>,
    /// Dropping the writer's sender closes the child's stdin.
    writer: Option<tokio::task::JoinHandle<()>>,
    reader: tokio::task::JoinHandle<()>,
}

impl StdioChild {
    /// Spawns the child described by `spec` (which must be a stdio upstream).
    pub fn spawn(
        spec: &UpstreamSpec,
        on_change: impl Fn(Value) + Send + Sync + 'static,
    ) -> std::io::Result<StdioChild> {
        let Transport::Stdio {
            command,
            args,
            env,
            cwd,
        } = &spec.transport
        else {
            return Err(std::io::Error::other("not a stdio upstream"));
        };
        let mut cmd = Command::new(command);
        cmd.args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(dir) = cwd {
            cmd.current_dir(dir);
        }
        let mut child = cmd.spawn()?;
        let pid = child.id();
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let name = spec.name.to_string();

        let (tx, rx) = mpsc::unbounded_channel();
        let conn = Dispatcher::new(&name, LineSender(tx), on_change);
        let writer = tokio::spawn(write_lines(rx, stdin, name.clone()));

        let reader_conn = Arc::clone(&conn);
        let reader_name = name.clone();
        let reader = tokio::spawn(async move {
            let mut lines = BufReader::with_capacity(64 * 1024, stdout).lines();
            loop {
                match lines.next_line().await {
                    Ok(Some(line)) => {
                        if line.trim().is_empty() {
                            continue;
                        }
                        match serde_json::from_str::<Value>(&line) {
                            Ok(v) => reader_conn.dispatch(v),
                            Err(e) => {
                                tracing::warn!(upstream = %reader_name, error = %e, line = %truncate(&line, 200), "upstream wrote a line that is not JSON")
                            }
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(upstream = %reader_name, error = %e, "reading upstream stdout failed");
                        break;
                    }
                }
            }
        });

        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::info!(target: "switchyard::upstream::stderr", upstream = %name, "{line}");
            }
        });

        Ok(StdioChild {
            conn,
            child,
            pid,
            writer: Some(writer),
            reader,
        })
    }

    /// Waits until the child exits or its stdout closes (either means the
    /// connection is over), and returns a description of how it ended.
    pub async fn wait(&mut self) -> String {
        let reader = &mut self.reader;
        tokio::select! {
            status = self.child.wait() => describe(status),
            _ = reader => {
                // stdout closed: give the process a moment to report its status.
                match tokio::time::timeout(Duration::from_millis(500), self.child.wait()).await {
                    Ok(status) => describe(status),
                    Err(_) => "closed its stdout".to_owned(),
                }
            }
        }
    }

    /// Stops the child: close stdin, then SIGTERM and finally SIGKILL to its
    /// whole process group, each after [`STOP_STEP`].
    pub async fn stop(mut self) {
        self.conn.close("the upstream is shutting down".into());
        if let Some(w) = self.writer.take() {
            w.abort();
        }
        // Dropping the aborted writer task drops ChildStdin: the child sees EOF.
        if tokio::time::timeout(STOP_STEP, self.child.wait())
            .await
            .is_ok()
        {
            self.kill_group(libc::SIGKILL);
            return;
        }
        self.kill_group(libc::SIGTERM);
        if tokio::time::timeout(STOP_STEP, self.child.wait())
            .await
            .is_ok()
        {
            self.kill_group(libc::SIGKILL);
            return;
        }
        self.kill_group(libc::SIGKILL);
        let _ = self.child.wait().await;
    }

    /// Signals the child's process group (grandchildren included).
    fn kill_group(&self, signal: i32) {
        if let Some(pid) = self.pid
            && let Ok(pgid) = i32::try_from(pid)
        {
            // SAFETY: kill(2) with a negative pid signals a process group; it
            // touches no memory of ours. The group is the child's own
            // (process_group(0) at spawn), so nothing else is hit.
            unsafe {
                libc::kill(-pgid, signal);
            }
        }
    }
}

impl Drop for StdioChild {
    fn drop(&mut self) {
        // Whatever path dropped us, leave no process group behind.
        self.kill_group(libc::SIGKILL);
    }
}

async fn write_lines(mut rx: mpsc::UnboundedReceiver<Value>, stdin: ChildStdin, name: String) {
    let mut out = BufWriter::with_capacity(64 * 1024, stdin);
    let mut buf = Vec::with_capacity(4096);
    while let Some(msg) = rx.recv().await {
        // Write everything already queued, then flush once: pipelined calls
        // share one write(2) instead of one each.
        let mut next = Some(msg);
        while let Some(m) = next {
            buf.clear();
            serde_json::to_writer(&mut buf, &m).expect("a Value always serializes");
            buf.push(b'\n');
            if let Err(e) = out.write_all(&buf).await {
                tracing::warn!(upstream = %name, error = %e, "writing to upstream stdin failed");
                return;
            }
            next = rx.try_recv().ok();
        }
        if let Err(e) = out.flush().await {
            tracing::warn!(upstream = %name, error = %e, "writing to upstream stdin failed");
            return;
        }
    }
}

fn describe(status: std::io::Result<std::process::ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(c), _) => format!("exited with status {c}"),
            (None, Some(sig)) => format!("was killed by signal {sig}"),
            _ => "exited".to_owned(),
        },
        Err(e) => format!("could not be waited for: {e}"),
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
