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
    /// The admin API, when a token is set.
    pub admin: Option<AdminConfig>,
    pub telemetry: TelemetryConfig,
    /// Where `${secret:NAME}` reads (the key is read again at each use).
    pub secrets: SecretsConfig,
    /// The file this came from, when it came from a file.
    pub source: Option<PathBuf>,
}

/// `[secrets]`, resolved: the store file and the key file, if any.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SecretsConfig {
    pub store: PathBuf,
    pub key_file: Option<PathBuf>,
    /// Whether `[secrets]` was written (then the store must open at start).
    pub configured: bool,
}

/// `[admin]` (present only when a token is set).
#[derive(Clone, PartialEq)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    pub token: String,
    /// The console's read-only token, if any.
    pub viewer_token: Option<String>,
    /// Allowed client networks.
    pub allow: Vec<IpNet>,
    /// Where API changes to upstreams persist (none: kept in memory only).
    pub state_file: Option<PathBuf>,
    /// HTTPS on the admin listener.
    pub tls: Option<TlsConfig>,
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("AdminConfig")
            .field("listen", &self.listen)
            .field("allow", &self.allow)
            .field("tls", &self.tls)
            .field("state_file", &self.state_file)
            .finish_non_exhaustive()
    }
}

/// An IP network in CIDR form (`127.0.0.1/32`, `10.0.0.0/8`, `::1/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    pub addr: std::net::IpAddr,
    pub prefix: u8,
}

impl IpNet {
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a network such as 127.0.0.1/32 or 10.0.0.0/8");
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: std::net::IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(Self { addr, prefix })
    }

    /// Whether `ip` is inside (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// `[telemetry]`
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    pub log_format: LogFormat,
    /// OTLP/HTTP traces endpoint (the base URL; `/v1/traces` is added).
    pub otlp_endpoint: Option<reqwest::Url>,
    pub service_name: String,
    pub metrics: bool,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log_format: LogFormat::Text,
            otlp_endpoint: None,
            service_name: "switchyard".into(),
            metrics: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl Config {
    pub fn upstream(&self, name: &UpstreamName) -> Option<&UpstreamSpec> {
        self.upstreams.iter().find(|u| &u.name == name)
    }

    /// This configuration with `spec` added, or replacing the upstream of
    /// its name. A new upstream joins the routes that serve every upstream.
    pub fn with_upstream(&self, spec: UpstreamSpec) -> Config {
        let mut next = self.clone();
        match next.upstreams.iter_mut().find(|u| u.name == spec.name) {
            Some(u) => *u = spec,
            None => {
                next.upstreams.push(spec);
                next.upstreams.sort_by(|a, b| a.name.cmp(&b.name));
            }
        }
        next.refresh_every_upstream_routes();
        next
    }

    /// This configuration without upstream `name`; refused when a route
    /// names it explicitly, or when a route would be left with none.
    pub fn without_upstream(&self, name: &UpstreamName) -> Result<Config, String> {
        if let Some(r) = self
            .routes
            .iter()
            .find(|r| !r.every_upstream && r.upstreams.contains(name))
        {
            return Err(format!(
                "route {} names upstream `{name}`: change the route in the config file first",
                r.path
            ));
        }
        let mut next = self.clone();
        next.upstreams.retain(|u| &u.name != name);
        next.refresh_every_upstream_routes();
        if let Some(r) = next.routes.iter().find(|r| r.upstreams.is_empty()) {
            return Err(format!("route {} would be left with no upstream", r.path));
        }
        Ok(next)
    }

    fn refresh_every_upstream_routes(&mut self) {
        let all: Vec<UpstreamName> = self.upstreams.iter().map(|u| u.name.clone()).collect();
        for r in self.routes.iter_mut().filter(|r| r.every_upstream) {
            r.upstreams = all.clone();
        }
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
    /// The era bridge's HMAC key (`None`: one made at start).
    pub state_key: Option<Secret>,
    /// Up to how long a worker polls after a request starts or ends
    /// instead of sleeping (zero: never; see `server::spin`).
    pub idle_spin: Duration,
    /// How often WebSocket clients are pinged.
    pub websocket_ping: Duration,
    /// HTTPS, when configured.
    pub tls: Option<TlsConfig>,
}

/// `[server.tls]` / `[admin.tls]`, resolved (paths against the config's folder).
#[derive(Debug, Clone, PartialEq)]
pub struct TlsConfig {
    /// Where the listener's certificate comes from.
    pub source: CertSource,
    pub client_ca: Option<PathBuf>,
    pub client_auth: ClientAuth,
}

/// `cert` and `key` files, or a certificate obtained by ACME.
#[derive(Debug, Clone, PartialEq)]
pub enum CertSource {
    Files { cert: PathBuf, key: PathBuf },
    Acme(AcmeConfig),
}

/// `[server.tls.acme]`, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct AcmeConfig {
    pub domains: Vec<String>,
    /// `mailto:` addresses given to the CA.
    pub contact: Vec<String>,
    /// The directory URL (default: Let's Encrypt's production directory).
    pub directory: String,
    /// A PEM CA the directory's HTTPS is verified against (a private or
    /// test CA such as Pebble); `None`: the platform's web roots.
    pub directory_ca: Option<PathBuf>,
    /// The folder the account and the certificate are kept in.
    pub cache: PathBuf,
    /// How long before expiry a certificate is renewed.
    pub renew_before: Duration,
    pub challenge: AcmeChallenge,
    /// Where HTTP-01 challenges are answered (plain HTTP; other paths are
    /// redirected to HTTPS).
    pub http_listen: Option<SocketAddr>,
}

/// How the CA checks that we hold the domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcmeChallenge {
    /// On the TLS listener itself (ALPN `acme-tls/1`, RFC 8737).
    TlsAlpn01,
    /// On the `http_listen` listener (port 80 in production).
    Http01,
}

/// Whether a client certificate is required (with `client_ca`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    Required,
    Optional,
}

/// A secret from the configuration: compared and used, never printed.
#[derive(Clone, PartialEq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
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
    pub restart: RestartPolicy,
    pub health: Option<HealthCheck>,
    /// Started on first use rather than at start-up.
    pub lazy: bool,
    /// A child unused this long is stopped (and starts again on use).
    pub idle_timeout: Option<Duration>,
    /// `ttlMs`/`cacheScope` given to modern clients for list and read
    /// results this upstream sends without them.
    pub cache_hint: Option<CacheHint>,
}

/// Freshness of results for modern clients (`ttlMs`, `cacheScope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheHint {
    pub ttl_ms: u64,
    pub public: bool,
}

/// When a stopped child (or a dropped connection) is brought back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    pub when: RestartWhen,
    /// More than `max` restarts within `window` marks the upstream failed.
    pub max: u32,
    pub window: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            when: RestartWhen::Always,
            max: 5,
            window: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartWhen {
    /// After any exit.
    Always,
    /// After an exit with a non-zero status or a signal, a failed start or
    /// a failed health check; a clean exit (status 0) stays down.
    OnFailure,
    /// Never: the upstream stays down until restarted by the admin API or
    /// a config change.
    Never,
}

/// A periodic liveness probe: `ping` (legacy) or `server/discover` (modern).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthCheck {
    pub interval: Duration,
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
    /// `ws://` or `wss://`: one legacy session per connection.
    WebSocket {
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
            || s == "/metrics"
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
    /// `upstreams` was absent: the route serves every upstream, including
    /// ones added later (by the admin API or a config change).
    pub every_upstream: bool,
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
