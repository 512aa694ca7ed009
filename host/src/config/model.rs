//! The validated configuration: what the rest of the host sees.
//!
//! Every value here has been checked (names, paths, addresses, references
//! between tables, `${VAR}` interpolation), so nothing downstream re-validates.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The whole validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub server: ServerConfig,
    /// In name order.
    pub upstreams: Vec<UpstreamSpec>,
    /// In file order; never empty (a default `/mcp` route serves all upstreams).
    pub routes: Vec<RouteSpec>,
    /// Named plugin instances, in name order.
    pub plugins: Vec<PluginSpec>,
    /// The file this came from, when it came from a file.
    pub source: Option<PathBuf>,
}

impl Config {
    pub fn upstream(&self, name: &UpstreamName) -> Option<&UpstreamSpec> {
        self.upstreams.iter().find(|u| &u.name == name)
    }
}

/// `[server]`
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub allowed_origins: OriginPolicy,
    /// Extra `Host` names accepted besides loopback ones when bound to loopback.
    pub allowed_hosts: Vec<String>,
    pub max_body_bytes: usize,
    pub shutdown_grace: Duration,
    pub session_idle_timeout: Duration,
}

/// Which browser origins may call the endpoint.
#[derive(Debug, Clone, PartialEq)]
pub enum OriginPolicy {
    /// `allowed_origins = ["*"]`: every origin (for deployments behind their own edge).
    Any,
    /// Only these origins, plus loopback origins (`http://localhost:*`,
    /// `http://127.0.0.1:*`, `http://[::1]:*`) when the gateway listens on loopback.
    List(Vec<String>),
}

/// A validated upstream name: 1–64 of `[A-Za-z0-9_.-]`, starting with a
/// letter or digit and never containing `__` (the aggregation separator), so
/// that `{upstream}__{tool}` is a valid tool name and splits unambiguously.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UpstreamName(String);

impl UpstreamName {
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok_chars = s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if s.is_empty() || s.len() > 64 {
            return Err(format!("upstream name `{s}` must be 1 to 64 characters"));
        }
        if !ok_chars || !s.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(format!(
                "upstream name `{s}` may use only letters, digits, `_`, `.`, `-` and must start with a letter or digit"
            ));
        }
        if s.contains("__") || s.ends_with('_') {
            return Err(format!(
                "upstream name `{s}` must not contain `__` or end with `_` (`__` separates upstream and tool names)"
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for UpstreamName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `[upstreams.NAME]`
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamSpec {
    pub name: UpstreamName,
    pub transport: Transport,
    /// How long a request waits for the upstream's next message (progress
    /// notifications restart the clock).
    pub timeout: Duration,
}

/// How the gateway reaches an upstream.
#[derive(Debug, Clone, PartialEq)]
pub enum Transport {
    Stdio {
        command: String,
        args: Vec<String>,
        env: Vec<(String, String)>,
        cwd: Option<PathBuf>,
    },
    Http {
        url: reqwest::Url,
        headers: Vec<(String, String)>,
    },
}

/// A validated route path: starts with `/`, no trailing `/`, no query, and
/// none of the gateway's own endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoutePath(String);

impl RoutePath {
    pub fn parse(s: &str) -> Result<Self, String> {
        let valid_chars = s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '.' | '-'));
        if !s.starts_with('/')
            || s.len() < 2
            || s.ends_with('/')
            || !valid_chars
            || s.contains("//")
        {
            return Err(format!(
                "route path `{s}` must start with `/`, not end with `/`, and use only letters, digits, `/`, `_`, `.`, `-`"
            ));
        }
        if s == "/healthz"
            || s.starts_with("/.well-known")
            || s.ends_with("/sse")
            || s.ends_with("/messages")
        {
            return Err(format!(
                "route path `{s}` collides with an endpoint the gateway serves itself"
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RoutePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `[[routes]]`
#[derive(Debug, Clone, PartialEq)]
pub struct RouteSpec {
    pub path: RoutePath,
    /// In configured order: this order decides resource-URI collisions.
    pub upstreams: Vec<UpstreamName>,
    /// Plugin instance names, in chain order.
    pub plugins: Vec<PluginName>,
}

/// A validated plugin instance name: 1–64 of `[A-Za-z0-9_.-]`, starting with
/// a letter or digit (it names metrics labels, log fields and kv namespaces).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PluginName(String);

impl PluginName {
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok_chars = s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if s.is_empty()
            || s.len() > 64
            || !ok_chars
            || !s.starts_with(|c: char| c.is_ascii_alphanumeric())
        {
            return Err(format!(
                "plugin name `{s}` must be 1 to 64 letters, digits, `_`, `.`, `-`, starting with a letter or digit"
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for PluginName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `[plugins.NAME]`
#[derive(Debug, Clone, PartialEq)]
pub struct PluginSpec {
    pub name: PluginName,
    pub component: ComponentSource,
    /// The plugin's `config` table as JSON (`{}` when absent).
    pub config: serde_json::Value,
    pub failure: FailureMode,
    pub isolation: Isolation,
    /// The deadline of one hook call.
    pub timeout: Duration,
    /// The cap on the plugin's linear memory, in bytes.
    pub memory_bytes: usize,
    pub grants: Grants,
}

/// Where a plugin's component comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ComponentSource {
    /// A `.wasm` file (absolute, resolved against the config file's folder).
    File(PathBuf),
    /// One of the components embedded in the binary (`builtin:NAME`).
    Builtin(String),
}

impl std::fmt::Display for ComponentSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(p) => write!(f, "{}", p.display()),
            Self::Builtin(n) => write!(f, "builtin:{n}"),
        }
    }
}

/// What a request sees when a plugin fails (traps, times out, runs out of
/// memory, returns malformed output).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureMode {
    /// The client gets a JSON-RPC error naming the plugin (the default: a
    /// broken policy must not let traffic through).
    Closed,
    /// The plugin is skipped for that request; the failure is logged and
    /// counted.
    Open,
}

/// How instances of a plugin are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// Warm instances reused across calls (discarded after any failure).
    Pooled,
    /// A new instance for every call: nothing can leak between requests.
    Fresh,
}

/// What a plugin may reach besides the gateway's imports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grants {
    pub dirs: Vec<DirGrant>,
    /// Environment variables passed through, with their values at load.
    pub env: Vec<(String, String)>,
    /// URLs the `fetch` import may get: exact, or a prefix ending in `*`.
    pub urls: Vec<String>,
}

impl Grants {
    /// Whether `url` is granted.
    pub fn allows_url(&self, url: &str) -> bool {
        self.urls.iter().any(|g| match g.strip_suffix('*') {
            Some(prefix) => url.starts_with(prefix),
            None => g == url,
        })
    }
}

/// A host directory preopened for a plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct DirGrant {
    pub host: PathBuf,
    pub guest: String,
    pub writable: bool,
}
