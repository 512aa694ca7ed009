//! [`Context`]: what the gateway knows about one request, extracted once.

/// Which revision family the client speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Era {
    /// 2025-11-25 and earlier: `initialize`, then a session.
    #[default]
    Legacy,
    /// 2026-07-28: stateless, every request carries its own `_meta`.
    Modern,
}

impl Era {
    /// The newest protocol revision of this era (`2025-11-25` or
    /// `2026-07-28`).
    pub const fn latest_version(self) -> &'static str {
        match self {
            Era::Legacy => "2025-11-25",
            Era::Modern => "2026-07-28",
        }
    }
}

/// Everything the gateway knows about one request, extracted once so that a
/// plugin needing only these never parses JSON.
///
/// Header names are lower case; only the headers the plugin asked for (see
/// [`Plugin::HEADERS`](crate::Plugin::HEADERS)) are present.
///
/// In tests, build one with [`Context::new`] and the `with_*` methods:
///
/// ```
/// use switchyard_sdk::{Context, Era};
///
/// let ctx = Context::new("tools/call")
///     .with_target("search")
///     .with_header("Authorization", "Bearer abc")
///     .with_attribute("role", "reader")
///     .with_attribute("role", "admin")
///     .with_era(Era::Modern);
///
/// assert_eq!(ctx.header("authorization"), Some("Bearer abc"));
/// assert_eq!(ctx.attribute("role"), Some("admin"));
/// assert_eq!(ctx.protocol_version, "2026-07-28");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Context {
    /// The gateway's id for this request, for logs. Not the JSON-RPC id.
    pub request_id: String,
    /// The route's path, e.g. `/mcp`.
    pub route: String,
    /// The upstream the request goes to, when the gateway knows it before
    /// calling; none for requests answered from several upstreams
    /// (`tools/list`).
    pub upstream: Option<String>,
    /// The JSON-RPC method, e.g. `tools/call`.
    pub method: String,
    /// The tool or prompt name (`tools/call`, `prompts/get`) or the resource
    /// URI (`resources/read`, `resources/subscribe`), as the client sent it.
    pub target: Option<String>,
    /// Who is asking, as set by an earlier plugin; none until one does.
    pub principal: Option<String>,
    /// Attributes set by earlier plugins, in the order they were set. Read
    /// them with [`attribute`](Context::attribute): a later value for a name
    /// replaces the earlier.
    pub attributes: Vec<(String, String)>,
    /// The request headers this plugin asked for, names lower case; a header
    /// sent several times appears several times.
    pub headers: Vec<(String, String)>,
    /// The client's address (`ip:port`); none for requests that did not
    /// arrive over the network.
    pub client_address: Option<String>,
    /// The client's protocol era.
    pub era: Era,
    /// The exact protocol revision the client speaks, e.g. `2025-11-25`.
    pub protocol_version: String,
}

impl Context {
    /// A context for `method` with test defaults: request id `test-1`, route
    /// `/mcp`, the legacy era at `2025-11-25`, and nothing else set.
    pub fn new(method: impl Into<String>) -> Context {
        Context {
            request_id: "test-1".to_string(),
            route: "/mcp".to_string(),
            upstream: None,
            method: method.into(),
            target: None,
            principal: None,
            attributes: Vec::new(),
            headers: Vec::new(),
            client_address: None,
            era: Era::Legacy,
            protocol_version: Era::Legacy.latest_version().to_string(),
        }
    }

    /// The first value of header `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`, in the order sent.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The value of attribute `name`: the last one set wins.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets the tool or prompt name, or the resource URI.
    pub fn with_target(mut self, target: impl Into<String>) -> Context {
        self.target = Some(target.into());
        self
    }

    /// Sets who is asking.
    pub fn with_principal(mut self, principal: impl Into<String>) -> Context {
        self.principal = Some(principal.into());
        self
    }

    /// Adds a header; the name is lower-cased, as the gateway passes it.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Context {
        self.headers
            .push((name.into().to_ascii_lowercase(), value.into()));
        self
    }

    /// Adds an attribute, as an earlier plugin would.
    pub fn with_attribute(mut self, name: impl Into<String>, value: impl Into<String>) -> Context {
        self.attributes.push((name.into(), value.into()));
        self
    }

    /// Sets the upstream the request goes to.
    pub fn with_upstream(mut self, upstream: impl Into<String>) -> Context {
        self.upstream = Some(upstream.into());
        self
    }

    /// Sets the era and the protocol version to that era's newest revision.
    pub fn with_era(mut self, era: Era) -> Context {
        self.era = era;
        self.protocol_version = era.latest_version().to_string();
        self
    }

    /// Sets the exact protocol revision (after [`with_era`](Context::with_era)
    /// if both are used).
    pub fn with_protocol_version(mut self, version: impl Into<String>) -> Context {
        self.protocol_version = version.into();
        self
    }

    /// Sets the client's address (`ip:port`).
    pub fn with_client_address(mut self, address: impl Into<String>) -> Context {
        self.client_address = Some(address.into());
        self
    }

    /// Sets the route's path.
    pub fn with_route(mut self, route: impl Into<String>) -> Context {
        self.route = route.into();
        self
    }

    /// Sets the gateway's request id.
    pub fn with_request_id(mut self, id: impl Into<String>) -> Context {
        self.request_id = id.into();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_documented_ones() {
        let ctx = Context::new("ping");
        assert_eq!(ctx.method, "ping");
        assert_eq!(ctx.route, "/mcp");
        assert_eq!(ctx.request_id, "test-1");
        assert_eq!(ctx.era, Era::Legacy);
        assert_eq!(ctx.protocol_version, "2025-11-25");
        assert_eq!(ctx.target, None);
    }

    #[test]
    fn header_is_case_insensitive_and_first_wins() {
        let ctx = Context::new("tools/call")
            .with_header("X-Api-Key", "one")
            .with_header("x-api-key", "two");
        assert_eq!(ctx.headers[0].0, "x-api-key");
        assert_eq!(ctx.header("X-API-KEY"), Some("one"));
        assert_eq!(
            ctx.header_values("x-api-key").collect::<Vec<_>>(),
            ["one", "two"]
        );
        assert_eq!(ctx.header("authorization"), None);
    }

    #[test]
    fn attribute_last_wins() {
        let ctx = Context::new("tools/call")
            .with_attribute("role", "reader")
            .with_attribute("team", "a")
            .with_attribute("role", "admin");
        assert_eq!(ctx.attribute("role"), Some("admin"));
        assert_eq!(ctx.attribute("team"), Some("a"));
        assert_eq!(ctx.attribute("Role"), None);
    }

    #[test]
    fn builders_set_fields() {
        let ctx = Context::new("resources/read")
            .with_target("file:///a")
            .with_principal("alice")
            .with_upstream("files")
            .with_era(Era::Modern)
            .with_client_address("127.0.0.1:5000")
            .with_route("/other")
            .with_request_id("r-9");
        assert_eq!(ctx.target.as_deref(), Some("file:///a"));
        assert_eq!(ctx.principal.as_deref(), Some("alice"));
        assert_eq!(ctx.upstream.as_deref(), Some("files"));
        assert_eq!(
            (ctx.era, ctx.protocol_version.as_str()),
            (Era::Modern, "2026-07-28")
        );
        assert_eq!(ctx.client_address.as_deref(), Some("127.0.0.1:5000"));
        assert_eq!(ctx.route, "/other");
        assert_eq!(ctx.request_id, "r-9");
        let ctx = ctx.with_protocol_version("2025-06-18");
        assert_eq!(ctx.protocol_version, "2025-06-18");
    }
}
