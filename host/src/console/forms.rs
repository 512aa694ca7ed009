//! HTML forms → the admin operations' inputs, and their problems → the
//! field each concerns.

use std::collections::BTreeMap;

use axum::extract::Multipart;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::admin::ops::{Ops, Problem};
use crate::config::{RawPlugin, RawUpstream};

/// The upstream form: the common keys of `[upstreams.NAME]`, as text.
/// Keys the form does not show (restart, health, lazy, ...) are kept from
/// the upstream's current table when it is edited.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct UpstreamForm {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub command: String,
    /// One argument per line.
    #[serde(default)]
    pub args: String,
    /// `KEY=VALUE` per line.
    #[serde(default)]
    pub env: String,
    #[serde(default)]
    pub cwd: String,
    #[serde(default)]
    pub url: String,
    /// `Name: value` per line.
    #[serde(default)]
    pub headers: String,
    #[serde(default)]
    pub timeout: String,
}

impl UpstreamForm {
    /// The form filled from upstream `name`'s table as written (the config
    /// file with the state file over it), `${VAR}` references unexpanded.
    pub fn current(ops: &Ops, name: &str) -> UpstreamForm {
        let raw = current_raw(ops, name).unwrap_or_default();
        UpstreamForm {
            name: name.to_owned(),
            command: raw.command.unwrap_or_default(),
            args: raw.args.join("\n"),
            env: raw
                .env
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("\n"),
            cwd: raw.cwd.unwrap_or_default(),
            url: raw.url.unwrap_or_default(),
            headers: raw
                .headers
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join("\n"),
            timeout: match raw.timeout {
                Some(crate::config::raw::Duration::Seconds(s)) => s.to_string(),
                Some(crate::config::raw::Duration::Text(t)) => t,
                None => String::new(),
            },
        }
    }

    /// The upstream table this form describes, over `base` (the current
    /// table when editing). A line that does not parse is a problem on its
    /// field.
    pub fn to_raw(&self, base: Option<RawUpstream>) -> Result<RawUpstream, Problem> {
        let name = self.name.trim();
        let field = |f: &str, message: String| Problem {
            key: Some(format!("upstreams.{name}.{f}")),
            ..Problem::new(StatusCode::BAD_REQUEST, message)
        };
        let mut table = match base.map(serde_json::to_value) {
            Some(Ok(Value::Object(m))) => m,
            _ => Map::new(),
        };
        let mut set = |key: &str, v: Option<Value>| match v {
            Some(v) => {
                table.insert(key.to_owned(), v);
            }
            None => {
                table.remove(key);
            }
        };
        let text = |s: &str| Some(s.trim()).filter(|s| !s.is_empty()).map(|s| json!(s));
        set("command", text(&self.command));
        set("cwd", text(&self.cwd));
        set("url", text(&self.url));
        let args: Vec<&str> = lines(&self.args).collect();
        set("args", Some(json!(args)));
        let mut env = Map::new();
        for line in lines(&self.env) {
            let Some((k, v)) = line.split_once('=').filter(|(k, _)| !k.trim().is_empty()) else {
                return Err(field("env", format!("`{line}`: expected KEY=VALUE")));
            };
            env.insert(k.trim().to_owned(), json!(v));
        }
        set("env", Some(Value::Object(env)));
        let mut headers = Map::new();
        for line in lines(&self.headers) {
            let Some((k, v)) = line.split_once(':').filter(|(k, _)| !k.trim().is_empty()) else {
                return Err(field("headers", format!("`{line}`: expected Name: value")));
            };
            headers.insert(k.trim().to_owned(), json!(v.trim()));
        }
        set("headers", Some(Value::Object(headers)));
        let timeout = self.timeout.trim();
        set(
            "timeout",
            match timeout.parse::<u64>() {
                Ok(n) => Some(json!(n)),
                Err(_) => text(timeout),
            },
        );
        RawUpstream::deserialize(Value::Object(table))
            .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, e.to_string()))
    }
}

/// The upstream's table as written, if the config (or the state file) has one.
pub fn current_raw(ops: &Ops, name: &str) -> Option<RawUpstream> {
    let source = ops.gateway().config().source;
    crate::config::load_raw(source.as_deref())
        .ok()?
        .upstreams
        .remove(name)
}

fn lines(s: &str) -> impl Iterator<Item = &str> {
    s.lines().map(str::trim).filter(|l| !l.is_empty())
}

/// Problems by form field (`command`, `url`, ...); the rest is `general`.
#[derive(Debug, Clone, Default)]
pub struct FieldErrors {
    by_field: BTreeMap<String, String>,
    pub general: Option<String>,
}

/// The fields an upstream problem can be shown beside.
const FIELDS: [&str; 7] = ["command", "args", "env", "cwd", "url", "headers", "timeout"];

impl FieldErrors {
    /// Puts `p` beside the field its key names (`upstreams.NAME.FIELD…`),
    /// else above the form.
    pub fn from_problem(p: &Problem, name: &str) -> Self {
        let prefix = format!("upstreams.{name}.");
        let field = p
            .key
            .as_deref()
            .and_then(|k| k.strip_prefix(&prefix))
            .map(|rest| rest.split(['.', '[']).next().unwrap_or(rest))
            .filter(|f| FIELDS.contains(f));
        let mut out = FieldErrors::default();
        match field {
            Some(f) => {
                out.by_field.insert(f.to_owned(), p.message.clone());
            }
            None => out.general = Some(p.message.clone()),
        }
        out
    }

    pub fn get(&self, field: &str) -> Option<&str> {
        self.by_field.get(field).map(String::as_str)
    }
}

/// The new-plugin form (multipart: it may carry a `.wasm` file).
#[derive(Debug, Default)]
pub struct PluginForm {
    pub name: String,
    /// `builtin:NAME`, or empty when a file is uploaded.
    pub builtin: String,
    pub wasm: Vec<u8>,
    pub config: String,
    pub failure: String,
    /// Append the new instance to this route's chain.
    pub route: Option<String>,
}

impl PluginForm {
    pub async fn read(mut multipart: Multipart) -> Result<PluginForm, String> {
        let mut form = PluginForm::default();
        while let Some(field) = multipart.next_field().await.map_err(|e| e.body_text())? {
            let name = field.name().unwrap_or("").to_owned();
            let bytes = field.bytes().await.map_err(|e| e.body_text())?;
            let text = || String::from_utf8_lossy(&bytes).trim().to_owned();
            match name.as_str() {
                "name" => form.name = text(),
                "builtin" => form.builtin = text(),
                "wasm" => form.wasm = bytes.to_vec(),
                "config" => form.config = text(),
                "failure" => form.failure = text(),
                "route" => form.route = Some(text()),
                _ => {}
            }
        }
        Ok(form)
    }

    /// The plugin table: a built-in, or the uploaded file stored by `ops`.
    pub fn to_raw(&self, ops: &Ops) -> Result<RawPlugin, Problem> {
        let bad = |m: String| Problem::new(StatusCode::BAD_REQUEST, m);
        let component = match (self.builtin.as_str(), self.wasm.is_empty()) {
            ("", true) => {
                return Err(bad(
                    "pick a built-in component or upload a .wasm file".into()
                ));
            }
            ("", false) => ops.store_component(&self.wasm)?.display().to_string(),
            (b, true) => b.to_owned(),
            (_, false) => return Err(bad("pick a built-in or upload a file, not both".into())),
        };
        let config = match self.config.as_str() {
            "" => None,
            text => match serde_json::from_str::<Value>(text) {
                Ok(v @ Value::Object(_)) => Some(v),
                Ok(_) => return Err(bad("config: expected a JSON object".into())),
                Err(e) => return Err(bad(format!("config: {e}"))),
            },
        };
        Ok(RawPlugin {
            component,
            config,
            failure: Some(self.failure.clone()).filter(|f| !f.is_empty()),
            ..RawPlugin::default()
        })
    }
}

/// A tool's arguments from the explorer's "try it" form: field `arg.NAME`
/// per property of `schema`, typed by the property's `type`.
pub fn arguments(schema: &Value, fields: &[(String, String)]) -> Result<Value, String> {
    let given = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k.strip_prefix("arg.") == Some(name))
            .map(|(_, v)| v.trim())
    };
    let mut out = Map::new();
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return Ok(Value::Object(out));
    };
    for (name, prop) in props {
        let kind = property_kind(prop);
        let value = match (kind, given(name)) {
            ("checkbox", v) => Some(json!(v.is_some_and(|v| v == "on" || v == "true"))),
            (_, None | Some("")) => None,
            ("string", Some(v)) => Some(json!(v)),
            ("integer", Some(v)) => Some(json!(
                v.parse::<i64>()
                    .map_err(|_| format!("`{name}`: expected a whole number"))?
            )),
            ("number", Some(v)) => Some(json!(
                v.parse::<f64>()
                    .map_err(|_| format!("`{name}`: expected a number"))?
            )),
            (_, Some(v)) => Some(
                serde_json::from_str(v).map_err(|e| format!("`{name}`: expected JSON ({e})"))?,
            ),
        };
        if let Some(v) = value {
            out.insert(name.clone(), v);
        }
    }
    Ok(Value::Object(out))
}

/// How a schema property is entered: `string`, `integer`, `number`,
/// `checkbox` (booleans) or `json` (anything else).
pub fn property_kind(prop: &Value) -> &'static str {
    match prop.get("type").and_then(Value::as_str) {
        Some("string") => "string",
        Some("integer") => "integer",
        Some("number") => "number",
        Some("boolean") => "checkbox",
        _ => "json",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upstream_form_becomes_a_table_and_keeps_what_it_does_not_show() {
        let form = UpstreamForm {
            name: "a".into(),
            command: " demo ".into(),
            args: "one\n\n two \n".into(),
            env: "K=v=w\n".into(),
            timeout: "30s".into(),
            ..UpstreamForm::default()
        };
        let base = RawUpstream {
            lazy: Some(true),
            url: Some("http://old".into()),
            ..RawUpstream::default()
        };
        let raw = form.to_raw(Some(base)).unwrap();
        assert_eq!(raw.command.as_deref(), Some("demo"));
        assert_eq!(raw.args, ["one", "two"]);
        assert_eq!(raw.env["K"], "v=w");
        assert_eq!(raw.lazy, Some(true));
        assert_eq!(raw.url, None, "an emptied field is removed");
        assert!(
            matches!(raw.timeout, Some(crate::config::raw::Duration::Text(ref t)) if t == "30s")
        );
    }

    #[test]
    fn a_bad_line_is_a_problem_on_its_field() {
        let form = UpstreamForm {
            name: "a".into(),
            env: "NOEQUALS".into(),
            ..UpstreamForm::default()
        };
        let p = form.to_raw(None).unwrap_err();
        let errors = FieldErrors::from_problem(&p, "a");
        assert!(errors.get("env").unwrap().contains("KEY=VALUE"));
        assert!(errors.general.is_none());
        let other = Problem::new(StatusCode::BAD_REQUEST, "whole");
        assert_eq!(
            FieldErrors::from_problem(&other, "a").general.as_deref(),
            Some("whole")
        );
    }

    #[test]
    fn arguments_follow_the_schema() {
        let schema = json!({"properties": {
            "s": {"type": "string"}, "i": {"type": "integer"}, "n": {"type": "number"},
            "b": {"type": "boolean"}, "o": {"type": "object"}, "skip": {"type": "string"}
        }});
        let f = |k: &str, v: &str| (format!("arg.{k}"), v.to_owned());
        let fields = [
            f("s", "hi"),
            f("i", "3"),
            f("n", "2.5"),
            f("o", r#"{"a":1}"#),
            f("skip", ""),
        ];
        assert_eq!(
            arguments(&schema, &fields).unwrap(),
            json!({"s": "hi", "i": 3, "n": 2.5, "b": false, "o": {"a": 1}})
        );
        assert!(
            arguments(&schema, &[f("i", "x")])
                .unwrap_err()
                .contains("`i`")
        );
    }
}
