//! A stdio upstream: one child process speaking newline-delimited JSON-RPC.
//!
//! The child runs in its own process group so that stopping it also stops
//! whatever it spawned (`npx` and `uvx` wrappers leave grandchildren
//! otherwise). Its stdout is protocol; its stderr is logging, forwarded line by
//! line to the gateway's log tagged with the upstream's name.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::unix::pipe;
use tokio::process::{Child, Command};
use tokio::sync::Notify;

use crate::config::{Transport, UpstreamSpec};
use crate::upstream::conn::{Dispatcher, Outbound};

/// How long a child gets to exit on its own after its stdin closes, and then
/// again after SIGTERM, before the next, harsher step.
const STOP_STEP: Duration = Duration::from_millis(1500);

/// The child's stdin. A message is written straight from the caller's task
/// when the pipe has room (the common case: no task hop, no wake-up of
/// another thread, which measurably dominated the added latency); what does
/// not fit is queued for the writer task, which waits for the pipe to drain.
/// One mutex keeps lines whole and in order.
struct Stdin {
    state: Mutex<StdinState>,
    wake: Notify,
}

struct StdinState {
    /// `None` once closed (shutdown, or the child stopped reading).
    pipe: Option<Arc<pipe::Sender>>,
    /// Bytes not yet written, always starting at a line's unwritten part.
    pending: Vec<u8>,
}

impl Stdin {
    /// Closes the pipe: the child sees end of input.
    fn close(&self) {
        let mut st = self.state.lock().expect("stdin lock");
        st.pipe = None;
        st.pending.clear();
        drop(st);
        self.wake.notify_one();
    }
}

/// The dispatcher's outbound side for a stdio child.
struct LineSender(Arc<Stdin>);

impl Outbound for LineSender {
    fn send(&self, msg: Value) {
        let mut line = serde_json::to_vec(&msg).expect("a Value always serializes");
        line.push(b'\n');
        let mut st = self.0.state.lock().expect("stdin lock");
        let Some(pipe) = st.pipe.clone() else { return };
        if st.pending.is_empty() {
            match pipe.try_write(&line) {
                Ok(n) if n == line.len() => return,
                Ok(n) => st.pending.extend_from_slice(&line[n..]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => st.pending.extend(line),
                Err(e) => {
                    tracing::warn!(error = %e, "writing to upstream stdin failed");
                    st.pipe = None;
                    return;
                }
            }
        } else {
            st.pending.extend(line);
        }
        drop(st);
        self.0.wake.notify_one();
    }
}

/// Writes what [`LineSender`] could not, as the pipe drains.
async fn drain_stdin(stdin: Arc<Stdin>, name: String) {
    loop {
        let pipe = {
            let st = stdin.state.lock().expect("stdin lock");
            match &st.pipe {
                None => return,
                Some(p) if !st.pending.is_empty() => Some(Arc::clone(p)),
                Some(_) => None,
            }
        };
        let Some(pipe) = pipe else {
            stdin.wake.notified().await;
            continue;
        };
        if let Err(e) = pipe.writable().await {
            tracing::warn!(upstream = %name, error = %e, "upstream stdin failed");
            stdin.close();
            return;
        }
        let mut st = stdin.state.lock().expect("stdin lock");
        if st.pipe.is_none() {
            return;
        }
        match pipe.try_write(&st.pending) {
            Ok(n) => {
                st.pending.drain(..n);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => {
                tracing::warn!(upstream = %name, error = %e, "writing to upstream stdin failed");
                st.pipe = None;
                return;
            }
        }
    }
}

/// A running child and the connection over its pipes.
pub struct StdioChild {
    pub conn: Arc<Dispatcher>,
    child: Child,
    pub pid: Option<u32>,
    stdin: Arc<Stdin>,
    writer: tokio::task::JoinHandle<()>,
    reader: tokio::task::JoinHandle<()>,
}

impl StdioChild {
    /// Spawns the child described by `spec` (which must be a stdio upstream).
    pub fn spawn(
        spec: &UpstreamSpec,
        on_change: impl Fn(Value) + Send + Sync + 'static,
        on_stderr: impl Fn(String) + Send + 'static,
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

        let pipe = pipe::Sender::from_owned_fd(stdin.into_owned_fd()?)?;
        let stdin = Arc::new(Stdin {
            state: Mutex::new(StdinState {
                pipe: Some(Arc::new(pipe)),
                pending: Vec::new(),
            }),
            wake: Notify::new(),
        });
        let conn = Dispatcher::new(&name, LineSender(Arc::clone(&stdin)), on_change);
        let writer = tokio::spawn(drain_stdin(Arc::clone(&stdin), name.clone()));

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
                // A child that prints its credentials does not publish them.
                let line = crate::secrets::redact(&line).into_owned();
                tracing::info!(target: "switchyard::upstream::stderr", upstream = %name, "{line}");
                on_stderr(line);
            }
        });

        Ok(StdioChild {
            conn,
            child,
            pid,
            stdin,
            writer,
            reader,
        })
    }

    /// Waits until the child exits or its stdout closes (either means the
    /// connection is over), and returns how it ended.
    pub async fn wait(&mut self) -> Exit {
        let reader = &mut self.reader;
        tokio::select! {
            status = self.child.wait() => describe(status),
            _ = reader => {
                // stdout closed: give the process a moment to report its status.
                match tokio::time::timeout(Duration::from_millis(500), self.child.wait()).await {
                    Ok(status) => describe(status),
                    Err(_) => Exit { how: "closed its stdout".to_owned(), clean: false },
                }
            }
        }
    }

    /// Stops the child: close stdin, then SIGTERM and finally SIGKILL to its
    /// whole process group, each after [`STOP_STEP`].
    pub async fn stop(mut self) {
        self.conn.close("the upstream is shutting down".into());
        self.stdin.close();
        self.writer.abort();
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

/// How a child ended.
#[derive(Debug, Clone)]
pub struct Exit {
    /// "exited with status 1", "was killed by signal 9", …
    pub how: String,
    /// Exit status 0: not a failure (for `restart.policy = "on-failure"`).
    pub clean: bool,
}

fn describe(status: std::io::Result<std::process::ExitStatus>) -> Exit {
    use std::os::unix::process::ExitStatusExt;
    let (how, clean) = match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(c), _) => (format!("exited with status {c}"), c == 0),
            (None, Some(sig)) => (format!("was killed by signal {sig}"), false),
            _ => ("exited".to_owned(), false),
        },
        Err(e) => (format!("could not be waited for: {e}"), false),
    };
    Exit { how, clean }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
