//! `builtin:auth`: who is asking, and what they may use. See README.md.
//!
//! 1. The credential: `Authorization: Bearer …` (or the configured header).
//!    None → 401 with `WWW-Authenticate: Bearer resource_metadata="…"`
//!    pointing at the protected-resource metadata the gateway serves for
//!    the route (RFC 9728; this plugin describes the document).
//! 2. A JWT (three dot-separated parts, when `jwt` is configured) is
//!    verified against the JWKS (HS256, RS256, ES256): signature, `exp`,
//!    `nbf`, `iss`, and `aud` (the route's resource URL unless configured);
//!    `sub` (or `principal_claim`) names the principal, `roles_claim` its
//!    roles; missing required `scopes` → 403 `insufficient_scope`.
//!    Anything else is an API key, compared in constant time with each
//!    configured salted hash.
//! 3. The principal and its roles (attribute `roles`, comma-separated) go on
//!    to later plugins; RBAC hides what the roles do not allow from lists and
//!    answers its use exactly as an unknown tool, prompt or resource.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use switchyard_sdk::serde_json::{self, Value, json};
use switchyard_sdk::{
    Context, Continuation, Description, Hooks, Outcome, Params, Plugin, Rejection, RequestDecision,
    ResponseDecision, fetch, glob, log, metrics,
};

/// JSON-RPC codes of refusals (implementation-defined server errors).
const UNAUTHENTICATED: i32 = -32001;
const FORBIDDEN: i32 = -32003;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiKey {
    principal: String,
    /// `sha256:SALT_HEX:DIGEST_HEX`, as `switchyard hash-key` prints it.
    key_hash: String,
    #[serde(default)]
    roles: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Grants {
    #[serde(default)]
    tools: Vec<String>,
    #[serde(default)]
    prompts: Vec<String>,
    #[serde(default)]
    resources: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JwtConfig {
    /// The JWKS inline, or…
    jwks: Option<Value>,
    /// …a path inside the plugin's sandbox (grant its folder), or…
    jwks_file: Option<String>,
    /// …a URL the gateway fetches and caches (grant it in `grants.urls`).
    jwks_url: Option<String>,
    issuer: Option<String>,
    /// Defaults to the route's resource URL.
    audience: Option<String>,
    #[serde(default = "sub")]
    principal_claim: String,
    roles_claim: Option<String>,
    #[serde(default = "default_algorithms")]
    algorithms: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    #[serde(default = "thirty")]
    leeway_seconds: u64,
}

fn sub() -> String {
    "sub".into()
}

fn thirty() -> u64 {
    30
}

fn default_algorithms() -> Vec<String> {
    vec!["HS256".into(), "RS256".into(), "ES256".into()]
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    api_keys: Vec<ApiKey>,
    /// A header carrying the API key instead of `Authorization: Bearer`.
    api_key_header: Option<String>,
    jwt: Option<JwtConfig>,
    /// Role → what it may use (globs). Empty: no RBAC, everything allowed.
    #[serde(default)]
    roles: BTreeMap<String, Grants>,
    /// For the protected-resource metadata.
    #[serde(default)]
    authorization_servers: Vec<String>,
    /// Scopes a token must carry (all of them); also `scopes_supported`.
    #[serde(default)]
    scopes: Vec<String>,
    /// This route's URL as clients reach it; defaults to
    /// `{X-Forwarded-Proto or http}://{Host}{route}` (the gateway sets
    /// `X-Forwarded-Proto: https` on its TLS listeners).
    resource: Option<String>,
}

struct Key {
    principal: String,
    salt: Vec<u8>,
    digest: Vec<u8>,
    roles: Vec<String>,
}

pub struct Auth {
    config: Config,
    keys: Vec<Key>,
    /// The JWKS when it is inline or a file; fetched ones are in `fetched`.
    jwks: Option<Rc<JwkSet>>,
    algorithms: Vec<Algorithm>,
    /// The last fetched JWKS body and its parse, so an unchanged body (the
    /// gateway caches it) is not parsed again while this instance lives.
    fetched: RefCell<Option<(String, Rc<JwkSet>)>>,
}

/// Who a credential names.
#[derive(Debug, PartialEq)]
struct Identity {
    principal: String,
    roles: Vec<String>,
}

/// Why a request was refused.
#[derive(Debug, PartialEq)]
enum Refusal {
    /// No credential.
    Missing,
    /// A credential that does not check out (the reason is for the client).
    Invalid(String),
    /// A valid token without the required scopes.
    Scope,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `sha256:SALT:DIGEST` of `key` with `salt`: what `switchyard hash-key`
/// prints (it draws the salt at random).
pub fn hash_key(key: &str, salt: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(key.as_bytes());
    format!("sha256:{}:{}", hex(salt), hex(&h.finalize()))
}

fn parse_hash(s: &str) -> Option<(Vec<u8>, Vec<u8>)> {
    let rest = s.strip_prefix("sha256:")?;
    let (salt, digest) = rest.split_once(':')?;
    let (salt, digest) = (unhex(salt)?, unhex(digest)?);
    (digest.len() == 32 && !salt.is_empty()).then_some((salt, digest))
}

impl Auth {
    fn resource(&self, ctx: &Context) -> String {
        match &self.config.resource {
            Some(r) => r.clone(),
            None => format!(
                "{}://{}{}",
                match ctx.header("x-forwarded-proto") {
                    Some("https") => "https",
                    _ => "http",
                },
                ctx.header("host").unwrap_or("localhost"),
                ctx.route
            ),
        }
    }

    fn metadata_url(&self, ctx: &Context) -> String {
        let resource = self.resource(ctx);
        // scheme://host of the resource, then the well-known path + route.
        let origin_end = resource
            .find("://")
            .map(|i| i + 3)
            .and_then(|start| resource[start..].find('/').map(|p| start + p))
            .unwrap_or(resource.len());
        format!(
            "{}/.well-known/oauth-protected-resource{}",
            &resource[..origin_end],
            ctx.route
        )
    }

    fn refuse(&self, ctx: &Context, why: Refusal) -> Rejection {
        let meta = self.metadata_url(ctx);
        let (status, code, message, challenge) = match &why {
            Refusal::Missing => (
                401,
                UNAUTHENTICATED,
                "authentication required".to_owned(),
                format!("Bearer resource_metadata=\"{meta}\""),
            ),
            Refusal::Invalid(reason) => (
                401,
                UNAUTHENTICATED,
                format!("invalid credential: {reason}"),
                format!(
                    "Bearer resource_metadata=\"{meta}\", error=\"invalid_token\", error_description=\"{}\"",
                    reason.replace('"', "'")
                ),
            ),
            Refusal::Scope => (
                403,
                FORBIDDEN,
                format!(
                    "insufficient scope: requires {}",
                    self.config.scopes.join(" ")
                ),
                format!(
                    "Bearer resource_metadata=\"{meta}\", error=\"insufficient_scope\", scope=\"{}\"",
                    self.config.scopes.join(" ")
                ),
            ),
        };
        metrics::counter(
            "auth_refusals_total",
            1,
            &[("status", if status == 401 { "401" } else { "403" })],
        );
        Rejection::new(code, message)
            .status(status)
            .header("www-authenticate", challenge)
    }

    fn credential<'c>(&self, ctx: &'c Context) -> Option<&'c str> {
        if let Some(h) = &self.config.api_key_header
            && let Some(v) = ctx.header(h)
        {
            return Some(v.trim());
        }
        let auth = ctx.header("authorization")?;
        let (scheme, token) = auth.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    }

    fn api_key(&self, presented: &str) -> Option<Identity> {
        // Every key is checked (no early exit), each in constant time.
        let mut found = None;
        for k in &self.keys {
            let mut h = Sha256::new();
            h.update(&k.salt);
            h.update(presented.as_bytes());
            if bool::from(h.finalize().as_slice().ct_eq(&k.digest)) {
                found = Some(Identity {
                    principal: k.principal.clone(),
                    roles: k.roles.clone(),
                });
            }
        }
        found
    }

    /// The key set: configured, or fetched through the gateway.
    fn key_set(&self, cfg: &JwtConfig) -> Result<Rc<JwkSet>, Refusal> {
        if let Some(set) = &self.jwks {
            return Ok(Rc::clone(set));
        }
        let url = cfg.jwks_url.as_deref().unwrap_or_default();
        let unavailable = || Refusal::Invalid("the keys to check the token are unavailable".into());
        let body = fetch::get(url).map_err(|e| {
            log::warn(&format!("auth: no JWKS: {e}"));
            unavailable()
        })?;
        let mut cached = self.fetched.borrow_mut();
        if let Some((b, set)) = cached.as_ref()
            && *b == body
        {
            return Ok(Rc::clone(set));
        }
        let set: JwkSet = serde_json::from_str(&body).map_err(|e| {
            log::warn(&format!("auth: the JWKS at {url} is not valid: {e}"));
            unavailable()
        })?;
        let set = Rc::new(set);
        *cached = Some((body, Rc::clone(&set)));
        Ok(set)
    }

    fn jwt(&self, token: &str, ctx: &Context) -> Result<Identity, Refusal> {
        let Some(cfg) = &self.config.jwt else {
            return Err(Refusal::Invalid("not a known API key".into()));
        };
        let jwks = self.key_set(cfg)?;
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| Refusal::Invalid(format!("malformed token: {e}")))?;
        if !self.algorithms.contains(&header.alg) {
            return Err(Refusal::Invalid(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let jwk = match &header.kid {
            Some(kid) => jwks.find(kid),
            None if jwks.keys.len() == 1 => jwks.keys.first(),
            None => None,
        }
        .ok_or_else(|| Refusal::Invalid("no key in the JWKS matches the token".into()))?;
        let key = DecodingKey::from_jwk(jwk)
            .map_err(|e| Refusal::Invalid(format!("unusable key: {e}")))?;
        let mut v = Validation::new(header.alg);
        v.leeway = cfg.leeway_seconds;
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp"]);
        let audience = cfg.audience.clone().unwrap_or_else(|| self.resource(ctx));
        v.set_audience(&[audience]);
        if let Some(iss) = &cfg.issuer {
            v.set_issuer(&[iss]);
        }
        let data = jsonwebtoken::decode::<Value>(token, &key, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            Refusal::Invalid(match e.kind() {
                K::ExpiredSignature => "the token has expired".into(),
                K::ImmatureSignature => "the token is not valid yet".into(),
                K::InvalidAudience => "the token is not for this resource".into(),
                K::InvalidIssuer => "the token's issuer is not trusted".into(),
                K::InvalidSignature => "bad signature".into(),
                _ => format!("{e}"),
            })
        })?;
        let claims = data.claims;
        if !self.config.scopes.is_empty() {
            let granted: Vec<String> = match (&claims["scope"], &claims["scp"]) {
                (Value::String(s), _) => s.split_whitespace().map(str::to_owned).collect(),
                (_, Value::Array(a)) => a
                    .iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect(),
                _ => Vec::new(),
            };
            if !self.config.scopes.iter().all(|s| granted.contains(s)) {
                return Err(Refusal::Scope);
            }
        }
        let principal = claims[&cfg.principal_claim]
            .as_str()
            .ok_or_else(|| {
                Refusal::Invalid(format!("the token has no `{}` claim", cfg.principal_claim))
            })?
            .to_owned();
        let roles = match cfg.roles_claim.as_ref().map(|c| &claims[c]) {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect(),
            Some(Value::String(s)) => s
                .split([' ', ','])
                .filter(|r| !r.is_empty())
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        Ok(Identity { principal, roles })
    }

    fn authenticate(&self, ctx: &Context) -> Result<Identity, Refusal> {
        let token = self.credential(ctx).ok_or(Refusal::Missing)?;
        if token.is_empty() {
            return Err(Refusal::Missing);
        }
        let looks_like_jwt = token.split('.').count() == 3;
        if looks_like_jwt && self.config.jwt.is_some() {
            return self.jwt(token, ctx);
        }
        self.api_key(token)
            .ok_or_else(|| Refusal::Invalid("not a known API key".into()))
    }

    /// Whether the roles allow `name` of `kind` (no RBAC: everything).
    fn allows(&self, roles: &[&str], kind: &str, name: &str) -> bool {
        if self.config.roles.is_empty() {
            return true;
        }
        roles
            .iter()
            .filter_map(|r| self.config.roles.get(*r))
            .any(|g| {
                let patterns = match kind {
                    "tool" => &g.tools,
                    "prompt" => &g.prompts,
                    _ => &g.resources,
                };
                glob::any(patterns, name)
            })
    }
}

fn roles_of(ctx: &Context) -> Vec<&str> {
    ctx.attribute("roles")
        .map(|r| r.split(',').filter(|r| !r.is_empty()).collect())
        .unwrap_or_default()
}

impl Plugin for Auth {
    const HOOKS: Hooks = Hooks::REQUEST.union(Hooks::RESPONSE);

    fn configure(config: Value) -> Result<Self, String> {
        let config: Config = serde_json::from_value(config).map_err(|e| format!("auth: {e}"))?;
        let mut keys = Vec::new();
        for k in &config.api_keys {
            let (salt, digest) = parse_hash(&k.key_hash).ok_or_else(|| {
                format!(
                    "auth: the key_hash of `{}` is not `sha256:SALT:DIGEST` (print one with `switchyard hash-key`)",
                    k.principal
                )
            })?;
            keys.push(Key {
                principal: k.principal.clone(),
                salt,
                digest,
                roles: k.roles.clone(),
            });
        }
        let (jwks, algorithms) = match &config.jwt {
            None => (None, Vec::new()),
            Some(j) => {
                let raw = match (&j.jwks, &j.jwks_file, &j.jwks_url) {
                    (Some(v), None, None) => Some(v.clone()),
                    (None, Some(path), None) => {
                        let text = std::fs::read_to_string(path).map_err(|e| {
                            format!(
                                "auth: cannot read jwks_file {path} (is its folder granted?): {e}"
                            )
                        })?;
                        Some(
                            serde_json::from_str(&text)
                                .map_err(|e| format!("auth: jwks_file {path} is not JSON: {e}"))?,
                        )
                    }
                    // Fetched when a token comes (the gateway caches it).
                    (None, None, Some(_)) => None,
                    _ => {
                        return Err(
                            "auth: jwt needs exactly one of jwks, jwks_file and jwks_url".into(),
                        );
                    }
                };
                let set: Option<JwkSet> = raw
                    .map(serde_json::from_value)
                    .transpose()
                    .map_err(|e| format!("auth: bad JWKS: {e}"))?;
                let mut algorithms = Vec::new();
                for a in &j.algorithms {
                    algorithms.push(match a.as_str() {
                        "HS256" => Algorithm::HS256,
                        "RS256" => Algorithm::RS256,
                        "ES256" => Algorithm::ES256,
                        other => {
                            return Err(format!(
                                "auth: algorithm `{other}` is not one of HS256, RS256, ES256"
                            ));
                        }
                    });
                }
                (set.map(Rc::new), algorithms)
            }
        };
        if keys.is_empty() && config.jwt.is_none() {
            return Err("auth: configure api_keys, jwt, or both".into());
        }
        for (role, _) in config.roles.iter() {
            if role.contains(',') {
                return Err(format!("auth: role name `{role}` must not contain `,`"));
            }
        }
        Ok(Auth {
            config,
            keys,
            jwks,
            algorithms,
            fetched: RefCell::new(None),
        })
    }

    fn describe(&self) -> Description {
        let mut d = Description::of::<Self>();
        d.headers = vec![
            "authorization".into(),
            "host".into(),
            "x-forwarded-proto".into(),
        ];
        if let Some(h) = &self.config.api_key_header {
            d.headers.push(h.to_ascii_lowercase());
        }
        let mut meta = json!({
            "authorization_servers": self.config.authorization_servers,
            "bearer_methods_supported": ["header"],
        });
        if !self.config.scopes.is_empty() {
            meta["scopes_supported"] = json!(self.config.scopes);
        }
        if let Some(r) = &self.config.resource {
            meta["resource"] = r.clone().into();
        }
        d.well_known = vec![("oauth-protected-resource".into(), meta)];
        d
    }

    fn on_request(&self, ctx: &Context, _params: &Params) -> RequestDecision {
        let who = match self.authenticate(ctx) {
            Ok(who) => who,
            Err(why) => {
                if let Refusal::Invalid(reason) = &why {
                    log::info(&format!("auth: refused on {}: {reason}", ctx.route));
                }
                return self.refuse(ctx, why).into();
            }
        };
        let kind = match ctx.method.as_str() {
            "tools/call" => Some("tool"),
            "prompts/get" => Some("prompt"),
            "resources/read" | "resources/subscribe" => Some("resource"),
            _ => None,
        };
        if let (Some(kind), Some(name)) = (kind, ctx.target.as_deref()) {
            let roles: Vec<&str> = who.roles.iter().map(String::as_str).collect();
            if !self.allows(&roles, kind, name) {
                // Exactly what an unknown item gets.
                return Rejection::not_found(kind, name, ctx.era).into();
            }
        }
        Continuation::new()
            .with_principal(who.principal)
            .with_attribute("roles", who.roles.join(","))
            .into()
    }

    fn on_response(&self, ctx: &Context, _params: &Params, outcome: &Outcome) -> ResponseDecision {
        if self.config.roles.is_empty() {
            return ResponseDecision::Continue;
        }
        let (field, key, kind) = match ctx.method.as_str() {
            "tools/list" => ("tools", "name", "tool"),
            "prompts/list" => ("prompts", "name", "prompt"),
            "resources/list" => ("resources", "uri", "resource"),
            "resources/templates/list" => ("resourceTemplates", "uriTemplate", "resource"),
            _ => return ResponseDecision::Continue,
        };
        let Some(mut result) = outcome.result_value() else {
            return ResponseDecision::Continue;
        };
        let roles = roles_of(ctx);
        let Some(items) = result.get_mut(field).and_then(Value::as_array_mut) else {
            return ResponseDecision::Continue;
        };
        let before = items.len();
        items.retain(|i| {
            i[key]
                .as_str()
                .is_some_and(|n| self.allows(&roles, kind, n))
        });
        if items.len() == before {
            ResponseDecision::Continue
        } else {
            ResponseDecision::Replace(result)
        }
    }
}

switchyard_sdk::export!(Auth);

#[cfg(test)]
mod tests;
