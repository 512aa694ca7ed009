//! A small, hand-written MCP server over stdio that speaks both protocol eras.
//!
//! It is Switchyard's demo upstream, the fixture server for the official MCP
//! conformance suite (when fronted by the gateway), and the upstream of the
//! gateway's integration tests. It uses no MCP SDK on purpose: the wire shape of
//! each era (legacy `initialize` sessions, modern 2026-07-28 per-request `_meta`)
//! is written out here, so the tests control exactly what the gateway sees.
//!
//! # Principal types
//!
//! - [`Options`] (built by [`parse_args`]) chooses the [`Era`]s served, list
//!   paging, cache hints and the server's name.
//! - [`serve`] / [`serve_stdio`] run one connection: newline-delimited JSON-RPC
//!   in, one JSON object per line out, logs only on stderr (through `tracing`).
//!
//! # Layout
//!
//! Modules are declared in the order a message travels:
//!
//! | module | owns |
//! |---|---|
//! | `protocol` | JSON-RPC framing, error codes, `_meta` keys, log levels (pure) |
//! | `session` | the connection: reader loop, writer task, in-flight requests and cancellation, server→client requests, subscriptions and notification fan-out |
//! | `dispatch` | which era a request speaks, method routing, era-specific result decoration |
//! | `request` | the per-request context handed to features (arguments, progress, logging) |
//! | `client_input` | asking the client for input: a real request (legacy) or an `InputRequiredResult` (modern) |
//! | `pagination` | opaque cursors for every list |
//! | `content` | fixture payloads (the tiny PNG and WAV) and content-block builders |
//! | `tools`, `resources`, `prompts`, `completion` | the features themselves |
//! | `input_required` | the SEP-2322 fixture tools and prompt (`test_input_required_result_*`) |
//!
//! Dependencies point one way: features use `request`, `client_input`,
//! `content` and `protocol`; only `dispatch` knows every feature; only
//! `session` does I/O.
//!
//! # Example
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! let opts = switchyard_demo::parse_args(["--era", "dual", "--page-size", "5"].map(String::from).into_iter())
//!     .map_err(anyhow::Error::msg)?;
//! switchyard_demo::serve_stdio(opts).await
//! # }
//! ```

mod protocol;

mod session;

mod dispatch;

mod request;

mod client_input;

mod pagination;

mod content;

mod completion;
mod input_required;
mod prompts;
mod resources;
mod tools;

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

/// Which protocol eras the server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    /// Only the `initialize`-handshake revisions (2024-11-05 … 2025-11-25).
    /// `server/discover` is answered -32601, which is how a dual-era client
    /// recognizes a legacy server; `_meta` protocol versions are ignored.
    Legacy,
    /// Only 2026-07-28: every request must carry `_meta` protocolVersion;
    /// `initialize` is refused with -32022 (UnsupportedProtocolVersion).
    Modern,
    /// Both: a request with a modern `_meta` protocol version is served
    /// statelessly; everything else is served as the legacy session.
    Dual,
}

impl Era {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "legacy" => Some(Self::Legacy),
            "modern" => Some(Self::Modern),
            "dual" => Some(Self::Dual),
            _ => None,
        }
    }

    pub(crate) fn serves_legacy(self) -> bool {
        matches!(self, Self::Legacy | Self::Dual)
    }

    pub(crate) fn serves_modern(self) -> bool {
        matches!(self, Self::Modern | Self::Dual)
    }
}

/// How the server behaves; see [`parse_args`] for the matching flags.
#[derive(Debug, Clone)]
pub struct Options {
    /// Which protocol eras to answer (`--era`, default [`Era::Dual`]).
    pub era: Era,
    /// Page every list with at most this many items and an opaque `nextCursor`
    /// (`--page-size`; default `None`: everything in one page).
    pub page_size: Option<usize>,
    /// `serverInfo.name` (`--name`, default `switchyard-demo`); `whoami` reports it
    /// so tests can tell upstreams apart.
    pub name: String,
    /// `ttlMs` on modern list/read/discover results (`--ttl-ms`, default 60000).
    pub ttl_ms: u64,
    /// How often subscribers of `test://watched-resource` get
    /// `notifications/resources/updated` (`--watch-interval-ms`, default 3000;
    /// 0 turns the timer off and leaves only `touch_resource`).
    pub watch_interval: Option<Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            era: Era::Dual,
            page_size: None,
            name: "switchyard-demo".to_owned(),
            ttl_ms: 60_000,
            watch_interval: Some(Duration::from_millis(3_000)),
        }
    }
}

impl Options {
    /// `serverInfo` (legacy) / `_meta` `io.modelcontextprotocol/serverInfo` (modern).
    pub(crate) fn server_info(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name,
            "title": "Switchyard demo server",
            "version": env!("CARGO_PKG_VERSION"),
        })
    }
}

/// The flags [`parse_args`] accepts, for `--help` output.
pub const USAGE: &str = "\
Usage: switchyard-demo-server [OPTIONS]

A demo MCP server on stdin/stdout (newline-delimited JSON-RPC); logs go to stderr.

Options:
  --era legacy|modern|dual   protocol eras to serve (default: dual)
  --page-size N              paginate every list, N items per page (default: one page)
  --name NAME                serverInfo name, reported by `whoami` (default: switchyard-demo)
  --ttl-ms N                 ttlMs on modern list/read results (default: 60000)
  --watch-interval-ms N      period of test://watched-resource updates, 0 = off (default: 3000)
  -h, --help                 print this help";

/// Parses command-line flags (without the program name) into [`Options`].
///
/// Both `--flag value` and `--flag=value` are accepted. `-h`/`--help` yields
/// `Err(USAGE)`, so a caller can print the error and exit either way. The
/// gateway calls this for `switchyard demo [ARGS]`.
pub fn parse_args(args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut opts = Options::default();
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg.clone(), None),
        };
        if flag == "-h" || flag == "--help" {
            return Err(USAGE.to_owned());
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--era" => {
                let text = value()?;
                opts.era = Era::parse(&text).ok_or_else(|| {
                    format!("--era: expected legacy, modern or dual, got {text:?}")
                })?;
            }
            "--page-size" => {
                let n: usize = parse_number("--page-size", &value()?)?;
                if n == 0 {
                    return Err("--page-size: must be at least 1".to_owned());
                }
                opts.page_size = Some(n);
            }
            "--name" => {
                let name = value()?;
                if name.is_empty() {
                    return Err("--name: must not be empty".to_owned());
                }
                opts.name = name;
            }
            "--ttl-ms" => opts.ttl_ms = parse_number("--ttl-ms", &value()?)?,
            "--watch-interval-ms" => {
                let ms: u64 = parse_number("--watch-interval-ms", &value()?)?;
                opts.watch_interval = (ms > 0).then(|| Duration::from_millis(ms));
            }
            _ => return Err(format!("unknown argument {arg:?}\n\n{USAGE}")),
        }
    }
    Ok(opts)
}

fn parse_number<T: std::str::FromStr>(flag: &str, text: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("{flag}: expected a non-negative integer, got {text:?}"))
}

/// Serves one MCP connection on this process's stdin/stdout until stdin ends.
///
/// When stdin and stdout are pipes (as under a gateway) they are read and
/// written without blocking, on the runtime's own thread: tokio's
/// `stdin()`/`stdout()` hand every read and write to a blocking-pool thread,
/// which cost two thread hand-offs and ~60 µs of CPU per call on a 2-core
/// machine. Anything else (a terminal, a file) falls back to those.
///
/// Note that the `crash` tool exits the whole process (status 3).
pub async fn serve_stdio(opts: Options) -> anyhow::Result<()> {
    use std::os::fd::AsFd;
    use tokio::net::unix::pipe;
    let input: Box<dyn AsyncRead + Unpin + Send> = match std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .and_then(pipe::Receiver::from_owned_fd)
    {
        Ok(rx) => Box::new(rx),
        Err(_) => Box::new(tokio::io::stdin()),
    };
    let output: Box<dyn AsyncWrite + Unpin + Send> = match std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .and_then(pipe::Sender::from_owned_fd)
    {
        Ok(tx) => Box::new(tx),
        Err(_) => Box::new(tokio::io::stdout()),
    };
    serve(opts, input, output).await
}

/// Serves one MCP connection on any byte streams until `input` ends.
///
/// At end of input the server ends open `subscriptions/listen` streams with
/// their final result, fails requests it is still waiting on the client for,
/// lets other in-flight requests finish (up to 30 s) and flushes `output`.
pub async fn serve<R, W>(opts: Options, input: R, output: W) -> anyhow::Result<()>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    session::run(opts, input, output).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, String> {
        parse_args(args.iter().map(|a| a.to_string()))
    }

    #[test]
    fn defaults() {
        let opts = parse(&[]).unwrap();
        assert_eq!(opts.era, Era::Dual);
        assert_eq!(opts.page_size, None);
        assert_eq!(opts.name, "switchyard-demo");
    }

    #[test]
    fn flags_in_both_forms() {
        let opts = parse(&[
            "--era",
            "legacy",
            "--page-size=2",
            "--name",
            "a",
            "--watch-interval-ms",
            "0",
        ])
        .unwrap();
        assert_eq!(opts.era, Era::Legacy);
        assert_eq!(opts.page_size, Some(2));
        assert_eq!(opts.name, "a");
        assert_eq!(opts.watch_interval, None);
    }

    #[test]
    fn errors_name_the_flag() {
        assert!(parse(&["--era", "x"]).unwrap_err().contains("--era"));
        assert!(
            parse(&["--page-size", "0"])
                .unwrap_err()
                .contains("--page-size")
        );
        assert!(
            parse(&["--page-size"])
                .unwrap_err()
                .contains("needs a value")
        );
        assert!(parse(&["--bogus"]).unwrap_err().contains("--bogus"));
        assert_eq!(parse(&["--help"]).unwrap_err(), USAGE);
    }
}
