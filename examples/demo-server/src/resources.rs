//! Resources: the conformance fixture (`test://static-text`,
//! `test://static-binary`, `test://watched-resource`, template
//! `test://template/{id}/data`) and `demo://readme`.
//!
//! `test://watched-resource` changes on a timer ([`watch`]) while anyone is
//! subscribed, and every resource changes when `touch_resource` names it; each
//! change bumps the revision that `demo://readme` and the watched resource show.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::content::PNG_BASE64;
use crate::protocol::{RpcError, code};
use crate::request::Request;
use crate::session::{Change, Session};

pub(crate) const WATCHED_URI: &str = "test://watched-resource";

const TEMPLATE: &str = "test://template/{id}/data";
const TEMPLATE_PREFIX: &str = "test://template/";
const TEMPLATE_SUFFIX: &str = "/data";

const README: &str = "\
# Switchyard demo server

A small MCP server for demos and tests. Try the `echo`, `add` and `slow` tools,
the `greet` prompt, and the `test://` resources of the conformance fixture.
";

/// The `resources/list` entries (direct resources only, not templates).
pub(crate) fn list() -> Vec<Value> {
    vec![
        json!({
            "uri": "test://static-text",
            "name": "static-text",
            "title": "Static Text Resource",
            "description": "A static text resource for testing",
            "mimeType": "text/plain",
        }),
        json!({
            "uri": "test://static-binary",
            "name": "static-binary",
            "title": "Static Binary Resource",
            "description": "A static binary resource (image) for testing",
            "mimeType": "image/png",
        }),
        json!({
            "uri": WATCHED_URI,
            "name": "watched-resource",
            "title": "Watched Resource",
            "description": "A resource that changes every few seconds while subscribed",
            "mimeType": "text/plain",
        }),
        json!({
            "uri": "demo://readme",
            "name": "readme",
            "title": "Demo server readme",
            "description": "What this demo server offers",
            "mimeType": "text/markdown",
        }),
    ]
}

/// The `resources/templates/list` entries.
pub(crate) fn templates() -> Vec<Value> {
    vec![json!({
        "uriTemplate": TEMPLATE,
        "name": "template",
        "title": "Resource Template",
        "description": "A resource template with parameter substitution",
        "mimeType": "application/json",
    })]
}

/// `resources/read`. An unknown URI is -32002 in the legacy era and -32602
/// in the modern one, with `data.uri` in both.
pub(crate) fn read(req: &Request) -> Result<Value, RpcError> {
    let uri = req.str_param("uri")?;
    let contents = match uri {
        "test://static-text" => json!({
            "uri": uri,
            "mimeType": "text/plain",
            "text": "This is the content of the static text resource.",
        }),
        "test://static-binary" => {
            json!({ "uri": uri, "mimeType": "image/png", "blob": PNG_BASE64 })
        }
        WATCHED_URI => json!({
            "uri": uri,
            "mimeType": "text/plain",
            "text": format!("Watched resource content (revision {})", req.session.revision(uri)),
        }),
        "demo://readme" => json!({
            "uri": uri,
            "mimeType": "text/markdown",
            "text": format!("{README}\nServed by {} (revision {}).\n", req.session.opts.name, req.session.revision(uri)),
        }),
        _ => match template_id(uri) {
            Some(id) => json!({
                "uri": uri,
                "mimeType": "application/json",
                "text": json!({ "id": id, "templateTest": true, "data": format!("Data for ID: {id}") }).to_string(),
            }),
            None => return Err(not_found(req, uri)),
        },
    };
    Ok(json!({ "contents": [contents] }))
}

/// The `{id}` of a URI matching `test://template/{id}/data`.
fn template_id(uri: &str) -> Option<&str> {
    let id = uri
        .strip_prefix(TEMPLATE_PREFIX)?
        .strip_suffix(TEMPLATE_SUFFIX)?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

fn not_found(req: &Request, uri: &str) -> RpcError {
    let code = if req.is_modern() {
        code::INVALID_PARAMS
    } else {
        code::RESOURCE_NOT_FOUND
    };
    RpcError::new(code, format!("Resource not found: {uri}")).with_data(json!({ "uri": uri }))
}

/// Changes `test://watched-resource` every `interval` while anyone is
/// subscribed, and tells the subscribers.
pub(crate) async fn watch(session: Arc<Session>, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await; // the first tick is immediate
    loop {
        ticks.tick().await;
        if session.is_watched(WATCHED_URI) {
            session.bump_revision(WATCHED_URI);
            session.announce(Change::ResourceUpdated(WATCHED_URI));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_template() {
        assert_eq!(template_id("test://template/123/data"), Some("123"));
        assert_eq!(template_id("test://template//data"), None);
        assert_eq!(template_id("test://template/1/2/data"), None);
        assert_eq!(template_id("test://static-text"), None);
    }
}
