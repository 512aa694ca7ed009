//! Other tools' MCP server lists → a Switchyard configuration (tooling for
//! `switchyard import`; not on the request path).
//!
//! [`claude_desktop`] reads the `mcpServers` object of a
//! `claude_desktop_config.json` (the format Claude Desktop, Claude Code's
//! `.mcp.json`, Cursor and others share) and returns an [`Imported`]: the TOML
//! text of one `[upstreams.NAME]` per enabled server and one `/mcp` route
//! over all of them, plus [`Imported::notes`] saying what was renamed,
//! skipped or ignored. Anything that cannot become an upstream is an
//! [`ImportError`] naming the file and the server.
//!
//! Values are copied verbatim: `${VAR}` stays `${VAR}`, for the gateway to
//! interpolate when it loads the file. The TOML is written by `toml` through
//! serde, so quoting and escaping are the crate's, not ours.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::config::UpstreamName;

/// The route every imported upstream is served on.
const ROUTE_PATH: &str = "/mcp";

/// The longest upstream name [`UpstreamName::parse`] accepts.
const MAX_NAME_LEN: usize = 64;

/// The keys of a server entry that have a Switchyard equivalent (or, for
/// `type` and `disabled`, are acted on here). Others are noted and dropped.
const KNOWN_KEYS: [&str; 8] = [
    "command", "args", "env", "cwd", "url", "headers", "type", "disabled",
];

/// An import's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    /// The configuration: a header comment (where it came from, and the
    /// notes), then the TOML document. Ends with a newline.
    pub toml: String,
    /// What the import renamed, skipped or ignored, one line each, for
    /// stderr. Also in the header comment.
    pub notes: Vec<String>,
}

/// Why a file cannot be imported. Every variant names the file (`origin`);
/// one that concerns a server also names the server.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not JSON, or JSON that is not an object.
    #[error("{origin}: not a JSON object: {source}")]
    Json {
        origin: String,
        #[source]
        source: serde_json::Error,
    },
    /// No `mcpServers` object at the top level.
    #[error(
        "{origin}: {reason} (expected {{\"mcpServers\": {{\"NAME\": {{\"command\": …}} or {{\"url\": …}}}}}})"
    )]
    NoServers { origin: String, reason: String },
    /// One server entry cannot become an upstream.
    #[error("{origin}: server {server:?}: {reason}")]
    Server {
        origin: String,
        server: String,
        reason: String,
    },
    /// The TOML could not be written (not expected: every value is a string).
    #[error("{origin}: cannot write the configuration: {source}")]
    Write {
        origin: String,
        #[source]
        source: toml::ser::Error,
    },
    /// Every server is disabled (or there is none): a route needs an upstream.
    #[error("{origin}: no server to import ({disabled} disabled)")]
    Empty { origin: String, disabled: usize },
}

/// Reads and imports the Claude Desktop configuration at `path`.
pub fn claude_desktop_file(path: &Path) -> Result<Imported, ImportError> {
    let json = std::fs::read_to_string(path).map_err(|source| ImportError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    claude_desktop(&json, &path.display().to_string())
}

/// Imports a Claude Desktop configuration; `origin` (the file it came from)
/// goes into the header comment and every error.
pub fn claude_desktop(json: &str, origin: &str) -> Result<Imported, ImportError> {
    let file: DesktopFile = serde_json::from_str(json).map_err(|source| ImportError::Json {
        origin: origin.to_owned(),
        source,
    })?;
    let no_servers = |reason: &str| ImportError::NoServers {
        origin: origin.to_owned(),
        reason: reason.to_owned(),
    };
    let servers = file
        .mcp_servers
        .ok_or_else(|| no_servers("no `mcpServers` object"))?;
    let Servers(servers) = serde_json::from_str(servers.get())
        .map_err(|_| no_servers("`mcpServers` is not an object"))?;
    let server_error = |server: &str, reason: String| ImportError::Server {
        origin: origin.to_owned(),
        server: server.to_owned(),
        reason,
    };

    let mut notes = Vec::new();
    let mut seen = HashSet::new();
    let mut enabled = Vec::with_capacity(servers.len());
    let mut disabled = 0;
    for (name, entry) in &servers {
        if !seen.insert(name.as_str()) {
            return Err(server_error(name, "defined twice in `mcpServers`".into()));
        }
        let mut ignored = Vec::new();
        let parsed = upstream(entry, &mut |key| ignored.push(key.to_owned()));
        for key in ignored {
            notes.push(format!(
                "server {name:?}: ignored {key:?} (no Switchyard equivalent)"
            ));
        }
        match parsed {
            Ok(Some(up)) => enabled.push((name.as_str(), up)),
            Ok(None) => {
                disabled += 1;
                notes.push(format!("skipped server {name:?}: it is disabled"));
            }
            Err(reason) => return Err(server_error(name, reason)),
        }
    }
    if enabled.is_empty() {
        return Err(ImportError::Empty {
            origin: origin.to_owned(),
            disabled,
        });
    }

    // Names that are valid already keep them; the others get a sanitized
    // name that none of those (nor an earlier rename) has.
    let mut taken: HashSet<String> = enabled
        .iter()
        .filter(|(n, _)| UpstreamName::parse(n).is_ok())
        .map(|(n, _)| (*n).to_owned())
        .collect();
    let mut upstreams = Vec::with_capacity(enabled.len());
    for (name, up) in enabled {
        let upstream_name = if UpstreamName::parse(name).is_ok() {
            name.to_owned()
        } else {
            let renamed = unique(&sanitize(name), &taken);
            taken.insert(renamed.clone());
            notes.push(format!(
                "renamed server {name:?} to upstream {renamed:?} (its tools become {renamed}__TOOL)"
            ));
            renamed
        };
        debug_assert!(UpstreamName::parse(&upstream_name).is_ok());
        upstreams.push((upstream_name, up));
    }

    let document = Document {
        routes: vec![Route {
            path: ROUTE_PATH,
            upstreams: upstreams.iter().map(|(n, _)| n.clone()).collect(),
        }],
        upstreams: InOrder(upstreams),
    };
    let body = toml::to_string(&document).map_err(|source| ImportError::Write {
        origin: origin.to_owned(),
        source,
    })?;
    let mut text = String::new();
    let mut comment = |line: &str| {
        text.push_str(&comment_line(line));
        text.push('\n');
    };
    comment(&format!(
        "Switchyard configuration imported from {origin:?} by `switchyard import claude-desktop`."
    ));
    comment("Check it with `switchyard validate --config FILE`. `${VAR}` in a value is read");
    comment("from the environment when the gateway loads this file.");
    if !notes.is_empty() {
        comment("");
        for note in &notes {
            comment(note);
        }
    }
    text.push('\n');
    text.push_str(&body);
    Ok(Imported { toml: text, notes })
}

/// `# line`, with control characters (a newline would end the comment)
/// shown as `?`.
fn comment_line(line: &str) -> String {
    let clean: String = line
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if clean.is_empty() {
        "#".to_owned()
    } else {
        format!("# {clean}")
    }
}

/// One server entry → an upstream table; `None` when it is disabled.
/// `ignored` hears each key that has no equivalent.
fn upstream(entry: &Value, ignored: &mut dyn FnMut(&str)) -> Result<Option<Upstream>, String> {
    let Some(obj) = entry.as_object() else {
        return Err(
            "expected an object with `command` (a stdio server) or `url` (a remote server)".into(),
        );
    };
    // A disabled entry is skipped before anything else is checked: it may
    // well be half-written.
    match obj.get("disabled") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => return Ok(None),
        Some(other) => return Err(format!("`disabled` must be true or false, not {other}")),
    }
    for key in obj.keys().filter(|k| !KNOWN_KEYS.contains(&k.as_str())) {
        ignored(key);
    }
    let text = |key: &str| -> Result<Option<String>, String> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Err(format!("`{key}` is empty")),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(format!("`{key}` must be a string, not {other}")),
        }
    };
    let command = text("command")?;
    let url = text("url")?;
    let cwd = text("cwd")?;
    let kind = text("type")?;
    let args = match obj.get("args") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, a)| match a {
                Value::String(s) => Ok(s.clone()),
                other => Err(format!("`args[{i}]` must be a string, not {other}")),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(format!("`args` must be an array of strings, not {other}")),
    };
    let env = string_map(obj.get("env"), "env")?;
    let headers = string_map(obj.get("headers"), "headers")?;

    let remote = match (kind.as_deref(), &command, &url) {
        (Some("stdio"), Some(_), None) => false,
        (Some("stdio"), None, _) => {
            return Err("`type` is \"stdio\" but there is no `command`".into());
        }
        (Some("stdio"), Some(_), Some(_)) => {
            return Err("`type` is \"stdio\" but `url` is set too".into());
        }
        (Some("http" | "streamable-http" | "sse"), None, Some(_)) => true,
        (Some(t @ ("http" | "streamable-http" | "sse")), _, None) => {
            return Err(format!("`type` is {t:?} but there is no `url`"));
        }
        (Some(t @ ("http" | "streamable-http" | "sse")), Some(_), Some(_)) => {
            return Err(format!("`type` is {t:?} but `command` is set too"));
        }
        (Some(other), _, _) => {
            return Err(format!(
                "`type` {other:?} is not one of \"stdio\", \"http\", \"streamable-http\", \"sse\""
            ));
        }
        (None, Some(_), None) => false,
        (None, None, Some(_)) => true,
        (None, Some(_), Some(_)) => {
            return Err("has both `command` and `url`; a server is one or the other".into());
        }
        (None, None, None) => {
            return Err(
                "has neither `command` (a stdio server) nor `url` (a remote server)".into(),
            );
        }
    };
    // Switchyard rejects the other transport's keys; say so here, naming
    // the server, rather than write a file that does not validate.
    let misplaced = if remote {
        [
            ("args", !args.is_empty()),
            ("env", !env.is_empty()),
            ("cwd", cwd.is_some()),
        ]
        .into_iter()
        .find(|(_, set)| *set)
        .map(|(key, _)| {
            format!("`{key}` applies to `command` servers only, and this one has a `url`")
        })
    } else {
        (!headers.is_empty()).then(|| {
            "`headers` apply to `url` servers only, and this one has a `command`".to_owned()
        })
    };
    if let Some(reason) = misplaced {
        return Err(reason);
    }
    Ok(Some(Upstream {
        command,
        args,
        cwd,
        env,
        url,
        headers,
    }))
}

/// An object of string values (`env`, `headers`); absent or null is empty.
fn string_map(value: Option<&Value>, key: &str) -> Result<BTreeMap<String, String>, String> {
    match value {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                other => Err(format!("`{key}.{k}` must be a string, not {other}")),
            })
            .collect(),
        Some(other) => Err(format!("`{key}` must be an object of strings, not {other}")),
    }
}

/// A name [`UpstreamName::parse`] accepts, as close to `name` as may be:
/// each disallowed character becomes `-`, runs of `-` or `_` become one
/// (`__` separates upstream and tool), the ends are trimmed to letters and
/// digits, and the result is cut at 64 characters. `server` when nothing is
/// left.
fn sanitize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        let c = if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
            c
        } else {
            '-'
        };
        if matches!(c, '-' | '_') && out.ends_with(c) {
            continue;
        }
        out.push(c);
    }
    // ASCII only from here, so byte lengths are character counts.
    let trimmed = out.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    let cut = trim_end(&trimmed[..trimmed.len().min(MAX_NAME_LEN)]);
    if cut.is_empty() {
        "server".to_owned()
    } else {
        cut.to_owned()
    }
}

/// `base`, or `base-2`, `base-3`, … (cut to fit 64 characters): the first
/// that is not `taken`. `base` is a valid name.
fn unique(base: &str, taken: &HashSet<String>) -> String {
    if !taken.contains(base) {
        return base.to_owned();
    }
    (2..)
        .map(|n| {
            let suffix = format!("-{n}");
            let keep = base.len().min(MAX_NAME_LEN - suffix.len());
            format!("{}{suffix}", trim_end(&base[..keep]))
        })
        .find(|candidate| !taken.contains(candidate))
        .expect("an unbounded range has a free suffix")
}

fn trim_end(s: &str) -> &str {
    s.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
}

/// The part of the JSON file read here; other top-level keys (Claude
/// Desktop's `globalShortcut`, …) are not our business.
#[derive(Deserialize)]
struct DesktopFile {
    /// Kept raw, to be read in file order by [`Servers`].
    #[serde(rename = "mcpServers")]
    mcp_servers: Option<Box<RawValue>>,
}

/// `mcpServers` in file order, so upstreams and the route list keep the
/// order the user wrote (a JSON map would sort them), and a name given twice
/// is seen rather than silently dropped.
struct Servers(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Servers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct InOrderVisitor;
        impl<'de> Visitor<'de> for InOrderVisitor {
            type Value = Servers;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of server entries")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Servers, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    entries.push(entry);
                }
                Ok(Servers(entries))
            }
        }
        d.deserialize_map(InOrderVisitor)
    }
}

/// The TOML document written.
#[derive(Serialize)]
struct Document {
    upstreams: InOrder<Upstream>,
    routes: Vec<Route>,
}

/// `[upstreams.NAME]`: the keys of `config::raw::RawUpstream` that an entry
/// can fill; empty ones are left out.
#[derive(Debug, Serialize)]
struct Upstream {
    #[serde(skip_serializing_if = "Option::is_none")]
    command: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    args: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cwd: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    env: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    headers: BTreeMap<String, String>,
}

/// `[[routes]]`
#[derive(Serialize)]
struct Route {
    path: &'static str,
    upstreams: Vec<String>,
}

/// A map serialized in the order given.
struct InOrder<T>(Vec<(String, T)>);

impl<T: Serialize> Serialize for InOrder<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::{Config, Transport, from_toml_str};

    const ORIGIN: &str = "/home/ada/claude_desktop_config.json";

    /// Validates the import as Switchyard would load it, with `TOKEN` set.
    fn load(imported: &Imported) -> Config {
        let vars = HashMap::from([("TOKEN".to_owned(), "t0k".to_owned())]);
        from_toml_str(
            &imported.toml,
            Path::new("/etc/switchyard/imported.toml"),
            &vars,
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", imported.toml))
    }

    fn names(c: &Config) -> Vec<&str> {
        c.routes[0].upstreams.iter().map(|u| u.as_str()).collect()
    }

    fn error(json: &str) -> String {
        claude_desktop(json, ORIGIN).unwrap_err().to_string()
    }

    #[test]
    fn round_trip_through_config_validation() {
        let json = r#"{
            "globalShortcut": "Ctrl+Space",
            "mcpServers": {
                "zeta": {
                    "command": "npx",
                    "args": ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"],
                    "env": {"API_KEY": "${TOKEN}", "PLAIN": "a $ b"},
                    "cwd": "/"
                },
                "docs": {"type": "http", "url": "https://mcp.example.com/mcp",
                         "headers": {"Authorization": "Bearer ${TOKEN}"}},
                "legacy": {"type": "sse", "url": "http://127.0.0.1:9/sse"},
                "modern": {"type": "streamable-http", "url": "http://127.0.0.1:9/mcp"},
                "typed": {"type": "stdio", "command": "uvx", "args": ["mcp-server-time"]}
            }
        }"#;
        let imported = claude_desktop(json, ORIGIN).unwrap();
        assert!(imported.notes.is_empty(), "{:?}", imported.notes);
        assert!(
            imported.toml.starts_with(&format!(
                "# Switchyard configuration imported from {ORIGIN:?}"
            )),
            "{}",
            imported.toml
        );
        let c = load(&imported);
        assert_eq!(c.routes.len(), 1);
        assert_eq!(c.routes[0].path.as_str(), "/mcp");
        // The route lists the servers in file order.
        assert_eq!(names(&c), ["zeta", "docs", "legacy", "modern", "typed"]);
        let zeta = c
            .upstreams
            .iter()
            .find(|u| u.name.as_str() == "zeta")
            .unwrap();
        let Transport::Stdio {
            command,
            args,
            env,
            cwd,
        } = &zeta.transport
        else {
            panic!("zeta is stdio")
        };
        assert_eq!(command, "npx");
        assert_eq!(args[1], "@modelcontextprotocol/server-filesystem");
        assert_eq!(
            env,
            &[
                ("API_KEY".to_owned(), "t0k".to_owned()),
                ("PLAIN".to_owned(), "a $ b".to_owned())
            ]
        );
        assert_eq!(cwd.as_deref(), Some(Path::new("/")));
        let docs = c
            .upstreams
            .iter()
            .find(|u| u.name.as_str() == "docs")
            .unwrap();
        let Transport::Http { url, headers } = &docs.transport else {
            panic!("docs is remote")
        };
        assert_eq!(url.as_str(), "https://mcp.example.com/mcp");
        assert_eq!(
            headers,
            &[("Authorization".to_owned(), "Bearer t0k".to_owned())]
        );
    }

    #[test]
    fn values_are_copied_verbatim() {
        let tricky = "quote \" backslash \\ newline \n tab \t ${TOKEN} $${x} $HOME \u{7f} é";
        let json = serde_json::json!({"mcpServers": {"s": {
            "command": tricky, "args": [tricky], "env": {"K": tricky}
        }}})
        .to_string();
        let imported = claude_desktop(&json, ORIGIN).unwrap();
        let doc: toml::Table = toml::from_str(&imported.toml).unwrap();
        let s = &doc["upstreams"]["s"];
        assert_eq!(s["command"].as_str(), Some(tricky));
        assert_eq!(s["args"][0].as_str(), Some(tricky));
        assert_eq!(s["env"]["K"].as_str(), Some(tricky));
    }

    #[test]
    fn invalid_names_are_sanitized_and_made_unique() {
        let long = "x".repeat(70);
        let json = serde_json::json!({"mcpServers": {
            "my server": {"command": "a"},
            "my-server": {"command": "b"},
            "my/server": {"command": "c"},
            "a__b": {"command": "d"},
            "_under_": {"command": "e"},
            "ünïcode": {"command": "f"},
            "???": {"command": "g"},
            "dotted.name": {"command": "h"},
            "\nnew\nline": {"command": "i"},
            long.clone(): {"command": "j"},
        }})
        .to_string();
        let imported = claude_desktop(&json, ORIGIN).unwrap();
        let c = load(&imported);
        let mut got = names(&c);
        got.sort_unstable();
        let mut want = vec![
            "my-server-2",
            "my-server",
            "my-server-3",
            "a_b",
            "under",
            "n-code",
            "server",
            "dotted.name",
            "new-line",
        ];
        let cut = "x".repeat(64);
        want.push(&cut);
        want.sort_unstable();
        assert_eq!(got, want);
        // Each rename is a note, and a comment in the file.
        assert_eq!(imported.notes.len(), 8, "{:?}", imported.notes);
        for note in &imported.notes {
            assert!(note.starts_with("renamed server "), "{note}");
        }
        assert!(
            imported
                .toml
                .contains("# renamed server \"my server\" to upstream \"my-server-2\""),
            "{}",
            imported.toml
        );
        // A name with a newline is escaped in its note, so the comment stays one line.
        assert!(imported.toml.contains(r#"server "\nnew\nline""#));
        // The file still parses: every comment line is a comment.
        toml::from_str::<toml::Table>(&imported.toml).unwrap();
        let renamed_long = imported.notes.iter().find(|n| n.contains(&long)).unwrap();
        assert!(renamed_long.contains(&format!("{cut:?}")), "{renamed_long}");
    }

    #[test]
    fn sanitize_and_unique_keep_names_valid() {
        for name in ["-a-", "a_", "a__", "._x", "a b c", "é", "", "0", "a..b"] {
            let s = sanitize(name);
            assert!(UpstreamName::parse(&s).is_ok(), "{name:?} → {s:?}");
        }
        let base = "y".repeat(64);
        let taken = HashSet::from([base.clone(), format!("{}-2", "y".repeat(62))]);
        let u = unique(&base, &taken);
        assert_eq!(u, format!("{}-3", "y".repeat(62)));
        assert!(UpstreamName::parse(&u).is_ok());
    }

    #[test]
    fn disabled_servers_are_skipped_with_a_note() {
        let json = r#"{"mcpServers": {
            "on": {"command": "a", "disabled": false},
            "off": {"command": "b", "disabled": true},
            "half-written": {"disabled": true}
        }}"#;
        let imported = claude_desktop(json, ORIGIN).unwrap();
        assert_eq!(names(&load(&imported)), ["on"]);
        assert_eq!(
            imported.notes,
            [
                "skipped server \"off\": it is disabled",
                "skipped server \"half-written\": it is disabled"
            ]
        );
        assert!(
            imported
                .toml
                .contains("# skipped server \"off\": it is disabled")
        );
        assert!(!imported.toml.contains("[upstreams.off]"));
    }

    #[test]
    fn unknown_keys_are_noted_and_dropped() {
        let json = r#"{"mcpServers": {"s": {"command": "a", "autoApprove": ["x"], "timeout": 5}}}"#;
        let imported = claude_desktop(json, ORIGIN).unwrap();
        assert_eq!(
            imported.notes,
            [
                "server \"s\": ignored \"autoApprove\" (no Switchyard equivalent)",
                "server \"s\": ignored \"timeout\" (no Switchyard equivalent)"
            ]
        );
        load(&imported);
    }

    #[test]
    fn bad_input_names_the_file_and_the_server() {
        let cases = [
            ("not json", "not a JSON object"),
            ("[1, 2]", "not a JSON object"),
            ("{}", "no `mcpServers` object"),
            (r#"{"mcpServers": null}"#, "no `mcpServers` object"),
            (r#"{"mcpServers": []}"#, "`mcpServers` is not an object"),
            (r#"{"mcpServers": {}}"#, "no server to import (0 disabled)"),
            (
                r#"{"mcpServers": {"a": {"command": "x", "disabled": true}}}"#,
                "no server to import (1 disabled)",
            ),
            (
                r#"{"mcpServers": {"fs": {"args": ["x"]}}}"#,
                "server \"fs\": has neither `command`",
            ),
            (
                r#"{"mcpServers": {"fs": "npx"}}"#,
                "server \"fs\": expected an object",
            ),
            (
                r#"{"mcpServers": {"fs": {"command": "x", "url": "http://h"}}}"#,
                "server \"fs\": has both",
            ),
            (
                r#"{"mcpServers": {"fs": {"command": ""}}}"#,
                "server \"fs\": `command` is empty",
            ),
            (
                r#"{"mcpServers": {"fs": {"command": 1}}}"#,
                "server \"fs\": `command` must be a string, not 1",
            ),
            (
                r#"{"mcpServers": {"fs": {"command": "x", "args": ["a", 2]}}}"#,
                "server \"fs\": `args[1]` must be a string",
            ),
            (
                r#"{"mcpServers": {"fs": {"command": "x", "env": {"N": 1}}}}"#,
                "server \"fs\": `env.N` must be a string",
            ),
            (
                r#"{"mcpServers": {"fs": {"command": "x", "disabled": "yes"}}}"#,
                "server \"fs\": `disabled` must be true or false",
            ),
            (
                r#"{"mcpServers": {"fs": {"type": "ws", "url": "ws://h"}}}"#,
                "server \"fs\": `type` \"ws\" is not one of",
            ),
            (
                r#"{"mcpServers": {"fs": {"type": "stdio", "url": "http://h"}}}"#,
                "server \"fs\": `type` is \"stdio\" but there is no `command`",
            ),
            (
                r#"{"mcpServers": {"fs": {"type": "sse", "command": "x"}}}"#,
                "server \"fs\": `type` is \"sse\" but there is no `url`",
            ),
            (
                r#"{"mcpServers": {"fs": {"url": "http://h", "env": {"K": "v"}}}}"#,
                "server \"fs\": `env` applies to `command` servers only",
            ),
            (
                r#"{"mcpServers": {"fs": {"command": "x", "headers": {"K": "v"}}}}"#,
                "server \"fs\": `headers` apply to `url` servers only",
            ),
            (
                r#"{"mcpServers": {"fs": {"command": "x"}, "fs": {"command": "y"}}}"#,
                "server \"fs\": defined twice",
            ),
        ];
        for (json, needle) in cases {
            let err = error(json);
            assert!(err.starts_with(&format!("{ORIGIN}: ")), "{err}");
            assert!(err.contains(needle), "{needle:?} not in: {err}");
        }
    }

    #[test]
    fn a_missing_file_is_named() {
        let path = Path::new("/nonexistent/claude_desktop_config.json");
        let err = claude_desktop_file(path).unwrap_err().to_string();
        assert!(
            err.starts_with("/nonexistent/claude_desktop_config.json: cannot read"),
            "{err}"
        );
    }
}
