//! List requests: passed through, or fanned out, renamed and merged with
//! one opaque cursor; the capability union of a route's upstreams.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::*;

/// The three list kinds the gateway merges, and the one it merges like them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ListKind {
    Tools,
    Prompts,
    Resources,
    Templates,
}

impl ListKind {
    pub(super) fn of(method: &str) -> Option<Self> {
        Some(match method {
            "tools/list" => Self::Tools,
            "prompts/list" => Self::Prompts,
            "resources/list" => Self::Resources,
            "resources/templates/list" => Self::Templates,
            _ => return None,
        })
    }

    pub(super) fn field(self) -> &'static str {
        match self {
            Self::Tools => "tools",
            Self::Prompts => "prompts",
            Self::Resources => "resources",
            Self::Templates => "resourceTemplates",
        }
    }

    pub(super) fn capability(self) -> &'static str {
        match self {
            Self::Tools => "tools",
            Self::Prompts => "prompts",
            Self::Resources | Self::Templates => "resources",
        }
    }
}

impl Gateway {
    /// A list request: passed through on a one-upstream route; fanned out,
    /// renamed and merged (with a merged cursor) on an aggregating one.
    pub(super) async fn list(
        &self,
        route: &Route,
        ctx: &ClientCtx,
        kind: ListKind,
        method: &str,
        params: Option<Value>,
        sink: &Sink,
    ) -> Result<Value, Failure> {
        if !route.aggregates() {
            let up = self.upstream(&route.upstreams[0])?;
            let result = self.forward(&up, ctx, method, params, sink).await?;
            if kind == ListKind::Tools {
                self.remember_header_params(route, &result);
            }
            return Ok(result);
        }
        let cursor = params
            .as_ref()
            .and_then(|p| p.get("cursor"))
            .and_then(Value::as_str);
        // Which upstreams to ask, each with its own cursor.
        let targets: Vec<(UpstreamName, Option<String>)> = match cursor {
            None => route.upstreams.iter().map(|u| (u.clone(), None)).collect(),
            Some(c) => decode_cursor(c, method)
                .filter(|m| {
                    m.keys()
                        .all(|k| route.upstreams.iter().any(|u| u.as_str() == k))
                })
                .map(|m| {
                    route
                        .upstreams
                        .iter()
                        .filter_map(|u| m.get(u.as_str()).map(|c| (u.clone(), Some(c.clone()))))
                        .collect()
                })
                .ok_or_else(|| Failure::client(code::INVALID_PARAMS, "invalid cursor"))?,
        };
        let calls = targets.iter().map(|(name, cur)| {
            let mut p = params.clone().unwrap_or_else(|| json!({}));
            match cur {
                Some(c) => p["cursor"] = c.clone().into(),
                None => {
                    if let Some(o) = p.as_object_mut() {
                        o.remove("cursor");
                    }
                }
            }
            async move {
                let up = self.upstream(name)?;
                let live = up.live().await.map_err(Failure::upstream)?;
                if live.info.capabilities.get(kind.capability()).is_none() {
                    return Ok(None);
                }
                self.forward(&up, ctx, method, Some(p), sink)
                    .await
                    .map(Some)
            }
        });
        let results = futures_util::future::join_all(calls).await;

        let mut items = Vec::new();
        let mut next = Map::new();
        let mut first_err = None;
        let mut any_ok = false;
        // The merged result is fresh only as long as its stalest part, and
        // private if any part is (or did not say).
        let (mut ttl, mut private, mut unhinted) = (None, false, false);
        let state = self.state(route);
        let mut index = state.index.lock().expect("index lock");
        for ((name, _), result) in targets.iter().zip(results) {
            let result = match result {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(f) => {
                    tracing::warn!(route = %route.path, upstream = %name, error = %f.error, "{method} failed on one upstream; listing the others");
                    first_err.get_or_insert(f);
                    continue;
                }
            };
            any_ok = true;
            if let Some(t) = result.get("ttlMs").and_then(Value::as_u64) {
                ttl = Some(ttl.map_or(t, |m: u64| m.min(t)));
            }
            match result.get("cacheScope").and_then(Value::as_str) {
                Some("public") => {}
                Some(_) => private = true,
                None => unhinted = true,
            }
            if let Some(c) = result.get("nextCursor").and_then(Value::as_str) {
                next.insert(name.to_string(), c.into());
            }
            let Some(list) = result.get(kind.field()).and_then(Value::as_array) else {
                continue;
            };
            for item in list {
                let mut item = item.clone();
                match kind {
                    ListKind::Tools | ListKind::Prompts => {
                        let Some(original) = item.get("name").and_then(Value::as_str) else {
                            continue;
                        };
                        let exposed = expose(name, original);
                        let map = if kind == ListKind::Tools {
                            &mut index.tools
                        } else {
                            &mut index.prompts
                        };
                        map.insert(exposed.clone(), (name.clone(), original.to_owned()));
                        if kind == ListKind::Tools {
                            index
                                .header_params
                                .insert(exposed.clone(), header_params_of(&item));
                        }
                        item["name"] = exposed.into();
                    }
                    ListKind::Resources => {
                        // A URI listed by several upstreams belongs to the
                        // one that listed it first (in route order within a
                        // page), and is listed once, as that upstream's.
                        let Some(uri) = item.get("uri").and_then(Value::as_str) else {
                            continue;
                        };
                        let owner = index
                            .resources
                            .entry(uri.to_owned())
                            .or_insert_with(|| name.clone());
                        if owner != name {
                            continue;
                        }
                    }
                    ListKind::Templates => {
                        if let Some(t) = item.get("uriTemplate").and_then(Value::as_str) {
                            let prefix = t.split('{').next().unwrap_or(t).to_owned();
                            if !index.templates.iter().any(|(p, _)| p == &prefix) {
                                index.templates.push((prefix, name.clone()));
                            }
                        }
                    }
                }
                items.push(item);
            }
        }
        drop(index);
        if !any_ok && let Some(f) = first_err {
            return Err(f);
        }
        let mut out = Map::new();
        out.insert(kind.field().into(), Value::Array(items));
        if !next.is_empty() {
            out.insert("nextCursor".into(), encode_cursor(method, next).into());
        }
        if let Some(t) = ttl {
            out.insert("ttlMs".into(), if unhinted { 0 } else { t }.into());
            let scope = if private || unhinted {
                "private"
            } else {
                "public"
            };
            out.insert("cacheScope".into(), scope.into());
        }
        Ok(Value::Object(out))
    }
}

/// Unions upstream capabilities: a feature is present if any upstream has
/// it; `listChanged` / `subscribe` are true if any upstream's is.
pub(super) fn merge_capabilities(into: &mut Map<String, Value>, caps: &Value) {
    let Some(caps) = caps.as_object() else { return };
    for (k, v) in caps {
        let slot = into.entry(k.clone()).or_insert_with(|| json!({}));
        if let (Some(slot), Some(v)) = (slot.as_object_mut(), v.as_object()) {
            for (flag, val) in v {
                let merged = match (slot.get(flag), val) {
                    (Some(Value::Bool(a)), Value::Bool(b)) => Value::Bool(*a || *b),
                    (Some(existing), _) if !existing.is_null() => continue,
                    _ => val.clone(),
                };
                slot.insert(flag.clone(), merged);
            }
        }
    }
}

/// A merged cursor: which upstreams have more, each with its own cursor,
/// bound to the list method it came from.
fn encode_cursor(method: &str, next: Map<String, Value>) -> String {
    let v = json!({"m": method, "c": next});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

fn decode_cursor(cursor: &str, method: &str) -> Option<HashMap<String, String>> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    if v.get("m")?.as_str()? != method {
        return None;
    }
    v.get("c")?
        .as_object()?
        .iter()
        .map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_bind_to_their_method() {
        let mut m = Map::new();
        m.insert("a".into(), "c1".into());
        let c = encode_cursor("tools/list", m);
        assert_eq!(decode_cursor(&c, "tools/list").unwrap()["a"], "c1");
        assert!(decode_cursor(&c, "prompts/list").is_none());
        assert!(decode_cursor("garbage!", "tools/list").is_none());
    }

    #[test]
    fn capabilities_union() {
        let mut m = Map::new();
        merge_capabilities(&mut m, &json!({"tools": {"listChanged": false}}));
        merge_capabilities(
            &mut m,
            &json!({"tools": {"listChanged": true}, "resources": {"subscribe": true}}),
        );
        assert_eq!(
            Value::Object(m),
            json!({"tools": {"listChanged": true}, "resources": {"subscribe": true}})
        );
    }
}
