//! Configuration: TOML file and environment → a validated [`Config`].
//!
//! Layers, lowest first (figment): built-in defaults, the TOML file, then
//! `SWITCHYARD_*` environment variables (`__` nests: `SWITCHYARD_SERVER__LISTEN`).
//! [`raw`] mirrors the file exactly and denies unknown keys; [`model`] is
//! the validated result. Everything that can be wrong with a configuration is
//! found here, before a port binds or a child spawns, and reported as a
//! [`ConfigError`] naming the file, the key and the bad value.

pub mod interp;
pub mod model;
pub mod raw;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};

pub use interp::{ProcessEnv, Vars, WithSecrets};
pub use model::{AcmeChallenge, AcmeConfig, CertSource};
pub use model::{
    AdminConfig, CacheHint, ClientAuth, ComponentSource, Config, DirGrant, FailureMode, Grants,
    HealthCheck, IpNet, Isolation, LogFormat, OriginPolicy, PluginName, PluginSpec, RestartPolicy,
    RestartWhen, RoutePath, RouteSpec, Secret, SecretsConfig, ServerConfig, TelemetryConfig,
    TlsConfig, Transport, UpstreamName, UpstreamSpec,
};
pub use raw::{RawOverlay, RawPlugin, RawUpstream};

use crate::secrets::redact;

/// The top-level tables the environment may set (`SWITCHYARD_SERVER__…`).
/// Other `SWITCHYARD_*` variables (tokens, `SWITCHYARD_BIN`) are left alone.
const ENV_TABLES: [&str; 4] = ["server__", "upstreams__", "admin__", "telemetry__"];

/// The route served when the file has none (every upstream).
const DEFAULT_ROUTE: &str = "/mcp";

/// Default upstream timeout: long enough for slow tools, short enough that a
/// wedged upstream does not hold a client forever.
const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);

/// A configuration that cannot be used, with where and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or parsed, or a key is unknown or mistyped.
    #[error("{0}")]
    Parse(String),
    /// A value parsed but is not acceptable.
    #[error("{origin}: `{key}` = {value}: {reason}")]
    Invalid {
        /// The file (or "environment") the value came from.
        origin: String,
        key: String,
        value: String,
        reason: String,
    },
}

/// Loads and validates `path` (or the defaults alone when `None`), with the
/// process environment.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    if let Some(p) = path
        && !p.is_file()
    {
        return Err(ConfigError::Parse(format!(
            "{}: no such configuration file",
            p.display()
        )));
    }
    let mut figment = Figment::from(Serialized::defaults(raw::RawConfig::default()));
    if let Some(p) = path {
        figment = figment.merge(Toml::file_exact(p));
    }
    with_environment(figment, path)
}

/// Validates `text` as if it were the content of the file `path` (the
/// environment and the state file included, as [`load`] would): what a
/// change of that file would give, before it is written.
pub fn load_text(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let figment =
        Figment::from(Serialized::defaults(raw::RawConfig::default())).merge(Toml::string(text));
    with_environment(figment, Some(path))
}

fn with_environment(figment: Figment, path: Option<&Path>) -> Result<Config, ConfigError> {
    validate_figment(&environment(figment), path, &ProcessEnv)
}

/// `figment` with the `SWITCHYARD_*` environment variables over it.
fn environment(figment: Figment) -> Figment {
    figment.merge(
        Env::prefixed("SWITCHYARD_")
            .filter(|k| {
                let k = k.as_str().to_ascii_lowercase();
                ENV_TABLES.iter().any(|t| k.starts_with(t))
            })
            .split("__"),
    )
}

/// Validates a TOML document as if it were the file `origin`, with `vars`
/// for interpolation and no environment layer (for tests and tools).
pub fn from_toml_str(toml: &str, origin: &Path, vars: &dyn Vars) -> Result<Config, ConfigError> {
    let figment =
        Figment::from(Serialized::defaults(raw::RawConfig::default())).merge(Toml::string(toml));
    validate_figment(&figment, Some(origin), vars)
}

/// The configuration as written, before validation: the file, the
/// environment and the state file over them (what [`load`] validates).
/// For showing it (the console redacts its secrets first).
pub fn load_raw(path: Option<&Path>) -> Result<raw::RawConfig, ConfigError> {
    let mut figment = Figment::from(Serialized::defaults(raw::RawConfig::default()));
    if let Some(p) = path {
        figment = figment.merge(Toml::file_exact(p));
    }
    raw_of(&environment(figment), path)
}

fn raw_of(figment: &Figment, path: Option<&Path>) -> Result<raw::RawConfig, ConfigError> {
    let mut raw: raw::RawConfig = figment.extract().map_err(|e| parse_error(e, path))?;
    if raw.admin.token.is_some()
        && raw.admin.state_file.is_none()
        && let Some(p) = path
    {
        let stem = p
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("switchyard");
        raw.admin.state_file = Some(format!("{stem}.admin.toml"));
    }
    if let Some(f) = raw.admin.state_file.clone() {
        let base = path.and_then(Path::parent).unwrap_or(Path::new(""));
        apply_overlay(&mut raw, &base.join(f))?;
    }
    Ok(raw)
}

fn validate_figment(
    figment: &Figment,
    path: Option<&Path>,
    vars: &dyn Vars,
) -> Result<Config, ConfigError> {
    let raw = raw_of(figment, path)?;
    let origin_of = |key: &str| -> String {
        match figment.find_metadata(key) {
            Some(md) => match &md.source {
                Some(figment::Source::File(p)) => p.display().to_string(),
                Some(figment::Source::Custom(s)) => s.clone(),
                _ if md.name.contains("environment") => "environment".to_owned(),
                _ => path
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| md.name.to_string()),
            },
            None => path
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "defaults".to_owned()),
        }
    };
    let invalid = |key: String, value: &dyn std::fmt::Debug, reason: String| ConfigError::Invalid {
        origin: origin_of(&key),
        key,
        value: redact(&format!("{value:?}")).into_owned(),
        reason: redact(&reason).into_owned(),
    };
    let base_dir = path
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let secrets = secrets_of(raw.secrets.as_ref(), path, &base_dir);
    let vars = WithSecrets::new(vars, &secrets);
    if secrets.configured {
        // `[secrets]` written: a missing or wrong key is an error at start,
        // not at the first reference.
        vars.open()
            .map_err(|e| invalid("secrets".into(), &secrets.store, e))?;
    }
    validate(raw, &base_dir, &vars, &invalid).map(|mut c| {
        c.source = path.map(Path::to_path_buf);
        c.secrets = secrets;
        c
    })
}

/// `[secrets]` of a file at `path` (relative paths against `base_dir`).
fn secrets_of(
    raw: Option<&raw::RawSecrets>,
    path: Option<&Path>,
    base_dir: &Path,
) -> SecretsConfig {
    let beside = |f: &str| {
        let f = PathBuf::from(f);
        if f.is_relative() { base_dir.join(f) } else { f }
    };
    let stem = path
        .and_then(Path::file_stem)
        .and_then(|s| s.to_str())
        .unwrap_or("switchyard");
    SecretsConfig {
        store: raw
            .and_then(|s| s.store.as_deref())
            .map(beside)
            .unwrap_or_else(|| base_dir.join(format!("{stem}.secrets"))),
        key_file: raw.and_then(|s| s.key_file.as_deref()).map(beside),
        configured: raw.is_some(),
    }
}

/// Where the secrets of the config file `path` are kept (for `switchyard
/// secret`): its `[secrets]`, read without validating the rest.
pub fn secrets_settings(path: &Path) -> Result<SecretsConfig, ConfigError> {
    let raw = load_raw(Some(path))?;
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok(secrets_of(raw.secrets.as_ref(), Some(path), &base_dir))
}

/// Opens the secret store of `settings` with the key it names (or
/// `$SWITCHYARD_SECRET_KEY`).
pub fn open_secrets(settings: &SecretsConfig) -> Result<crate::secrets::Store, String> {
    WithSecrets::new(&ProcessEnv, settings).open_owned()
}

/// Applies what the admin API persisted (if anything) over the file: its
/// upstream and plugin tables replace the file's whole, its `removed` names
/// go, and its chains replace the chains of the file's routes of the same
/// path (a chain whose route the file no longer has is ignored).
fn apply_overlay(raw: &mut raw::RawConfig, file: &Path) -> Result<(), ConfigError> {
    let overlay = read_overlay(file)?;
    for name in &overlay.removed {
        raw.upstreams.remove(name);
    }
    raw.upstreams.extend(overlay.upstreams);
    raw.plugins.extend(overlay.plugins);
    // Without routes the file has the default one, `/mcp` over every
    // upstream: a chain swapped on it makes it explicit.
    if raw.routes.is_empty() && overlay.chains.contains_key(DEFAULT_ROUTE) {
        raw.routes.push(raw::RawRoute {
            path: DEFAULT_ROUTE.to_owned(),
            upstreams: None,
            plugins: Vec::new(),
        });
    }
    for route in &mut raw.routes {
        if let Some(chain) = overlay.chains.get(&route.path) {
            route.plugins.clone_from(chain);
        }
    }
    Ok(())
}

/// Reads the admin API's state file (empty when absent).
pub fn read_overlay(file: &Path) -> Result<RawOverlay, ConfigError> {
    match std::fs::read_to_string(file) {
        Ok(t) => Figment::from(Toml::string(&t))
            .extract()
            .map_err(|e| parse_error(e, Some(file))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RawOverlay::default()),
        Err(e) => Err(ConfigError::Parse(format!("{}: {e}", file.display()))),
    }
}

type InvalidFn<'a> = dyn Fn(String, &dyn std::fmt::Debug, String) -> ConfigError + 'a;

fn validate(
    raw: raw::RawConfig,
    base_dir: &Path,
    vars: &dyn Vars,
    invalid: &InvalidFn<'_>,
) -> Result<Config, ConfigError> {
    let server = validate_server(&raw.server, base_dir, vars, invalid)?;

    let mut plugins = Vec::with_capacity(raw.plugins.len());
    for (name, p) in &raw.plugins {
        let key = format!("plugins.{name}");
        let pname = PluginName::parse(name).map_err(|r| invalid(key.clone(), name, r))?;
        plugins.push(validate_plugin(pname, p, &key, base_dir, vars, invalid)?);
    }

    let mut upstreams = Vec::with_capacity(raw.upstreams.len());
    for (name, up) in &raw.upstreams {
        let key = format!("upstreams.{name}");
        let uname = UpstreamName::parse(name).map_err(|r| invalid(key.clone(), name, r))?;
        upstreams.push(validate_upstream(uname, up, &key, base_dir, vars, invalid)?);
    }

    let all: Vec<UpstreamName> = upstreams.iter().map(|u| u.name.clone()).collect();
    let mut routes = Vec::new();
    let mut seen = HashSet::new();
    for (i, r) in raw.routes.iter().enumerate() {
        let key = format!("routes[{i}]");
        let path =
            RoutePath::parse(&r.path).map_err(|e| invalid(format!("{key}.path"), &r.path, e))?;
        if !seen.insert(path.clone()) {
            return Err(invalid(
                format!("{key}.path"),
                &r.path,
                "another route already has this path".into(),
            ));
        }
        let every_upstream = r.upstreams.is_none();
        let names = match &r.upstreams {
            None => all.clone(),
            Some(list) => {
                let mut names = Vec::with_capacity(list.len());
                for n in list {
                    let un = UpstreamName::parse(n)
                        .ok()
                        .filter(|u| all.contains(u))
                        .ok_or_else(|| {
                            invalid(
                                format!("{key}.upstreams"),
                                n,
                                "no upstream has this name".into(),
                            )
                        })?;
                    if names.contains(&un) {
                        return Err(invalid(
                            format!("{key}.upstreams"),
                            n,
                            "listed twice".into(),
                        ));
                    }
                    names.push(un);
                }
                names
            }
        };
        if names.is_empty() {
            return Err(invalid(
                format!("{key}.upstreams"),
                &r.upstreams,
                "a route needs at least one upstream".into(),
            ));
        }
        let mut chain = Vec::with_capacity(r.plugins.len());
        for p in &r.plugins {
            let pn = PluginName::parse(p)
                .ok()
                .filter(|n| plugins.iter().any(|s| &s.name == n))
                .ok_or_else(|| {
                    invalid(
                        format!("{key}.plugins"),
                        p,
                        "no plugin instance has this name (see [plugins.NAME])".into(),
                    )
                })?;
            if chain.contains(&pn) {
                return Err(invalid(format!("{key}.plugins"), p, "listed twice".into()));
            }
            chain.push(pn);
        }
        routes.push(RouteSpec {
            path,
            every_upstream,
            upstreams: names,
            plugins: chain,
        });
    }
    if routes.is_empty() {
        routes.push(RouteSpec {
            path: RoutePath::parse(DEFAULT_ROUTE).expect("the default route path is valid"),
            every_upstream: true,
            upstreams: all,
            plugins: Vec::new(),
        });
    }
    Ok(Config {
        server,
        upstreams,
        routes,
        plugins,
        admin: validate_admin(&raw.admin, base_dir, vars, invalid)?,
        telemetry: validate_telemetry(&raw.telemetry, invalid)?,
        secrets: SecretsConfig::default(),
        source: None,
    })
}

fn validate_admin(
    a: &raw::RawAdmin,
    base_dir: &Path,
    vars: &dyn Vars,
    invalid: &InvalidFn<'_>,
) -> Result<Option<AdminConfig>, ConfigError> {
    let token = match &a.token {
        Some(t) => interp::interpolate(t, vars)
            .map_err(|e| invalid("admin.token".into(), &"(hidden)", e.to_string()))?,
        None => String::new(),
    };
    if token.is_empty() {
        return Ok(None);
    }
    if token.len() < 16 {
        return Err(invalid(
            "admin.token".into(),
            &"(hidden)",
            "must be at least 16 characters".into(),
        ));
    }
    let listen_text = a.listen.as_deref().unwrap_or("127.0.0.1:8081");
    let listen = listen_text.parse().map_err(|_| {
        invalid(
            "admin.listen".into(),
            &listen_text,
            "expected an address and port such as 127.0.0.1:8081".into(),
        )
    })?;
    let allow = match &a.allow {
        None => vec![
            IpNet::parse("127.0.0.0/8").expect("valid"),
            IpNet::parse("::1/128").expect("valid"),
        ],
        Some(list) => list
            .iter()
            .map(|n| IpNet::parse(n).map_err(|e| invalid("admin.allow".into(), n, e)))
            .collect::<Result<_, _>>()?,
    };
    let state_file = match &a.state_file {
        Some(f) => {
            let f = PathBuf::from(f);
            Some(if f.is_relative() { base_dir.join(f) } else { f })
        }
        None => None,
    };
    let viewer_token = match &a.viewer_token {
        Some(t) => interp::interpolate(t, vars)
            .map_err(|e| invalid("admin.viewer_token".into(), &"(hidden)", e.to_string()))?,
        None => String::new(),
    };
    let viewer_token = match viewer_token {
        t if t.is_empty() => None,
        t if t.len() < 16 => {
            return Err(invalid(
                "admin.viewer_token".into(),
                &"(hidden)",
                "must be at least 16 characters".into(),
            ));
        }
        t if t == token => {
            return Err(invalid(
                "admin.viewer_token".into(),
                &"(hidden)",
                "must differ from admin.token".into(),
            ));
        }
        t => Some(t),
    };
    Ok(Some(AdminConfig {
        listen,
        token,
        viewer_token,
        allow,
        state_file,
        tls: validate_tls(a.tls.as_ref(), "admin.tls", base_dir, invalid)?,
    }))
}

fn validate_telemetry(
    t: &raw::RawTelemetry,
    invalid: &InvalidFn<'_>,
) -> Result<TelemetryConfig, ConfigError> {
    let mut out = TelemetryConfig::default();
    if let Some(f) = &t.log_format {
        out.log_format = match f.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            _ => {
                return Err(invalid(
                    "telemetry.log_format".into(),
                    f,
                    "expected `text` or `json`".into(),
                ));
            }
        };
    }
    if let Some(e) = &t.otlp_endpoint {
        out.otlp_endpoint = Some(
            reqwest::Url::parse(e)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
                .ok_or_else(|| {
                    invalid(
                        "telemetry.otlp_endpoint".into(),
                        e,
                        "expected an http:// or https:// URL such as http://127.0.0.1:4318".into(),
                    )
                })?,
        );
    }
    if let Some(n) = &t.service_name {
        out.service_name = n.clone();
    }
    if let Some(m) = t.metrics {
        out.metrics = m;
    }
    Ok(out)
}

/// Defaults of a plugin instance: a hook that takes longer than this is
/// stuck, not slow (plugin hooks run in microseconds).
const DEFAULT_PLUGIN_TIMEOUT_MS: u64 = 100;
/// Enough for Rust plugins with room to spare; interpreted ones need more.
const DEFAULT_PLUGIN_MEMORY_MB: u64 = 64;
/// The largest memory cap the instance pool is sized for.
pub const MAX_PLUGIN_MEMORY_MB: u64 = 512;

fn validate_plugin(
    name: PluginName,
    p: &raw::RawPlugin,
    key: &str,
    base_dir: &Path,
    vars: &dyn Vars,
    invalid: &InvalidFn<'_>,
) -> Result<PluginSpec, ConfigError> {
    let component = match p.component.strip_prefix("builtin:") {
        Some(b) if !b.is_empty() => ComponentSource::Builtin(b.to_owned()),
        Some(_) => {
            return Err(invalid(
                format!("{key}.component"),
                &p.component,
                "`builtin:` needs a name, e.g. `builtin:auth`".into(),
            ));
        }
        None => {
            let raw_path = interp::interpolate(&p.component, vars)
                .map_err(|r| invalid(format!("{key}.component"), &p.component, r.to_string()))?;
            if raw_path.is_empty() {
                return Err(invalid(
                    format!("{key}.component"),
                    &p.component,
                    "expected a path to a .wasm component or `builtin:NAME`".into(),
                ));
            }
            ComponentSource::File(base_dir.join(raw_path))
        }
    };
    let config = match &p.config {
        None => serde_json::json!({}),
        Some(v @ serde_json::Value::Object(_)) => v.clone(),
        Some(v) => {
            return Err(invalid(
                format!("{key}.config"),
                v,
                "expected a table".into(),
            ));
        }
    };
    let failure = match p.failure.as_deref() {
        None | Some("closed") => FailureMode::Closed,
        Some("open") => FailureMode::Open,
        Some(other) => {
            return Err(invalid(
                format!("{key}.failure"),
                &other,
                "expected `closed` or `open`".into(),
            ));
        }
    };
    let isolation = match p.isolation.as_deref() {
        None | Some("pooled") => Isolation::Pooled,
        Some("fresh") => Isolation::Fresh,
        Some(other) => {
            return Err(invalid(
                format!("{key}.isolation"),
                &other,
                "expected `pooled` or `fresh`".into(),
            ));
        }
    };
    let timeout_ms = p.timeout_ms.unwrap_or(DEFAULT_PLUGIN_TIMEOUT_MS);
    if !(1..=60_000).contains(&timeout_ms) {
        return Err(invalid(
            format!("{key}.timeout_ms"),
            &timeout_ms,
            "expected 1 to 60000".into(),
        ));
    }
    let memory_mb = p.memory_mb.unwrap_or(DEFAULT_PLUGIN_MEMORY_MB);
    if !(1..=MAX_PLUGIN_MEMORY_MB).contains(&memory_mb) {
        return Err(invalid(
            format!("{key}.memory_mb"),
            &memory_mb,
            format!("expected 1 to {MAX_PLUGIN_MEMORY_MB}"),
        ));
    }
    let mut grants = Grants::default();
    for (i, d) in p.grants.dirs.iter().enumerate() {
        let dkey = format!("{key}.grants.dirs[{i}]");
        let host_raw = interp::interpolate(&d.host, vars)
            .map_err(|r| invalid(format!("{dkey}.host"), &d.host, r.to_string()))?;
        let host = base_dir.join(&host_raw);
        if !host.is_dir() {
            return Err(invalid(
                format!("{dkey}.host"),
                &d.host,
                format!("`{}` is not a directory", host.display()),
            ));
        }
        let guest = match &d.guest {
            Some(g) if g.starts_with('/') => g.clone(),
            Some(g) => {
                return Err(invalid(
                    format!("{dkey}.guest"),
                    g,
                    "expected an absolute path such as /data".into(),
                ));
            }
            None => format!(
                "/{}",
                host.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ),
        };
        grants.dirs.push(DirGrant {
            host,
            guest,
            writable: d.writable,
        });
    }
    for var in &p.grants.env {
        let value = vars.get(var).ok_or_else(|| {
            invalid(
                format!("{key}.grants.env"),
                var,
                "this environment variable is not set".into(),
            )
        })?;
        grants.env.push((var.clone(), value));
    }
    for url in &p.grants.urls {
        let base = url.strip_suffix('*').unwrap_or(url);
        let ok = reqwest::Url::parse(base)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
        if !ok {
            return Err(invalid(
                format!("{key}.grants.urls"),
                url,
                "expected an http(s) URL, or a prefix of one ending in `*`".into(),
            ));
        }
        grants.urls.push(url.clone());
    }
    Ok(PluginSpec {
        name,
        component,
        config,
        failure,
        isolation,
        timeout: Duration::from_millis(timeout_ms),
        memory_bytes: (memory_mb * 1024 * 1024) as usize,
        grants,
    })
}

/// `[server.tls]` or `[admin.tls]` (`key` names the table).
fn validate_tls(
    t: Option<&raw::RawTls>,
    key: &str,
    base_dir: &Path,
    invalid: &InvalidFn<'_>,
) -> Result<Option<TlsConfig>, ConfigError> {
    let Some(t) = t else { return Ok(None) };
    let file = |field: &str, v: &Option<String>| -> Result<Option<PathBuf>, ConfigError> {
        let Some(v) = v else { return Ok(None) };
        let p = PathBuf::from(v);
        let p = if p.is_relative() { base_dir.join(p) } else { p };
        if !p.is_file() {
            return Err(invalid(
                format!("{key}.{field}"),
                v,
                format!("no such file ({})", p.display()),
            ));
        }
        Ok(Some(p))
    };
    let cert = file("cert", &t.cert)?;
    let tls_key = file("key", &t.key)?;
    let client_ca = file("client_ca", &t.client_ca)?;
    let client_auth = match (t.client_auth.as_deref(), &client_ca) {
        (None | Some("required"), _) => ClientAuth::Required,
        (Some("optional"), Some(_)) => ClientAuth::Optional,
        (Some("optional"), None) => {
            return Err(invalid(
                format!("{key}.client_auth"),
                &t.client_auth,
                "needs `client_ca` (the CA client certificates are verified against)".into(),
            ));
        }
        (Some(_), _) => {
            return Err(invalid(
                format!("{key}.client_auth"),
                &t.client_auth,
                "expected `required` or `optional`".into(),
            ));
        }
    };
    let source = match (cert, tls_key, &t.acme) {
        (None, None, Some(acme)) if key == "server.tls" => {
            CertSource::Acme(validate_acme(acme, base_dir, invalid)?)
        }
        (None, None, Some(_)) => {
            return Err(invalid(
                format!("{key}.acme"),
                &"(table)",
                "ACME serves the main listener ([server.tls.acme]); this one takes `cert` and `key` files".into(),
            ));
        }
        (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => {
            return Err(invalid(
                format!("{key}.acme"),
                &"(table)",
                "either `cert` and `key` files or `acme`, not both".into(),
            ));
        }
        (Some(cert), Some(tls_key), None) => CertSource::Files { cert, key: tls_key },
        (cert, _, None) => {
            return Err(invalid(
                format!("{key}.{}", if cert.is_none() { "cert" } else { "key" }),
                &"(missing)",
                "TLS needs both `cert` and `key` (PEM files), or `[server.tls.acme]`".into(),
            ));
        }
    };
    if let CertSource::Acme(a) = &source
        && a.challenge == AcmeChallenge::TlsAlpn01
        && client_ca.is_some()
        && client_auth == ClientAuth::Required
    {
        return Err(invalid(
            format!("{key}.client_auth"),
            &"required",
            "the CA's TLS-ALPN-01 check has no client certificate: use `client_auth = \"optional\"` or `acme.challenge = \"http-01\"`".into(),
        ));
    }
    Ok(Some(TlsConfig {
        source,
        client_ca,
        client_auth,
    }))
}

/// Let's Encrypt's production directory, the default `directory`.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// `[server.tls.acme]`.
fn validate_acme(
    a: &raw::RawAcme,
    base_dir: &Path,
    invalid: &InvalidFn<'_>,
) -> Result<AcmeConfig, ConfigError> {
    let key = |field: &str| format!("server.tls.acme.{field}");
    if a.domains.is_empty() {
        return Err(invalid(
            key("domains"),
            &a.domains,
            "needs at least one domain name".into(),
        ));
    }
    for d in &a.domains {
        let ok = !d.is_empty()
            && d.len() <= 253
            && d.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !ok {
            return Err(invalid(
                key("domains"),
                d,
                "not a DNS name (wildcards need DNS-01, which is not offered)".into(),
            ));
        }
    }
    let contact = a
        .contact
        .clone()
        .map(raw::OneOrMany::into_vec)
        .unwrap_or_default();
    if let Some(c) = contact.iter().find(|c| !c.starts_with("mailto:")) {
        return Err(invalid(
            key("contact"),
            c,
            "expected a `mailto:` address".into(),
        ));
    }
    let directory = a
        .directory
        .clone()
        .unwrap_or_else(|| LETS_ENCRYPT.to_owned());
    match reqwest::Url::parse(&directory) {
        Ok(u) if u.scheme() == "https" => {}
        _ => {
            return Err(invalid(
                key("directory"),
                &directory,
                "expected the https:// URL of an ACME directory".into(),
            ));
        }
    }
    let resolve = |v: &str| {
        let p = PathBuf::from(v);
        if p.is_relative() { base_dir.join(p) } else { p }
    };
    let directory_ca = match &a.directory_ca {
        None => None,
        Some(v) => {
            let p = resolve(v);
            if !p.is_file() {
                return Err(invalid(
                    key("directory_ca"),
                    v,
                    format!("no such file ({})", p.display()),
                ));
            }
            Some(p)
        }
    };
    let Some(cache) = &a.cache else {
        return Err(invalid(
            key("cache"),
            &"(missing)",
            "ACME needs a folder to keep its account and certificate in".into(),
        ));
    };
    let renew_before = match &a.renew_before {
        Some(d) => duration(d, &key("renew_before"), invalid)?,
        None => Duration::from_secs(30 * 24 * 3600),
    };
    let challenge = match a.challenge.as_deref() {
        None | Some("tls-alpn-01") => AcmeChallenge::TlsAlpn01,
        Some("http-01") => AcmeChallenge::Http01,
        Some(_) => {
            return Err(invalid(
                key("challenge"),
                &a.challenge,
                "expected `tls-alpn-01` or `http-01`".into(),
            ));
        }
    };
    let http_listen = match &a.http_listen {
        None => None,
        Some(l) => Some(
            l.parse::<SocketAddr>()
                .map_err(|e| invalid(key("http_listen"), l, format!("expected HOST:PORT ({e})")))?,
        ),
    };
    if challenge == AcmeChallenge::Http01 && http_listen.is_none() {
        return Err(invalid(
            key("http_listen"),
            &"(missing)",
            "HTTP-01 is answered on a plain-HTTP listener: set `http_listen` (e.g. \"0.0.0.0:80\")"
                .into(),
        ));
    }
    Ok(AcmeConfig {
        domains: a.domains.clone(),
        contact,
        directory,
        directory_ca,
        cache: resolve(cache),
        renew_before,
        challenge,
        http_listen,
    })
}

fn validate_server(
    s: &raw::RawServer,
    base_dir: &Path,
    vars: &dyn Vars,
    invalid: &InvalidFn<'_>,
) -> Result<ServerConfig, ConfigError> {
    let listen = s.listen.parse().map_err(|_| {
        invalid(
            "server.listen".into(),
            &s.listen,
            "expected an address and port such as 127.0.0.1:8080".into(),
        )
    })?;
    let allowed_origins = if s.allowed_origins.iter().any(|o| o == "*") {
        OriginPolicy::Any
    } else {
        for o in &s.allowed_origins {
            let ok = reqwest::Url::parse(o)
                .map(|u| u.has_host() && u.path() == "/" && !o.ends_with('/'))
                .unwrap_or(false);
            if !ok {
                return Err(invalid(
                    "server.allowed_origins".into(),
                    o,
                    "expected an origin such as https://app.example.com (scheme, host, optional port; no path)".into(),
                ));
            }
        }
        OriginPolicy::List(
            s.allowed_origins
                .iter()
                .map(|o| o.to_ascii_lowercase())
                .collect(),
        )
    };
    if s.max_body_bytes == 0 {
        return Err(invalid(
            "server.max_body_bytes".into(),
            &s.max_body_bytes,
            "must be at least 1".into(),
        ));
    }
    let tls = validate_tls(s.tls.as_ref(), "server.tls", base_dir, invalid)?;
    // The names an ACME certificate is for are the gateway's own: a
    // loopback listener's Host check lets them through.
    let acme_names = match &tls {
        Some(TlsConfig {
            source: CertSource::Acme(a),
            ..
        }) => a.domains.clone(),
        _ => Vec::new(),
    };
    Ok(ServerConfig {
        listen,
        allowed_origins,
        allowed_hosts: s
            .allowed_hosts
            .iter()
            .chain(&acme_names)
            .map(|h| h.to_ascii_lowercase())
            .collect(),
        max_body_bytes: usize::try_from(s.max_body_bytes).unwrap_or(usize::MAX),
        shutdown_grace: duration(&s.shutdown_grace, "server.shutdown_grace", invalid)?,
        session_idle_timeout: duration(
            &s.session_idle_timeout,
            "server.session_idle_timeout",
            invalid,
        )?,
        state_key: match &s.state_key {
            None => None,
            Some(k) => {
                let k = interp::interpolate(k, vars)
                    .map_err(|e| invalid("server.state_key".into(), &"(hidden)", e.to_string()))?;
                if k.len() < 32 {
                    return Err(invalid(
                        "server.state_key".into(),
                        &"(hidden)",
                        "must be at least 32 characters".into(),
                    ));
                }
                Some(Secret(k))
            }
        },
        idle_spin: match duration_or_zero(&s.idle_spin, "server.idle_spin", invalid)? {
            d if d <= MAX_IDLE_SPIN => d,
            _ => {
                return Err(invalid(
                    "server.idle_spin".into(),
                    &s.idle_spin,
                    "must be at most 10ms (\"0s\" turns spinning off)".into(),
                ));
            }
        },
        websocket_ping: match duration(&s.websocket_ping, "server.websocket_ping", invalid)? {
            d if d >= Duration::from_secs(1) => d,
            _ => {
                return Err(invalid(
                    "server.websocket_ping".into(),
                    &s.websocket_ping,
                    "must be at least 1s".into(),
                ));
            }
        },
        tls,
    })
}

/// Spinning longer than this only burns a core: a wake-up costs tens of
/// microseconds, not milliseconds.
const MAX_IDLE_SPIN: Duration = Duration::from_millis(10);

fn validate_upstream(
    name: UpstreamName,
    up: &raw::RawUpstream,
    key: &str,
    base_dir: &Path,
    vars: &dyn Vars,
    invalid: &InvalidFn<'_>,
) -> Result<UpstreamSpec, ConfigError> {
    let interp = |field: &str, v: &str| {
        interp::interpolate(v, vars)
            .map_err(|e| invalid(format!("{key}.{field}"), &v, e.to_string()))
    };
    let transport = match (&up.command, &up.url) {
        (Some(command), None) => {
            if let Some(t) = &up.transport {
                return Err(invalid(
                    format!("{key}.transport"),
                    t,
                    "`transport` applies to remote (`url`) upstreams only".into(),
                ));
            }
            if !up.headers.is_empty() {
                return Err(invalid(
                    format!("{key}.headers"),
                    &up.headers,
                    "`headers` apply to remote (`url`) upstreams only".into(),
                ));
            }
            let command = interp("command", command)?;
            if command.trim().is_empty() {
                return Err(invalid(
                    format!("{key}.command"),
                    &command,
                    "must not be empty".into(),
                ));
            }
            let args = up
                .args
                .iter()
                .map(|a| interp("args", a))
                .collect::<Result<Vec<_>, _>>()?;
            let mut env = Vec::with_capacity(up.env.len());
            for (k, v) in &up.env {
                env.push((k.clone(), interp(&format!("env.{k}"), v)?));
            }
            let cwd = match &up.cwd {
                Some(c) => {
                    let c = PathBuf::from(interp("cwd", c)?);
                    let c = if c.is_relative() { base_dir.join(c) } else { c };
                    if !c.is_dir() {
                        return Err(invalid(
                            format!("{key}.cwd"),
                            &c,
                            "no such directory".into(),
                        ));
                    }
                    Some(c)
                }
                None => None,
            };
            Transport::Stdio {
                command,
                args,
                env,
                cwd,
            }
        }
        (None, Some(url)) => {
            for (field, set) in [
                ("args", !up.args.is_empty()),
                ("env", !up.env.is_empty()),
                ("cwd", up.cwd.is_some()),
            ] {
                if set {
                    return Err(invalid(
                        format!("{key}.{field}"),
                        &field,
                        format!("`{field}` applies to stdio (`command`) upstreams only"),
                    ));
                }
            }
            let text = interp("url", url)?;
            let url = reqwest::Url::parse(&text)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https" | "ws" | "wss") && u.has_host())
                .ok_or_else(|| {
                    invalid(
                        format!("{key}.url"),
                        &text,
                        "expected an http://, https://, ws:// or wss:// URL".into(),
                    )
                })?;
            let socket_scheme = matches!(url.scheme(), "ws" | "wss");
            let websocket = match up.transport.as_deref() {
                None => socket_scheme,
                Some("websocket") if socket_scheme => true,
                Some("http") if !socket_scheme => false,
                Some(t @ ("websocket" | "http")) => {
                    return Err(invalid(
                        format!("{key}.transport"),
                        &t,
                        format!(
                            "does not match the URL's scheme `{}` (websocket takes ws:// or wss://, http takes http:// or https://)",
                            url.scheme()
                        ),
                    ));
                }
                Some(t) => {
                    return Err(invalid(
                        format!("{key}.transport"),
                        &t,
                        "expected `http` or `websocket`".into(),
                    ));
                }
            };
            let mut headers = Vec::with_capacity(up.headers.len());
            for (k, v) in &up.headers {
                let value = interp(&format!("headers.{k}"), v)?;
                if reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_err() {
                    return Err(invalid(
                        format!("{key}.headers"),
                        k,
                        "not a valid HTTP header name".into(),
                    ));
                }
                if reqwest::header::HeaderValue::from_str(&value).is_err() {
                    return Err(invalid(
                        format!("{key}.headers.{k}"),
                        v,
                        "not a valid HTTP header value".into(),
                    ));
                }
                headers.push((k.clone(), value));
            }
            if websocket {
                Transport::WebSocket { url, headers }
            } else {
                Transport::Http { url, headers }
            }
        }
        (Some(_), Some(_)) => {
            return Err(invalid(
                key.to_owned(),
                &name.as_str(),
                "set either `command` (stdio) or `url` (remote), not both".into(),
            ));
        }
        (None, None) => {
            return Err(invalid(
                key.to_owned(),
                &name.as_str(),
                "set `command` (a stdio server) or `url` (a remote server)".into(),
            ));
        }
    };
    let timeout = match &up.timeout {
        Some(t) => duration(t, &format!("{key}.timeout"), invalid)?,
        None => DEFAULT_UPSTREAM_TIMEOUT,
    };
    let mut restart = RestartPolicy::default();
    if let Some(r) = &up.restart {
        if let Some(p) = &r.policy {
            restart.when = match p.as_str() {
                "always" => RestartWhen::Always,
                "on-failure" => RestartWhen::OnFailure,
                "never" => RestartWhen::Never,
                _ => {
                    return Err(invalid(
                        format!("{key}.restart.policy"),
                        p,
                        "expected `always`, `on-failure` or `never`".into(),
                    ));
                }
            };
        }
        if let Some(m) = r.max {
            restart.max = m;
        }
        if let Some(w) = r.window_seconds {
            if w == 0 {
                return Err(invalid(
                    format!("{key}.restart.window_seconds"),
                    &w,
                    "must be at least 1".into(),
                ));
            }
            restart.window = Duration::from_secs(w);
        }
    }
    let health = match &up.health {
        None => None,
        Some(h) => {
            let interval = h.interval_seconds.unwrap_or(30);
            let probe = h.timeout_seconds.unwrap_or(5);
            for (field, v) in [("interval_seconds", interval), ("timeout_seconds", probe)] {
                if v == 0 {
                    return Err(invalid(
                        format!("{key}.health.{field}"),
                        &v,
                        "must be at least 1".into(),
                    ));
                }
            }
            Some(HealthCheck {
                interval: Duration::from_secs(interval),
                timeout: Duration::from_secs(probe),
            })
        }
    };
    let idle_timeout = match &up.idle_timeout {
        Some(t) => Some(duration(t, &format!("{key}.idle_timeout"), invalid)?),
        None => None,
    };
    let stdio = matches!(transport, Transport::Stdio { .. });
    for (field, set) in [
        ("lazy", up.lazy.is_some()),
        ("idle_timeout", idle_timeout.is_some()),
    ] {
        if set && !stdio {
            return Err(invalid(
                format!("{key}.{field}"),
                &field,
                format!("`{field}` applies to stdio (`command`) upstreams only"),
            ));
        }
    }
    let cache_hint = match &up.cache_hint {
        None => None,
        Some(h) => Some(CacheHint {
            ttl_ms: h.ttl_ms,
            public: match h.scope.as_deref() {
                None | Some("private") => false,
                Some("public") => true,
                Some(other) => {
                    return Err(invalid(
                        format!("{key}.cache_hint.scope"),
                        &other,
                        "expected `private` or `public`".into(),
                    ));
                }
            },
        }),
    };
    Ok(UpstreamSpec {
        name,
        transport,
        timeout,
        cache_hint,
        restart,
        health,
        lazy: up.lazy.unwrap_or(false),
        idle_timeout,
    })
}

/// Validates one upstream table given outside a file (the admin API), as if
/// it were `[upstreams.NAME]` of `config`.
pub fn upstream_from_raw(
    name: &str,
    up: &raw::RawUpstream,
    config: &Config,
) -> Result<UpstreamSpec, ConfigError> {
    let key = format!("upstreams.{name}");
    let invalid = from_admin_api;
    let uname = UpstreamName::parse(name).map_err(|r| invalid(key.clone(), &name, r))?;
    let vars = WithSecrets::new(&ProcessEnv, &config.secrets);
    validate_upstream(uname, up, &key, &config_dir(config), &vars, &invalid)
}

/// Validates one plugin table given outside a file (the admin API), as if
/// it were `[plugins.NAME]` of `config`.
pub fn plugin_from_raw(
    name: &str,
    p: &raw::RawPlugin,
    config: &Config,
) -> Result<PluginSpec, ConfigError> {
    let key = format!("plugins.{name}");
    let invalid = from_admin_api;
    let pname = PluginName::parse(name).map_err(|r| invalid(key.clone(), &name, r))?;
    let vars = WithSecrets::new(&ProcessEnv, &config.secrets);
    validate_plugin(pname, p, &key, &config_dir(config), &vars, &invalid)
}

/// A value given through the admin API that is not acceptable.
fn from_admin_api(key: String, value: &dyn std::fmt::Debug, reason: String) -> ConfigError {
    ConfigError::Invalid {
        origin: "admin API".into(),
        key,
        value: redact(&format!("{value:?}")).into_owned(),
        reason: redact(&reason).into_owned(),
    }
}

/// The folder relative paths of `config` are resolved against.
fn config_dir(config: &Config) -> PathBuf {
    config
        .source
        .as_deref()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn duration(
    d: &raw::Duration,
    key: &str,
    invalid: &InvalidFn<'_>,
) -> Result<Duration, ConfigError> {
    match duration_or_zero(d, key, invalid)? {
        parsed if !parsed.is_zero() => Ok(parsed),
        _ => Err(invalid(
            key.to_owned(),
            d,
            "must be longer than zero".into(),
        )),
    }
}

/// A duration where zero means "off".
fn duration_or_zero(
    d: &raw::Duration,
    key: &str,
    invalid: &InvalidFn<'_>,
) -> Result<Duration, ConfigError> {
    match d {
        raw::Duration::Seconds(s) => Ok(Duration::from_secs(*s)),
        raw::Duration::Text(t) => humantime::parse_duration(t).map_err(|e| {
            invalid(
                key.to_owned(),
                d,
                format!("expected a duration such as \"30s\" or \"500ms\" ({e})"),
            )
        }),
    }
}

fn parse_error(err: figment::Error, path: Option<&Path>) -> ConfigError {
    let lines: Vec<String> = err
        .into_iter()
        .map(|e| {
            let origin = match e.metadata.as_ref().and_then(|m| m.source.as_ref()) {
                Some(figment::Source::File(p)) => p.display().to_string(),
                Some(figment::Source::Custom(s)) => s.clone(),
                _ => match &e.metadata {
                    Some(m) if m.name.contains("environment") => "environment".to_owned(),
                    _ => path
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| "configuration".to_owned()),
                },
            };
            let key = e.path.join(".");
            if key.is_empty() {
                format!("{origin}: {}", e.kind)
            } else {
                format!("{origin}: `{key}`: {}", e.kind)
            }
        })
        .collect();
    ConfigError::Parse(lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn load_str(toml: &str) -> Result<Config, ConfigError> {
        let vars = HashMap::from([("TOKEN".to_owned(), "t0k".to_owned())]);
        from_toml_str(toml, Path::new("/etc/switchyard/test.toml"), &vars)
    }

    #[test]
    fn defaults_give_one_route_over_all_upstreams() {
        let c = load_str(
            r#"
            [upstreams.b]
            command = "srv"
            [upstreams.a]
            url = "http://127.0.0.1:9/mcp"
            headers = { Authorization = "Bearer ${TOKEN}" }
            "#,
        )
        .unwrap();
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.routes.len(), 1);
        assert_eq!(c.routes[0].path.as_str(), "/mcp");
        let names: Vec<_> = c.routes[0].upstreams.iter().map(|u| u.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        let Transport::Http { headers, .. } = &c.upstreams[0].transport else {
            panic!("a is remote")
        };
        assert_eq!(headers[0].1, "Bearer t0k");
    }

    #[test]
    fn errors_name_file_key_and_value() {
        let cases = [
            (
                "[server]\nlisten = \"nowhere\"",
                "`server.listen` = \"nowhere\"",
            ),
            ("[server]\nlisen = \"x\"", "`server.lisen`"),
            (
                "[upstreams.a]\ncommand = \"x\"\nenv = { K = \"${MISSING}\" }",
                "MISSING",
            ),
            (
                "[upstreams.a]\ncommand = \"x\"\ntimeout = \"soon\"",
                "`upstreams.a.timeout` = \"soon\"",
            ),
            ("[upstreams.a__b]\ncommand = \"x\"", "`upstreams.a__b`"),
            (
                "[upstreams.a]\ncommand = \"x\"\nurl = \"http://h\"",
                "not both",
            ),
            (
                "[upstreams.a]\nurl = \"ftp://h\"",
                "`upstreams.a.url` = \"ftp://h\"",
            ),
            (
                "[upstreams.a]\ncommand = \"x\"\n[[routes]]\npath = \"/m\"\nupstreams = [\"zz\"]",
                "\"zz\"",
            ),
            (
                "[upstreams.a]\ncommand = \"x\"\n[[routes]]\npath = \"m\"",
                "`routes[0].path` = \"m\"",
            ),
            (
                "[server]\nidle_spin = \"1s\"",
                "`server.idle_spin` = \"1s\": must be at most 10ms",
            ),
            (
                "[server]\nidle_spin = \"briefly\"",
                "`server.idle_spin` = \"briefly\"",
            ),
        ];
        for (toml, needle) in cases {
            let err = load_str(toml).unwrap_err().to_string();
            assert!(err.contains("/etc/switchyard/test.toml"), "{err}");
            assert!(err.contains(needle), "{needle} not in: {err}");
        }
    }

    #[test]
    fn idle_spin_defaults_to_200us_and_zero_turns_it_off() {
        let spin = |toml: &str| load_str(toml).unwrap().server.idle_spin;
        assert_eq!(spin(""), Duration::from_micros(200));
        assert_eq!(spin("[server]\nidle_spin = \"0s\""), Duration::ZERO);
        assert_eq!(spin("[server]\nidle_spin = 0"), Duration::ZERO);
        assert_eq!(
            spin("[server]\nidle_spin = \"1ms\""),
            Duration::from_millis(1)
        );
    }

    #[test]
    fn unknown_keys_are_errors() {
        let err = load_str("[upstreams.a]\ncommand = \"x\"\ncomand = \"y\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("comand"), "{err}");
    }
}
