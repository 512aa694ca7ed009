//! `builtin:tool-rewrite`: reshape the tools and prompts a route shows, and
//! map every call back to the original. See README.md.
//!
//! Both ways, always: `tools/list` shows the new name, text, schema and
//! annotations; `tools/call` with the new name reaches the upstream as the
//! original, with hidden parameters pinned and injected ones set; the
//! original name of a renamed tool is unknown on this route.

use std::collections::BTreeMap;

use serde::Deserialize;
use switchyard_sdk::serde_json::{self, Map, Value};
use switchyard_sdk::{
    Context, Continuation, Hooks, Outcome, Params, Plugin, Rejection, RequestDecision,
    ResponseDecision,
};

/// How one tool or prompt is reshaped.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    /// The name clients see.
    name: Option<String>,
    title: Option<String>,
    description: Option<String>,
    /// Parameters removed from the schema clients see, and set to these
    /// values on the way up (tools only).
    #[serde(default)]
    hide: Map<String, Value>,
    /// Arguments set on the way up whatever the client sent: a value, or
    /// `{ from = "principal" }` / `{ from = "attribute:NAME" }` (tools only).
    #[serde(default)]
    inject: Map<String, Value>,
    /// Merged into the tool's `annotations` (tools only).
    #[serde(default)]
    annotations: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    tools: BTreeMap<String, Rule>,
    #[serde(default)]
    prompts: BTreeMap<String, Rule>,
}

pub struct Rewrite {
    config: Config,
    /// Shown name → original, for tools and prompts.
    tool_origin: BTreeMap<String, String>,
    prompt_origin: BTreeMap<String, String>,
}

/// Where an injected value comes from.
fn resolve(value: &Value, ctx: &Context) -> Option<Value> {
    let from = value
        .as_object()
        .filter(|o| o.len() == 1)
        .and_then(|o| o.get("from"))
        .and_then(Value::as_str);
    match from {
        None => Some(value.clone()),
        Some("principal") => ctx.principal.clone().map(Value::String),
        Some(f) => f
            .strip_prefix("attribute:")
            .and_then(|name| ctx.attribute(name))
            .map(|v| Value::String(v.to_owned())),
    }
}

fn origins(rules: &BTreeMap<String, Rule>, kind: &str) -> Result<BTreeMap<String, String>, String> {
    let mut map = BTreeMap::new();
    for (original, rule) in rules {
        let shown = rule.name.clone().unwrap_or_else(|| original.clone());
        if let Some(other) = map.insert(shown.clone(), original.clone()) {
            return Err(format!(
                "tool-rewrite: {kind}s `{other}` and `{original}` would both be shown as `{shown}`"
            ));
        }
    }
    Ok(map)
}

impl Rewrite {
    fn reshape(&self, item: &mut Value, rules: &BTreeMap<String, Rule>, tool: bool) {
        let Some(name) = item["name"].as_str().map(str::to_owned) else {
            return;
        };
        let Some(rule) = rules.get(&name) else { return };
        if let Some(n) = &rule.name {
            item["name"] = n.clone().into();
        }
        if let Some(t) = &rule.title {
            item["title"] = t.clone().into();
        }
        if let Some(d) = &rule.description {
            item["description"] = d.clone().into();
        }
        if !tool {
            return;
        }
        let schema = &mut item["inputSchema"];
        for param in rule.hide.keys() {
            if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
                props.remove(param);
            }
        }
        if let Some(required) = schema.get_mut("required").and_then(Value::as_array_mut) {
            required.retain(|r| {
                r.as_str()
                    .is_none_or(|r| !rule.hide.contains_key(r) && !rule.inject.contains_key(r))
            });
        }
        if !rule.annotations.is_empty() {
            if !item["annotations"].is_object() {
                item["annotations"] = Value::Object(Map::new());
            }
            if let Some(a) = item["annotations"].as_object_mut() {
                for (k, v) in &rule.annotations {
                    a.insert(k.clone(), v.clone());
                }
            }
        }
    }
}

impl Plugin for Rewrite {
    const HOOKS: Hooks = Hooks::REQUEST.union(Hooks::RESPONSE);
    const METHODS: &'static [&'static str] =
        &["tools/list", "tools/call", "prompts/list", "prompts/get"];

    fn configure(config: Value) -> Result<Self, String> {
        let config: Config =
            serde_json::from_value(config).map_err(|e| format!("tool-rewrite: {e}"))?;
        for (name, rule) in &config.prompts {
            if !rule.hide.is_empty() || !rule.inject.is_empty() || !rule.annotations.is_empty() {
                return Err(format!(
                    "tool-rewrite: prompt `{name}`: hide, inject and annotations apply to tools only"
                ));
            }
        }
        for (name, rule) in &config.tools {
            for (param, value) in &rule.inject {
                if let Some(from) = value.get("from").and_then(Value::as_str)
                    && from != "principal"
                    && !from.starts_with("attribute:")
                {
                    return Err(format!(
                        "tool-rewrite: tool `{name}` inject `{param}`: from must be `principal` or `attribute:NAME`, not `{from}`"
                    ));
                }
            }
        }
        let tool_origin = origins(&config.tools, "tool")?;
        let prompt_origin = origins(&config.prompts, "prompt")?;
        Ok(Rewrite {
            config,
            tool_origin,
            prompt_origin,
        })
    }

    fn on_request(&self, ctx: &Context, params: &Params) -> RequestDecision {
        let (rules, origin, kind) = match ctx.method.as_str() {
            "tools/call" => (&self.config.tools, &self.tool_origin, "tool"),
            "prompts/get" => (&self.config.prompts, &self.prompt_origin, "prompt"),
            _ => return RequestDecision::proceed(),
        };
        let Some(name) = ctx.target.as_deref() else {
            return RequestDecision::proceed();
        };
        let original = match origin.get(name) {
            Some(o) => o.clone(),
            // The old name of a renamed item does not exist here.
            None if rules
                .get(name)
                .is_some_and(|r| r.name.as_deref().is_some_and(|n| n != name)) =>
            {
                return Rejection::not_found(kind, name, ctx.era).into();
            }
            None => return RequestDecision::proceed(),
        };
        let rule = &rules[&original];
        if original == name && rule.hide.is_empty() && rule.inject.is_empty() {
            return RequestDecision::proceed();
        }
        let mut p = params.value().unwrap_or_else(|| Value::Object(Map::new()));
        p["name"] = original.into();
        if kind == "tool" {
            if !p["arguments"].is_object() {
                p["arguments"] = Value::Object(Map::new());
            }
            let args = p["arguments"]
                .as_object_mut()
                .expect("made an object above");
            for (k, v) in &rule.hide {
                args.insert(k.clone(), v.clone());
            }
            for (k, v) in &rule.inject {
                match resolve(v, ctx) {
                    Some(v) => {
                        args.insert(k.clone(), v);
                    }
                    None => {
                        args.remove(k);
                    }
                }
            }
        }
        Continuation::new().with_params(p).into()
    }

    fn on_response(&self, ctx: &Context, _params: &Params, outcome: &Outcome) -> ResponseDecision {
        let (field, rules, tool) = match ctx.method.as_str() {
            "tools/list" => ("tools", &self.config.tools, true),
            "prompts/list" => ("prompts", &self.config.prompts, false),
            _ => return ResponseDecision::Continue,
        };
        if rules.is_empty() {
            return ResponseDecision::Continue;
        }
        let Some(mut result) = outcome.result_value() else {
            return ResponseDecision::Continue;
        };
        if let Some(items) = result.get_mut(field).and_then(Value::as_array_mut) {
            for item in items.iter_mut() {
                self.reshape(item, rules, tool);
            }
        }
        ResponseDecision::Replace(result)
    }
}

switchyard_sdk::export!(Rewrite);

#[cfg(test)]
mod tests;
