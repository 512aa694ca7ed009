//! The configuration exactly as written in TOML (and the environment).
//!
//! Every table denies unknown keys, so a typo is an error naming the key
//! instead of a silently ignored setting. Nothing here is validated beyond its
//! type: [`super::model`] is what the rest of the host sees.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub upstreams: BTreeMap<String, RawUpstream>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    /// Named plugin instances, referred to by routes.
    #[serde(default)]
    pub plugins: BTreeMap<String, RawPlugin>,
    /// The admin API (off unless `token` is set).
    #[serde(default)]
    pub admin: RawAdmin,
    /// Logs, metrics and traces.
    #[serde(default)]
    pub telemetry: RawTelemetry,
    /// The encrypted secret store (`${secret:NAME}`); present or not, a
    /// reference to a secret opens the default store.
    #[serde(default)]
    pub secrets: Option<RawSecrets>,
}

/// `[secrets]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecrets {
    /// The store file (default: beside the config file, `NAME.secrets`).
    pub store: Option<String>,
    /// A file holding the key (mode 0600); else `$SWITCHYARD_SECRET_KEY`.
    pub key_file: Option<String>,
}

/// `[admin]`: the admin API, on its own listener.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    /// Default `127.0.0.1:8081`.
    pub listen: Option<String>,
    /// The bearer token; the API is off while unset or empty.
    pub token: Option<String>,
    /// A read-only token for the console (`/ui/`): every page, no change.
    pub viewer_token: Option<String>,
    /// Client networks allowed (CIDR); default loopback only.
    pub allow: Option<Vec<String>>,
    /// Where upstreams changed through the API are kept across restarts
    /// (default: beside the config file, `NAME.admin.toml`).
    pub state_file: Option<String>,
    /// HTTPS on the admin listener (the console's cookie is then `Secure`).
    pub tls: Option<RawTls>,
}

/// `[telemetry]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawTelemetry {
    /// `text` (default) or `json`.
    pub log_format: Option<String>,
    /// An OTLP/HTTP endpoint (`http://collector:4318`) traces are exported to.
    pub otlp_endpoint: Option<String>,
    /// The `service.name` of exported spans (default `switchyard`).
    pub service_name: Option<String>,
    /// Serve Prometheus metrics at `/metrics` on the main listener (default true).
    pub metrics: Option<bool>,
}

/// What the admin API (and the console, its client) persisted: upstreams
/// it added or changed (whole tables, replacing the file's), the names it
/// removed, plugin instances it added, and route chains it swapped.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawOverlay {
    #[serde(default)]
    pub upstreams: BTreeMap<String, RawUpstream>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
    /// Plugin instances added or replaced (whole tables).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub plugins: BTreeMap<String, RawPlugin>,
    /// Route path → its chain, replacing the file's `plugins` of that route.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub chains: BTreeMap<String, Vec<String>>,
}

/// `[plugins.NAME]`: one plugin instance (a component and its configuration).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlugin {
    /// A path to a `.wasm` component (relative to the config file) or
    /// `builtin:NAME`.
    pub component: String,
    /// The plugin's own table, handed to its `configure` as JSON.
    #[serde(default)]
    pub config: Option<serde_json::Value>,
    /// `closed` (default) or `open`.
    pub failure: Option<String>,
    /// `pooled` (default) or `fresh`.
    pub isolation: Option<String>,
    /// The deadline of one hook call.
    pub timeout_ms: Option<u64>,
    /// The cap on the plugin's linear memory.
    pub memory_mb: Option<u64>,
    #[serde(default)]
    pub grants: RawGrants,
}

/// `[plugins.NAME.grants]`: what a plugin may reach beyond the gateway's
/// imports. Nothing by default.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawGrants {
    /// Host directories visible to the plugin.
    #[serde(default)]
    pub dirs: Vec<RawDirGrant>,
    /// Names of environment variables passed through.
    #[serde(default)]
    pub env: Vec<String>,
    /// URLs the plugin may fetch through the `fetch` import: exact, or a
    /// prefix ending in `*`.
    #[serde(default)]
    pub urls: Vec<String>,
}

/// One granted directory.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawDirGrant {
    /// The directory on the host (relative to the config file).
    pub host: String,
    /// Where the plugin sees it; defaults to `/` + its last path component.
    pub guest: Option<String>,
    /// Read-only unless true.
    #[serde(default)]
    pub writable: bool,
}

/// `[server]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: String,
    /// Origins (scheme://host[:port]) a browser may call from; `"*"` allows all.
    pub allowed_origins: Vec<String>,
    /// Host names accepted in the `Host` header besides loopback ones.
    pub allowed_hosts: Vec<String>,
    pub max_body_bytes: u64,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
    /// A legacy session idle this long is forgotten.
    pub session_idle_timeout: Duration,
    /// The HMAC key of the era bridge's `requestState` (default: made at start).
    pub state_key: Option<String>,
    /// Up to how long a worker keeps polling after a request starts or
    /// ends instead of sleeping (`"0s"`: off).
    pub idle_spin: Duration,
    /// How often a WebSocket client is pinged (`{route}/ws`).
    pub websocket_ping: Duration,
    /// HTTPS on this listener.
    pub tls: Option<RawTls>,
}

/// `[server.tls]` / `[admin.tls]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// The PEM certificate chain, leaf first (reloaded when it changes).
    pub cert: Option<String>,
    /// The PEM private key of the leaf.
    pub key: Option<String>,
    /// PEM CA certificates client certificates are verified against.
    pub client_ca: Option<String>,
    /// `required` (default, with `client_ca`) or `optional`.
    pub client_auth: Option<String>,
    /// A certificate from an ACME CA instead of `cert` and `key`.
    pub acme: Option<RawAcme>,
}

/// `[server.tls.acme]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAcme {
    pub domains: Vec<String>,
    /// One `mailto:` address or a list of them.
    pub contact: Option<OneOrMany>,
    /// The ACME directory URL (default: Let's Encrypt production).
    pub directory: Option<String>,
    /// PEM CA for the directory's own HTTPS (private CAs, Pebble).
    pub directory_ca: Option<String>,
    /// The folder the account and certificate are kept in.
    pub cache: Option<String>,
    /// Renew this long before expiry (default `"30d"`).
    pub renew_before: Option<Duration>,
    /// `tls-alpn-01` (default) or `http-01`.
    pub challenge: Option<String>,
    /// The plain-HTTP listener for HTTP-01 (e.g. `"0.0.0.0:80"`).
    pub http_listen: Option<String>,
}

/// A string or a list of strings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            max_body_bytes: 4 * 1024 * 1024,
            shutdown_grace: Duration::Text("10s".into()),
            session_idle_timeout: Duration::Text("30m".into()),
            state_key: None,
            idle_spin: Duration::Text("200us".into()),
            websocket_ping: Duration::Text("30s".into()),
            tls: None,
        }
    }
}

/// `[upstreams.NAME]`: a stdio child (`command`) or a remote server (`url`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub command: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub cwd: Option<String>,
    pub url: Option<String>,
    /// `http` (streamable HTTP or HTTP+SSE, found out) or `websocket`;
    /// by default what the URL's scheme says.
    pub transport: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// How long a request may wait for the upstream's next message.
    pub timeout: Option<Duration>,
    /// What happens when a child exits (stdio) or a connection drops (remote).
    pub restart: Option<RawRestart>,
    /// Periodic liveness checks.
    pub health: Option<RawHealth>,
    /// Start on first use instead of at start-up.
    pub lazy: Option<bool>,
    /// Stop a child unused this long (it starts again on the next use).
    pub idle_timeout: Option<Duration>,
    /// Freshness hints for modern clients when this upstream gives none.
    pub cache_hint: Option<RawCacheHint>,
}

/// `cache_hint = { ttl_ms = 60000, scope = "public" }`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawCacheHint {
    pub ttl_ms: u64,
    /// `private` (default) or `public`.
    pub scope: Option<String>,
}

/// `restart = { policy = "on-failure", max = 5, window_seconds = 60 }`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRestart {
    /// `always` (default), `on-failure` or `never`.
    pub policy: Option<String>,
    /// At most this many restarts within `window_seconds`; one more marks
    /// the upstream failed.
    pub max: Option<u32>,
    pub window_seconds: Option<u64>,
}

/// `health = { interval_seconds = 30, timeout_seconds = 5 }`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    pub interval_seconds: Option<u64>,
    pub timeout_seconds: Option<u64>,
}

/// `[[routes]]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub path: String,
    /// Upstream names; absent means every configured upstream.
    pub upstreams: Option<Vec<String>>,
    #[serde(default)]
    pub plugins: Vec<String>,
}

/// A duration written as `"30s"`, `"250ms"`, `"2m"` or a bare number of seconds.
#[derive(Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Duration {
    Seconds(u64),
    Text(String),
}

/// As written in TOML (`"soon"`, `30`): error messages quote the value so.
impl std::fmt::Debug for Duration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Duration::Seconds(s) => write!(f, "{s}"),
            Duration::Text(t) => write!(f, "{t:?}"),
        }
    }
}
