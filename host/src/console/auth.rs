//! Console sign-in: the admin token (or the viewer token) is exchanged once
//! for a session cookie; every state-changing request then carries the
//! session's CSRF token.
//!
//! Sessions live in memory (a restart signs everyone out) and expire after
//! [`SESSION_TTL`]. The cookie is `HttpOnly` and `SameSite=Strict`, scoped
//! to `/ui`, and would be `Secure` on a TLS listener (the admin listener is
//! plain HTTP today, so it is not). Failed sign-ins are logged with the
//! address, never the token, and answered late: the delay grows with the
//! address's recent failures.
//!
//! The cookie is read by hand (one name in one header); forms are decoded
//! by `serde_urlencoded`, as axum's `Form` does.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use crate::admin::{constant_time_eq, digest};

/// The cookie's name.
pub const COOKIE: &str = "switchyard_console";
/// How long a session lasts from sign-in.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// The form field (or `X-CSRF-Token` header) carrying the CSRF token.
pub const CSRF_FIELD: &str = "_csrf";
/// The largest form body read for its CSRF token (uploads carry it in the
/// query string instead).
const MAX_FORM: usize = 4 << 20;

/// What a signed-in operator may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything the admin API can do.
    Admin,
    /// Read every page; change nothing.
    Viewer,
}

/// A signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    pub role: Role,
    pub csrf: String,
    expires: Instant,
}

/// The sessions, and recent sign-in failures per address.
pub struct Auth {
    admin: [u8; 32],
    viewer: Option<[u8; 32]>,
    sessions: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl Auth {
    pub fn new(admin_token: &str, viewer_token: Option<&str>) -> Self {
        Auth {
            admin: digest(admin_token),
            viewer: viewer_token.map(digest),
            sessions: Mutex::default(),
            failures: Mutex::default(),
        }
    }

    /// The role `token` signs in as, if any (digests compared in constant time).
    fn role_of(&self, token: &str) -> Option<Role> {
        let given = digest(token.trim());
        if constant_time_eq(&given, &self.admin) {
            Some(Role::Admin)
        } else if self.viewer.is_some_and(|v| constant_time_eq(&given, &v)) {
            Some(Role::Viewer)
        } else {
            None
        }
    }

    /// Signs in with `token` from `peer`: the new session's id, or `None`
    /// after the delay a failure costs.
    pub async fn sign_in(
        &self,
        token: &str,
        peer: Option<SocketAddr>,
    ) -> Option<(String, Session)> {
        if let Some(role) = self.role_of(token) {
            if let Some(p) = peer {
                self.failures.lock().expect("failures lock").remove(&p.ip());
            }
            let id = random_hex(32);
            let session = Session {
                role,
                csrf: random_hex(32),
                expires: Instant::now() + SESSION_TTL,
            };
            let mut all = self.sessions.lock().expect("sessions lock");
            let now = Instant::now();
            all.retain(|_, s| s.expires > now);
            all.insert(id.clone(), session.clone());
            tracing::info!(peer = ?peer, role = ?role, "console: signed in");
            return Some((id, session));
        }
        let recent = match peer {
            Some(p) => {
                let mut f = self.failures.lock().expect("failures lock");
                let entry = f.entry(p.ip()).or_insert((0, Instant::now()));
                // Failures are forgotten a minute after the last one.
                if entry.1.elapsed() > Duration::from_secs(60) {
                    entry.0 = 0;
                }
                entry.0 = entry.0.saturating_add(1);
                entry.1 = Instant::now();
                entry.0
            }
            None => 1,
        };
        tracing::warn!(peer = ?peer, recent_failures = recent, "console: sign-in refused (wrong token)");
        tokio::time::sleep(failure_delay(recent)).await;
        None
    }

    pub fn sign_out(&self, id: &str) {
        self.sessions.lock().expect("sessions lock").remove(id);
    }

    /// The live session a request's cookie names.
    pub fn session(&self, headers: &HeaderMap) -> Option<(String, Session)> {
        let id = cookie(headers, COOKIE)?;
        let mut all = self.sessions.lock().expect("sessions lock");
        match all.get(id) {
            Some(s) if s.expires > Instant::now() => Some((id.to_owned(), s.clone())),
            Some(_) => {
                all.remove(id);
                None
            }
            None => None,
        }
    }
}

/// 0.5 s for a first failure, 0.5 s more for each recent one, at most 5 s.
fn failure_delay(recent: u32) -> Duration {
    Duration::from_millis(500 * u64::from(recent.min(10)))
}

fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `Set-Cookie` value of a new session.
pub fn session_cookie(id: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={id}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_TTL.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that ends a session in the browser.
pub fn cleared_cookie() -> String {
    format!("{COOKIE}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0")
}

fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The middleware in front of every console page but the sign-in page and
/// the assets: no session → the sign-in page; a state-changing request
/// needs the admin role (403) and the session's CSRF token (403). The
/// session goes into the request's extensions for the handlers.
pub async fn guard(auth: &Auth, req: Request, next: axum::middleware::Next) -> Response {
    let Some((id, session)) = auth.session(req.headers()) else {
        if req.method() == Method::GET {
            return Redirect::to("/ui/login").into_response();
        }
        return (StatusCode::UNAUTHORIZED, "sign in first").into_response();
    };
    let mut req = req;
    let signing_out = req.uri().path() == "/ui/logout";
    if req.method() != Method::GET && req.method() != Method::HEAD {
        if session.role != Role::Admin && !signing_out {
            let peer = req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0);
            tracing::warn!(peer = ?peer, path = %req.uri().path(), "console: a viewer may not change anything");
            return (StatusCode::FORBIDDEN, "this session may only read").into_response();
        }
        let (ok, rebuilt) = carries_csrf(req, &session.csrf).await;
        let Some(rebuilt) = rebuilt else {
            return (StatusCode::PAYLOAD_TOO_LARGE, "form too large").into_response();
        };
        if !ok {
            let peer = rebuilt
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0);
            tracing::warn!(peer = ?peer, path = %rebuilt.uri().path(), "console: missing or wrong CSRF token");
            return (StatusCode::FORBIDDEN, "missing or wrong CSRF token").into_response();
        }
        req = rebuilt;
    }
    req.extensions_mut().insert(SessionId(id));
    req.extensions_mut().insert(session);
    next.run(req).await
}

/// The session id, for sign-out.
#[derive(Clone)]
pub struct SessionId(pub String);

/// Whether `req` carries `csrf` (header, query or form field), and the
/// request rebuilt with its body (`None`: the form was too large).
async fn carries_csrf(req: Request, csrf: &str) -> (bool, Option<Request>) {
    let matches = |v: &str| constant_time_eq(v.as_bytes(), csrf.as_bytes());
    if req
        .headers()
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .is_some_and(matches)
    {
        return (true, Some(req));
    }
    let in_query = req
        .uri()
        .query()
        .map(|q| form_field(q, CSRF_FIELD).is_some_and(|v| matches(&v)))
        .unwrap_or(false);
    if in_query {
        return (true, Some(req));
    }
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return (false, Some(req));
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM).await else {
        return (false, None);
    };
    let ok = std::str::from_utf8(&bytes)
        .ok()
        .and_then(|t| form_field(t, CSRF_FIELD))
        .is_some_and(|v| matches(&v));
    (ok, Some(Request::from_parts(parts, Body::from(bytes))))
}

/// The first value of `name` in an `application/x-www-form-urlencoded` text.
pub fn form_field(text: &str, name: &str) -> Option<String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(text)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields_are_found_and_decoded() {
        assert_eq!(
            form_field("a=1&_csrf=ab%2Bc+d", "_csrf").as_deref(),
            Some("ab+c d")
        );
        assert_eq!(form_field("a=1", "_csrf"), None);
        assert_eq!(form_field("_csrf=%e2%82%ac", "_csrf").as_deref(), Some("€"));
    }

    #[test]
    fn the_cookie_is_read_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "x=1; switchyard_console=abc; y=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h, COOKIE), Some("abc"));
        h.insert(header::COOKIE, "switchyard_consolex=abc".parse().unwrap());
        assert_eq!(cookie(&h, COOKIE), None);
    }

    #[test]
    fn failures_cost_more_the_more_there_are() {
        assert_eq!(failure_delay(1), Duration::from_millis(500));
        assert!(failure_delay(3) > failure_delay(2));
        assert_eq!(failure_delay(50), Duration::from_secs(5));
    }

    #[tokio::test]
    async fn tokens_sign_in_as_their_role() {
        let auth = Auth::new("admin-token-0123456789", Some("viewer-token-0123456789"));
        let (id, s) = auth.sign_in("admin-token-0123456789", None).await.unwrap();
        assert_eq!(s.role, Role::Admin);
        let (_, v) = auth.sign_in("viewer-token-0123456789", None).await.unwrap();
        assert_eq!(v.role, Role::Viewer);
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, format!("{COOKIE}={id}").parse().unwrap());
        assert_eq!(auth.session(&h).unwrap().1.csrf, s.csrf);
        auth.sign_out(&id);
        assert!(auth.session(&h).is_none());
    }
}
