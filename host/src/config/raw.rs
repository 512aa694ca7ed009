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
    /// Named plugin instances. The plugin platform fills these in; today the
    /// table must be empty, so that a config written for it fails loudly.
    #[serde(default)]
    pub plugins: BTreeMap<String, serde_json::Value>,
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
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// How long a request may wait for the upstream's next message.
    pub timeout: Option<Duration>,
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
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Duration {
    Seconds(u64),
    Text(String),
}
