//! Names on an aggregating route: `{upstream}__{name}` exposure, the index
//! learnt from list results, and the `x-mcp-header` parameters of tools.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::*;

/// Aggregated names and resource owners learnt from list results.
#[derive(Default)]
pub(super) struct NameIndex {
    /// Exposed tool name → (upstream, original name).
    pub(super) tools: HashMap<String, (UpstreamName, String)>,
    pub(super) prompts: HashMap<String, (UpstreamName, String)>,
    /// Resource URI → owning upstream (first lister in route order wins).
    pub(super) resources: HashMap<String, UpstreamName>,
    /// URI template literal prefix → upstream.
    pub(super) templates: Vec<(String, UpstreamName)>,
    /// Exposed tool name → its parameters mirrored in `Mcp-Param-*` headers.
    pub(super) header_params: HashMap<String, Vec<HeaderParam>>,
    /// Whether a full `tools/list` has filled the maps above.
    pub(super) tools_listed: bool,
}

/// A tool parameter a modern client mirrors in a header (`x-mcp-header`).
#[derive(Debug, Clone, PartialEq)]
pub struct HeaderParam {
    /// The argument's name.
    pub param: String,
    /// The header's suffix: `Mcp-Param-{header}`.
    pub header: String,
}

/// The `x-mcp-header` parameters in a tool definition.
pub(super) fn header_params_of(tool: &Value) -> Vec<HeaderParam> {
    let Some(props) = tool
        .get("inputSchema")
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object)
    else {
        return Vec::new();
    };
    props
        .iter()
        .filter_map(|(param, schema)| {
            let header = schema.get("x-mcp-header")?.as_str()?;
            Some(HeaderParam {
                param: param.clone(),
                header: header.to_owned(),
            })
        })
        .collect()
}

impl Gateway {
    /// Finds the upstream and original name behind an exposed tool/prompt name.
    pub(super) fn resolve_name(
        &self,
        route: &Route,
        kind: ListKind,
        name: &str,
    ) -> Result<(UpstreamName, String), Failure> {
        if !route.aggregates() {
            return Ok((route.upstreams[0].clone(), name.to_owned()));
        }
        let state = self.state(route);
        let index = state.index.lock().expect("index lock");
        let map = if kind == ListKind::Tools {
            &index.tools
        } else {
            &index.prompts
        };
        if let Some(found) = map.get(name) {
            return Ok(found.clone());
        }
        if let Some((prefix, rest)) = name.split_once(SEPARATOR)
            && let Some(up) = route.upstreams.iter().find(|u| u.as_str() == prefix)
            && !rest.is_empty()
        {
            return Ok((up.clone(), rest.to_owned()));
        }
        let what = if kind == ListKind::Tools {
            "tool"
        } else {
            "prompt"
        };
        Err(Failure::client(
            code::INVALID_PARAMS,
            format!("unknown {what}: {name}"),
        ))
    }

    /// Records the `x-mcp-header` parameters of a passed-through tool list.
    pub(super) fn remember_header_params(&self, route: &Route, result: &Value) {
        let Some(tools) = result.get("tools").and_then(Value::as_array) else {
            return;
        };
        let state = self.state(route);
        let mut index = state.index.lock().expect("index lock");
        for tool in tools {
            if let Some(name) = tool.get("name").and_then(Value::as_str) {
                index
                    .header_params
                    .insert(name.to_owned(), header_params_of(tool));
            }
        }
    }

    /// The parameters of tool `name` (as the route exposes it) that modern
    /// clients mirror in `Mcp-Param-*` headers. Unknown tools make the
    /// gateway list the route's tools once, so a client that calls without
    /// listing first is validated too.
    pub async fn header_params(&self, route: &Route, name: &str) -> Vec<HeaderParam> {
        let listed = {
            let state = self.state(route);
            let index = state.index.lock().expect("index lock");
            if let Some(params) = index.header_params.get(name) {
                return params.clone();
            }
            index.tools_listed
        };
        if !listed {
            // Listing learns the parameters (see `remember_header_params`).
            let _ = self.tools(route).await;
            self.state(route)
                .index
                .lock()
                .expect("index lock")
                .tools_listed = true;
        }
        let state = self.state(route);
        let index = state.index.lock().expect("index lock");
        index.header_params.get(name).cloned().unwrap_or_default()
    }

    /// Every tool the route exposes (all pages), as the gateway itself sees
    /// them: no plugin runs (the admin API and the CLI show the whole set).
    pub async fn tools(&self, route: &Route) -> Result<Vec<Value>, RpcError> {
        let ctx = ClientCtx::gateway();
        let (sink, _) = mpsc::unbounded_channel();
        let mut cursor: Option<String> = None;
        let mut tools = Vec::new();
        for _ in 0..100 {
            let params = cursor.as_ref().map(|c| json!({"cursor": c}));
            let mut page = self
                .list(route, &ctx, ListKind::Tools, "tools/list", params, &sink)
                .await
                .map_err(|f| f.error)?;
            if let Some(Value::Array(t)) = page.get_mut("tools").map(Value::take) {
                tools.extend(t);
            }
            match page.get("nextCursor").and_then(Value::as_str) {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        Ok(tools)
    }
}

/// The aggregated name of `name` from `upstream`: `{upstream}__{name}`,
/// cleaned to `[A-Za-z0-9_.-]` and at most 128 characters; when cleaning or
/// shortening was needed, a hash of the original keeps names distinct.
pub fn expose(upstream: &UpstreamName, name: &str) -> String {
    let prefix = format!("{upstream}{SEPARATOR}");
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    if name.chars().all(valid) && !name.is_empty() && prefix.len() + name.len() <= MAX_NAME {
        return prefix + name;
    }
    let clean: String = name
        .chars()
        .map(|c| if valid(c) { c } else { '_' })
        .collect();
    let hash = format!("{:08x}", fnv1a(name.as_bytes()) as u32);
    let room = MAX_NAME - prefix.len() - hash.len() - 1;
    let clean: String = clean.chars().take(room).collect();
    format!("{prefix}{clean}_{hash}")
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(s: &str) -> UpstreamName {
        UpstreamName::parse(s).unwrap()
    }

    #[test]
    fn exposed_names_are_valid_and_distinct() {
        assert_eq!(expose(&up("gh"), "create_issue"), "gh__create_issue");
        let a = expose(&up("gh"), "create issue");
        let b = expose(&up("gh"), "create/issue");
        assert_ne!(a, b);
        let long = "x".repeat(200);
        for n in [a, b, expose(&up("gh"), &long)] {
            assert!(n.len() <= MAX_NAME && n.starts_with("gh__"), "{n}");
            assert!(
                n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)),
                "{n}"
            );
        }
    }
}
