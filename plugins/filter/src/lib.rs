//! `builtin:filter`: what a route may use and what comes back from it.
//! See README.md for every config key.
//!
//! - allow/deny lists (globs) for tools, prompts and resources: a denied
//!   item is absent from lists, and using it is answered as if it did not
//!   exist;
//! - argument rules: a regex denied on a named argument, or on any string
//!   argument (nested ones included);
//! - redaction: regex → replacement over the text a result carries, with
//!   built-in patterns for common secrets;
//! - a response size budget: truncate text with a marker, or reject.

use regex_lite::Regex;
use serde::Deserialize;
use switchyard_sdk::serde_json::{self, Value};
use switchyard_sdk::{
    Context, Description, Hooks, Outcome, Params, Plugin, Rejection, RequestDecision,
    ResponseDecision, codes, glob, kv, log, metrics,
};

/// Allow and deny globs for one kind of item.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Lists {
    /// If not empty, only matching names are allowed.
    #[serde(default)]
    allow: Vec<String>,
    /// Matching names are denied (after `allow`).
    #[serde(default)]
    deny: Vec<String>,
}

impl Lists {
    fn permits(&self, name: &str) -> bool {
        (self.allow.is_empty() || glob::any(&self.allow, name)) && !glob::any(&self.deny, name)
    }

    fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArgumentRule {
    #[serde(default = "star")]
    tool: String,
    #[serde(default = "star")]
    argument: String,
    deny: String,
}

fn star() -> String {
    "*".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRedaction {
    pattern: String,
    #[serde(default = "redacted")]
    replacement: String,
}

fn redacted() -> String {
    "[redacted]".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    tools: Lists,
    #[serde(default)]
    prompts: Lists,
    #[serde(default)]
    resources: Lists,
    #[serde(default)]
    arguments: Vec<RawArgumentRule>,
    #[serde(default)]
    redact: Vec<RawRedaction>,
    #[serde(default)]
    builtin_redactions: bool,
    max_response_bytes: Option<usize>,
    /// Check `tools/call` arguments against the tool's `inputSchema` (as
    /// the route's last `tools/list` showed it).
    #[serde(default)]
    validate_arguments: bool,
    #[serde(default = "truncate")]
    on_oversize: String,
}

fn truncate() -> String {
    "truncate".into()
}

struct ArgumentRule {
    tool: String,
    argument: String,
    deny: Regex,
}

/// Secrets worth redacting wherever they appear.
const BUILTIN_REDACTIONS: &[(&str, &str)] = &[
    // Authorization headers echoed back.
    (
        r"(?i)\bbearer\s+[A-Za-z0-9\-._~+/]{16,}=*",
        "Bearer [redacted]",
    ),
    // AWS access key ids.
    (r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", "[redacted aws key]"),
    // OpenAI/Anthropic/Stripe-style secret keys.
    (r"\b(?:sk|rk)-[A-Za-z0-9_\-]{20,}", "[redacted api key]"),
    // GitHub tokens.
    (r"\bgh[pousr]_[A-Za-z0-9]{36,}\b", "[redacted github token]"),
    // Slack tokens.
    (r"\bxox[baprs]-[A-Za-z0-9\-]{10,}", "[redacted slack token]"),
    // Google API keys.
    (r"\bAIza[0-9A-Za-z\-_]{35}\b", "[redacted google key]"),
    // PEM private key blocks.
    (
        r"(?s)-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----",
        "[redacted private key]",
    ),
];

pub struct Filter {
    config: Config,
    arguments: Vec<ArgumentRule>,
    redactions: Vec<(Regex, String)>,
}

/// What the filter does to a request's target.
fn kind_of(method: &str) -> Option<&'static str> {
    Some(match method {
        "tools/call" => "tool",
        "prompts/get" => "prompt",
        "resources/read" | "resources/subscribe" => "resource",
        _ => return None,
    })
}

impl Filter {
    fn lists(&self, kind: &str) -> &Lists {
        match kind {
            "tool" => &self.config.tools,
            "prompt" => &self.config.prompts,
            _ => &self.config.resources,
        }
    }

    /// The first argument that breaks a rule, if any.
    fn check_arguments(&self, tool: &str, arguments: &Value) -> Option<String> {
        let args = arguments.as_object()?;
        for rule in self
            .arguments
            .iter()
            .filter(|r| glob::matches(&r.tool, tool))
        {
            for (name, value) in args {
                if glob::matches(&rule.argument, name)
                    && any_string(value, &|s| rule.deny.is_match(s))
                {
                    return Some(name.clone());
                }
            }
        }
        None
    }

    /// Redacts every string of the result's content; returns the count.
    fn redact(&self, result: &mut Value) -> usize {
        let mut count = 0;
        for key in ["content", "structuredContent", "contents", "messages"] {
            if let Some(v) = result.get_mut(key) {
                for_each_string(v, &mut |s| {
                    for (re, replacement) in &self.redactions {
                        let n = re.find_iter(s).count();
                        if n > 0 {
                            *s = re.replace_all(s, replacement.as_str()).into_owned();
                            count += n;
                        }
                    }
                });
            }
        }
        count
    }
}

fn schema_key(route: &str, tool: &str) -> String {
    format!("schema|{route}|{tool}")
}

/// Whether any string in `v` (recursively) satisfies `f`.
fn any_string(v: &Value, f: &dyn Fn(&str) -> bool) -> bool {
    match v {
        Value::String(s) => f(s),
        Value::Array(a) => a.iter().any(|x| any_string(x, f)),
        Value::Object(m) => m.values().any(|x| any_string(x, f)),
        _ => false,
    }
}

fn for_each_string(v: &mut Value, f: &mut dyn FnMut(&mut String)) {
    match v {
        Value::String(s) => f(s),
        Value::Array(a) => a.iter_mut().for_each(|x| for_each_string(x, f)),
        Value::Object(m) => m.values_mut().for_each(|x| for_each_string(x, f)),
        _ => {}
    }
}

/// Cuts the longest text fields until `result` fits `max` bytes, each with a
/// marker. `false` if it cannot fit (e.g. large binary content).
fn truncate_to(result: &mut Value, max: usize) -> bool {
    for _ in 0..64 {
        let size = result.to_string().len();
        if size <= max {
            return true;
        }
        let excess = size - max;
        // The longest `text` field anywhere in the result.
        let mut longest = None;
        longest_text(result, "", &mut longest);
        let Some(text) = longest
            .and_then(|(at, _)| result.pointer_mut(&at))
            .and_then(|v| match v {
                Value::String(s) => Some(s),
                _ => None,
            })
        else {
            return false;
        };
        let marker = format!("…[truncated by the gateway: {} bytes]", excess);
        // Cut the excess, the marker and a little slack for JSON escaping.
        let keep = text.len().saturating_sub(excess + marker.len() + 16);
        if keep == 0 && text.len() <= marker.len() {
            return false;
        }
        let mut cut = keep;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str(&marker);
    }
    false
}

/// The JSON pointer of the longest `text` string in `v`, and its length.
fn longest_text(v: &Value, at: &str, best: &mut Option<(String, usize)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let here = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                match x {
                    Value::String(s) if k == "text" => {
                        if best.as_ref().is_none_or(|(_, len)| s.len() > *len) {
                            *best = Some((here, s.len()));
                        }
                    }
                    other => longest_text(other, &here, best),
                }
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                longest_text(x, &format!("{at}/{i}"), best);
            }
        }
        _ => {}
    }
}

impl Plugin for Filter {
    const HOOKS: Hooks = Hooks::REQUEST.union(Hooks::RESPONSE);

    fn configure(config: Value) -> Result<Self, String> {
        let config: Config = serde_json::from_value(config).map_err(|e| format!("filter: {e}"))?;
        if !["truncate", "reject"].contains(&config.on_oversize.as_str()) {
            return Err(format!(
                "filter: on_oversize must be `truncate` or `reject`, not `{}`",
                config.on_oversize
            ));
        }
        let arguments = config
            .arguments
            .iter()
            .map(|r| {
                Regex::new(&r.deny)
                    .map(|deny| ArgumentRule {
                        tool: r.tool.clone(),
                        argument: r.argument.clone(),
                        deny,
                    })
                    .map_err(|e| format!("filter: arguments rule `{}`: {e}", r.deny))
            })
            .collect::<Result<_, _>>()?;
        let mut redactions = Vec::new();
        for r in &config.redact {
            let re = Regex::new(&r.pattern)
                .map_err(|e| format!("filter: redact pattern `{}`: {e}", r.pattern))?;
            redactions.push((re, r.replacement.clone()));
        }
        if config.builtin_redactions {
            for (p, r) in BUILTIN_REDACTIONS {
                redactions.push((
                    Regex::new(p).expect("built-in patterns compile"),
                    (*r).to_owned(),
                ));
            }
        }
        Ok(Filter {
            config,
            arguments,
            redactions,
        })
    }

    fn describe(&self) -> Description {
        let mut d = Description::of::<Self>();
        let mut methods: Vec<&str> = Vec::new();
        let c = &self.config;
        if !c.tools.is_empty() || !self.arguments.is_empty() || c.validate_arguments {
            methods.extend(["tools/call", "tools/list"]);
        }
        if !c.prompts.is_empty() {
            methods.extend(["prompts/get", "prompts/list"]);
        }
        if !c.resources.is_empty() {
            methods.extend(["resources/read", "resources/subscribe", "resources/list"]);
        }
        if !self.redactions.is_empty() || c.max_response_bytes.is_some() {
            methods.extend(["tools/call", "prompts/get", "resources/read"]);
        }
        methods.sort();
        methods.dedup();
        // Nothing configured: ask for nothing rather than everything.
        d.methods = if methods.is_empty() {
            vec!["-".into()]
        } else {
            methods.into_iter().map(str::to_owned).collect()
        };
        d
    }

    fn on_request(&self, ctx: &Context, params: &Params) -> RequestDecision {
        let (Some(kind), Some(name)) = (kind_of(&ctx.method), ctx.target.as_deref()) else {
            return RequestDecision::proceed();
        };
        if !self.lists(kind).permits(name) {
            return Rejection::not_found(kind, name, ctx.era).into();
        }
        if kind == "tool"
            && self.arguments.iter().any(|r| glob::matches(&r.tool, name))
            && let Some(p) = params.value()
            && let Some(arg) = self.check_arguments(name, &p["arguments"])
        {
            log::info(&format!("filter: argument `{arg}` of `{name}` refused"));
            metrics::counter("filter_refusals_total", 1, &[("reason", "argument")]);
            return Rejection::new(
                codes::INVALID_PARAMS,
                format!("argument `{arg}` of `{name}` is not allowed by policy"),
            )
            .into();
        }
        if kind == "tool"
            && self.config.validate_arguments
            && let Some(schema) = kv::get(&schema_key(&ctx.route, name))
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        {
            let args = params
                .value()
                .and_then(|p| p.get("arguments").cloned())
                .unwrap_or_else(|| Value::Object(Default::default()));
            if let Err(why) = schema::check(&schema, &args, "arguments") {
                metrics::counter("filter_refusals_total", 1, &[("reason", "schema")]);
                return Rejection::new(
                    codes::INVALID_PARAMS,
                    format!("the arguments of `{name}` do not match its inputSchema: {why}"),
                )
                .into();
            }
        }
        RequestDecision::proceed()
    }

    fn on_response(&self, ctx: &Context, _params: &Params, outcome: &Outcome) -> ResponseDecision {
        let Some(mut result) = outcome.result_value() else {
            return ResponseDecision::Continue;
        };
        let mut changed = false;
        let list = match ctx.method.as_str() {
            "tools/list" => Some(("tools", "name", "tool")),
            "prompts/list" => Some(("prompts", "name", "prompt")),
            "resources/list" => Some(("resources", "uri", "resource")),
            _ => None,
        };
        if let Some((field, key, kind)) = list {
            if kind == "tool" && self.config.validate_arguments {
                // Remember each tool's schema for the calls that follow.
                for tool in result[field].as_array().into_iter().flatten() {
                    if let (Some(n), Some(s)) = (tool["name"].as_str(), tool.get("inputSchema")) {
                        kv::set(&schema_key(&ctx.route, n), s.to_string().as_bytes(), None);
                    }
                }
            }
            if let Some(items) = result.get_mut(field).and_then(Value::as_array_mut) {
                let before = items.len();
                items.retain(|i| i[key].as_str().is_none_or(|n| self.lists(kind).permits(n)));
                changed = items.len() != before;
            }
            return if changed {
                ResponseDecision::Replace(result)
            } else {
                ResponseDecision::Continue
            };
        }
        let redacted = self.redact(&mut result);
        if redacted > 0 {
            log::info(&format!(
                "filter: redacted {redacted} match(es) in a {} result",
                ctx.method
            ));
            metrics::counter(
                "filter_redactions_total",
                redacted as u64,
                &[("method", &ctx.method)],
            );
            changed = true;
        }
        if let Some(max) = self.config.max_response_bytes
            && result.to_string().len() > max
        {
            metrics::counter(
                "filter_oversize_total",
                1,
                &[("action", &self.config.on_oversize)],
            );
            if self.config.on_oversize == "reject" || !truncate_to(&mut result, max) {
                return Rejection::new(
                    codes::INTERNAL_ERROR,
                    format!("the response exceeds this route's limit of {max} bytes"),
                )
                .into();
            }
            changed = true;
        }
        if changed {
            ResponseDecision::Replace(result)
        } else {
            ResponseDecision::Continue
        }
    }
}

switchyard_sdk::export!(Filter);

mod schema;

#[cfg(test)]
mod tests;
