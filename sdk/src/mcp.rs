//! Typed views of the MCP messages policies look into, for both protocol
//! eras (2025-11-25 legacy, 2026-07-28 modern).
//!
//! Parse params with [`Params::parse`](crate::Params::parse) and results
//! with [`Outcome::parse_result`](crate::Outcome::parse_result); serialize a
//! changed value back into a [`Continuation`](crate::Continuation) or a
//! [`ResponseDecision::replace`](crate::ResponseDecision::replace).
//!
//! Every struct keeps what it does not name in `extra` (and `_meta` in
//! `meta`), so a parse and a serialize lose nothing: fields of either era
//! (the modern `resultType`, `ttlMs` and `cacheScope`, the legacy `task`,
//! fields of future revisions) come back out as they went in. Content
//! blocks of unknown kinds are kept whole in [`Content::Other`].
//!
//! ```
//! use switchyard_sdk::mcp::{ListToolsResult, Tool};
//! use switchyard_sdk::{Outcome, ResponseDecision};
//!
//! // Hide the tools whose names start with `admin_` from a tools/list result.
//! fn hide_admin(outcome: &Outcome) -> ResponseDecision {
//!     let Some(Ok(mut list)) = outcome.parse_result::<ListToolsResult>() else {
//!         return ResponseDecision::Continue;
//!     };
//!     list.tools.retain(|tool: &Tool| !tool.name.starts_with("admin_"));
//!     ResponseDecision::replace(list)
//! }
//!
//! let outcome = Outcome::ok(&serde_json::json!({
//!     "tools": [
//!         {"name": "search", "inputSchema": {"type": "object"}},
//!         {"name": "admin_reset", "inputSchema": {"type": "object"}}
//!     ],
//!     "resultType": "complete", "ttlMs": 60000, "cacheScope": "public"
//! }));
//! let ResponseDecision::Replace(replaced) = hide_admin(&outcome) else { unreachable!() };
//! assert_eq!(replaced["tools"].as_array().unwrap().len(), 1);
//! assert_eq!(replaced["ttlMs"], 60000);
//! ```

use std::collections::BTreeMap;

use serde::de::{Deserialize, Deserializer};
use serde::ser::{Error as _, Serialize, Serializer};
use serde_json::{Map, Value};

/// JSON-RPC method names the gateway routes, for
/// [`Plugin::METHODS`](crate::Plugin::METHODS) and comparisons with
/// [`Context::method`](crate::Context::method).
pub mod methods {
    /// Legacy session start.
    pub const INITIALIZE: &str = "initialize";
    /// Liveness check.
    pub const PING: &str = "ping";
    /// Modern capability discovery.
    pub const SERVER_DISCOVER: &str = "server/discover";
    /// List the tools.
    pub const TOOLS_LIST: &str = "tools/list";
    /// Call a tool ([`CallToolParams`](super::CallToolParams) →
    /// [`CallToolResult`](super::CallToolResult)).
    pub const TOOLS_CALL: &str = "tools/call";
    /// List the prompts.
    pub const PROMPTS_LIST: &str = "prompts/list";
    /// Get a prompt ([`GetPromptParams`](super::GetPromptParams) →
    /// [`GetPromptResult`](super::GetPromptResult)).
    pub const PROMPTS_GET: &str = "prompts/get";
    /// List the resources.
    pub const RESOURCES_LIST: &str = "resources/list";
    /// List the resource templates.
    pub const RESOURCES_TEMPLATES_LIST: &str = "resources/templates/list";
    /// Read a resource ([`ReadResourceParams`](super::ReadResourceParams) →
    /// [`ReadResourceResult`](super::ReadResourceResult)).
    pub const RESOURCES_READ: &str = "resources/read";
    /// Subscribe to a resource's updates.
    pub const RESOURCES_SUBSCRIBE: &str = "resources/subscribe";
    /// Unsubscribe from a resource's updates.
    pub const RESOURCES_UNSUBSCRIBE: &str = "resources/unsubscribe";
    /// Argument completion.
    pub const COMPLETION_COMPLETE: &str = "completion/complete";
    /// Set the server's log level.
    pub const LOGGING_SET_LEVEL: &str = "logging/setLevel";
    /// The server's tool list changed.
    pub const TOOLS_LIST_CHANGED: &str = "notifications/tools/list_changed";
    /// The server's prompt list changed.
    pub const PROMPTS_LIST_CHANGED: &str = "notifications/prompts/list_changed";
    /// The server's resource list changed.
    pub const RESOURCES_LIST_CHANGED: &str = "notifications/resources/list_changed";
    /// A subscribed resource changed.
    pub const RESOURCES_UPDATED: &str = "notifications/resources/updated";
    /// A log message from the server.
    pub const MESSAGE: &str = "notifications/message";
    /// Progress of a long request.
    pub const PROGRESS: &str = "notifications/progress";
}

/// Params of `tools/call`.
///
/// Modern requests carry `_meta` (protocol version, client info and
/// capabilities) in [`meta`](CallToolParams::meta); modern
/// `inputResponses`/`requestState` and legacy `task` stay in
/// [`extra`](CallToolParams::extra).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallToolParams {
    /// The tool's name.
    pub name: String,
    /// The tool's arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Map<String, Value>>,
    /// The request's `_meta`.
    #[serde(rename = "_meta", default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Map<String, Value>>,
    /// Every other field, kept as it came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Result of `tools/call`.
///
/// ```
/// use switchyard_sdk::mcp::CallToolResult;
/// let refused = CallToolResult::error_text("this tool is disabled here");
/// assert_eq!(refused.is_error, Some(true));
/// assert_eq!(refused.content[0].as_text(), Some("this tool is disabled here"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallToolResult {
    /// What the tool returned, for the model.
    pub content: Vec<Content>,
    /// The same as structured JSON, if the tool has an output schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub structured_content: Option<Value>,
    /// True if the tool failed (the failure is in `content`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_error: Option<bool>,
    /// Modern: `complete` (or `input_required` for another shape).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_type: Option<String>,
    /// The result's `_meta`.
    #[serde(rename = "_meta", default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Map<String, Value>>,
    /// Every other field, kept as it came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl CallToolResult {
    /// A successful result holding one text block.
    pub fn text(text: impl Into<String>) -> CallToolResult {
        CallToolResult {
            content: vec![Content::text(text)],
            ..CallToolResult::default()
        }
    }

    /// A tool failure (`isError: true`) explained by one text block: how a
    /// policy refuses a call so that the model sees why.
    pub fn error_text(text: impl Into<String>) -> CallToolResult {
        CallToolResult {
            is_error: Some(true),
            ..CallToolResult::text(text)
        }
    }
}

/// One block of content in a tool result or prompt message, by its `type`.
///
/// A block of a kind this SDK does not know, or a known kind that does not
/// parse, is kept whole in [`Other`](Content::Other).
#[derive(Clone, Debug, PartialEq)]
pub enum Content {
    /// `type: "text"`.
    Text(TextContent),
    /// `type: "image"`.
    Image(ImageContent),
    /// `type: "audio"`.
    Audio(AudioContent),
    /// `type: "resource_link"`.
    ResourceLink(ResourceLink),
    /// `type: "resource"`: an embedded resource.
    Resource(EmbeddedResource),
    /// Any other block, as it came.
    Other(Value),
}

impl Content {
    /// A text block.
    pub fn text(text: impl Into<String>) -> Content {
        Content::Text(TextContent {
            text: text.into(),
            ..TextContent::default()
        })
    }

    /// The text of a text block.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Content::Text(t) => Some(&t.text),
            _ => None,
        }
    }

    /// The block's `type`.
    pub fn kind(&self) -> Option<&str> {
        match self {
            Content::Text(_) => Some("text"),
            Content::Image(_) => Some("image"),
            Content::Audio(_) => Some("audio"),
            Content::ResourceLink(_) => Some("resource_link"),
            Content::Resource(_) => Some("resource"),
            Content::Other(v) => v.get("type").and_then(Value::as_str),
        }
    }

    /// The block a JSON value describes.
    fn from_value(value: Value) -> Content {
        fn typed<T: serde::de::DeserializeOwned>(fields: &Map<String, Value>) -> Option<T> {
            let mut fields = fields.clone();
            fields.remove("type");
            serde_json::from_value(Value::Object(fields)).ok()
        }
        let Value::Object(fields) = &value else {
            return Content::Other(value);
        };
        let parsed = match fields.get("type").and_then(Value::as_str) {
            Some("text") => typed(fields).map(Content::Text),
            Some("image") => typed(fields).map(Content::Image),
            Some("audio") => typed(fields).map(Content::Audio),
            Some("resource_link") => typed(fields).map(Content::ResourceLink),
            Some("resource") => typed(fields).map(Content::Resource),
            _ => None,
        };
        parsed.unwrap_or(Content::Other(value))
    }
}

impl Serialize for Content {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let value = match self {
            Content::Text(c) => serde_json::to_value(c),
            Content::Image(c) => serde_json::to_value(c),
            Content::Audio(c) => serde_json::to_value(c),
            Content::ResourceLink(c) => serde_json::to_value(c),
            Content::Resource(c) => serde_json::to_value(c),
            Content::Other(v) => return v.serialize(serializer),
        };
        let mut value = value.map_err(S::Error::custom)?;
        if let (Value::Object(fields), Some(kind)) = (&mut value, self.kind()) {
            fields.insert("type".to_string(), Value::String(kind.to_string()));
        }
        value.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Content, D::Error> {
        Value::deserialize(deserializer).map(Content::from_value)
    }
}

/// Hints for a client about a content block or resource.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Annotations {
    /// Who the content is for: `user`, `assistant`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<Vec<String>>,
    /// How important, from 0 (optional) to 1 (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<f64>,
    /// When it last changed (ISO 8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    /// Every other field, kept as it came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A text block.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TextContent {
    /// The text.
    pub text: String,
    /// Hints for the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Annotations>,
    /// The block's `_meta`.
    #[serde(rename = "_meta", default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Map<String, Value>>,
    /// Every other field, kept as it came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An image block.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageContent {
    /// Base64-encoded image data.
    pub data: String,
    /// E.g. `image/png`.
    pub mime_type: String,
    /// Hints for the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Annotations>,
    /// The block's `_meta`.
    #[serde(rename = "_meta", default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Map<String, Value>>,
    /// Every other field, kept as it came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An audio block.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AudioContent {
    /// Base64-encoded audio data.
    pub data: String,
    /// E.g. `audio/wav`.
    pub mime_type: String,
    /// Hints for the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Annotations>,
    /// The block's `_meta`.
    #[serde(rename = "_meta", default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Map<String, Value>>,
    /// Every other field, kept as it came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A link to a resource the client may read.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceLink {
    /// The resource's URI.
    pub uri: String,
    /// Its programmatic name.
    pub name: String,
    /// Its display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// What it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its MIME type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// Its size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Icons for display.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icons: Option<Vec<Icon>>,
    /// Hints for the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Annotations>,
    /// The link's `_meta`.
    #[serde(rename = "_meta", default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Map<String, Value>>,
    /// Every other field, kept as it came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A resource's contents embedded in a tool result or prompt message.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmbeddedResource {
    /// The contents.
    pub resource: ResourceContents,
    /// Hints for the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Annotations>,
    /// The block's `_meta`.
    #[serde(rename = "_meta", default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Map<String, Value>>,
    /// Every other field, kept as it came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A resource's contents: text or a base64 blob (or, if neither parses, the
/// value as it came).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum ResourceContents {
    /// Text contents.
    Text(TextResourceContents),
    /// Binary contents.
    Blob(BlobResourceContents),
    /// Anything else, as it came.
    Other(Value),
}

impl ResourceContents {
    /// The contents' URI.
    pub fn uri(&self) -> Option<&str> {
        match self {
            ResourceContents::Text(t) => Some(&t.uri),
            ResourceContents::Blob(b) => Some(&b.uri),
            ResourceContents::Other(v) => v.get("uri").and_then(Value::as_str),
        }
    }
}

/// Text contents of a resource.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TextResourceContents {
    /// The resource's URI.
    pub uri: String,
    /// The text.
    pub text: String,
    /// Its MIME type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// The contents' `_meta`.
    #[serde(rename = "_meta", default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Map<String, Value>>,
    /// Every other field, kept as it came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Binary contents of a resource.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlobResourceContents {
    /// The resource's URI.
    pub uri: String,
    /// Base64-encoded data.
    pub blob: String,
    /// Its MIME type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// The contents' `_meta`.
    #[serde(rename = "_meta", default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Map<String, Value>>,
    /// Every other field, kept as it came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An icon for display.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Icon {
    /// Its URI (`https:` or `data:`).
    pub src: String,
    /// Its MIME type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// Sizes it fits, e.g. `48x48`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sizes: Option<Vec<String>>,
    /// `light` or `dark`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub theme: Option<String>,
    /// Every other field, kept as it came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Params of the list methods (`tools/list`, `prompts/list`,
/// `resources/list`, `resources/templates/list`).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaginatedParams {
    /// Where to continue from: a previous result's `nextCursor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// The request's `_meta`.
    #[serde(rename = "_meta", default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Map<String, Value>>,
    /// Every other field, kept as it came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A tool, as `tools/list` describes it.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tool {
    /// Its programmatic name (what `tools/call` names).
    pub name: String,
    /// Its display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// What it does, for the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The JSON Schema of its arguments.
    pub input_schema: Value,
    /// The JSON Schema of its `structuredContent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
    /// Hints about its behaviour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<ToolAnnotations>,
    /// Icons for display.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icons: Option<Vec<Icon>>,
    /// The tool's `_meta`.
    #[serde(rename = "_meta", default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Map<String, Value>>,
    /// Every other field (the legacy `execution`), kept as it came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Hints about a tool's behaviour. Hints, not guarantees: a policy that
/// trusts them should trust the server.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolAnnotations {
    /// A display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// It does not change its environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_hint: Option<bool>,
    /// It may destroy data (meaningful when not read-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destructive_hint: Option<bool>,
    /// Calling it twice with the same arguments does nothing more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotent_hint: Option<bool>,
    /// It reaches an open world (the web) rather than a closed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_world_hint: Option<bool>,
    /// Every other field, kept as it came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Result of `tools/list`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListToolsResult {
    /// The tools.
    pub tools: Vec<Tool>,
    /// Where the next page starts; none on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// Modern: `complete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_type: Option<String>,
    /// Modern: how long the client may cache this result, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
    /// Modern: `public` (shareable across principals) or `private`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_scope: Option<String>,
    /// The result's `_meta`.
    #[serde(rename = "_meta", default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Map<String, Value>>,
    /// Every other field, kept as it came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A prompt template, as `prompts/list` describes it.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Prompt {
    /// Its programmatic name (what `prompts/get` names).
    pub name: String,
    /// Its display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The arguments it takes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Vec<PromptArgument>>,
    /// Icons for display.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icons: Option<Vec<Icon>>,
    /// The prompt's `_meta`.
    #[serde(rename = "_meta", default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Map<String, Value>>,
    /// Every other field, kept as it came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One argument of a prompt.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptArgument {
    /// Its name.
    pub name: String,
    /// Its display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// What it means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether it must be given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
    /// Every other field, kept as it came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Result of `prompts/list`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListPromptsResult {
    /// The prompts.
    pub prompts: Vec<Prompt>,
    /// Where the next page starts; none on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// Modern: `complete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_type: Option<String>,
    /// Modern: how long the client may cache this result, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
    /// Modern: `public` or `private`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_scope: Option<String>,
    /// The result's `_meta`.
    #[serde(rename = "_meta", default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Map<String, Value>>,
    /// Every other field, kept as it came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Params of `prompts/get`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetPromptParams {
    /// The prompt's name.
    pub name: String,
    /// The prompt's arguments (strings, by name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<BTreeMap<String, String>>,
    /// The request's `_meta`.
    #[serde(rename = "_meta", default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Map<String, Value>>,
    /// Every other field, kept as it came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Result of `prompts/get`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetPromptResult {
    /// What the prompt is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The prompt's messages.
    pub messages: Vec<PromptMessage>,
    /// Modern: `complete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_type: Option<String>,
    /// The result's `_meta`.
    #[serde(rename = "_meta", default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Map<String, Value>>,
    /// Every other field, kept as it came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One message of a prompt.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptMessage {
    /// `user` or `assistant`.
    pub role: String,
    /// The message's content.
    pub content: Content,
    /// Every other field, kept as it came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A resource, as `resources/list` describes it.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    /// Its URI (what `resources/read` names).
    pub uri: String,
    /// Its programmatic name.
    pub name: String,
    /// Its display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// What it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its MIME type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// Its size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Hints for the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Annotations>,
    /// Icons for display.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icons: Option<Vec<Icon>>,
    /// The resource's `_meta`.
    #[serde(rename = "_meta", default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Map<String, Value>>,
    /// Every other field, kept as it came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Result of `resources/list`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListResourcesResult {
    /// The resources.
    pub resources: Vec<Resource>,
    /// Where the next page starts; none on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// Modern: `complete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_type: Option<String>,
    /// Modern: how long the client may cache this result, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
    /// Modern: `public` or `private`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_scope: Option<String>,
    /// The result's `_meta`.
    #[serde(rename = "_meta", default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Map<String, Value>>,
    /// Every other field, kept as it came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A family of resources named by a URI template.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceTemplate {
    /// The RFC 6570 URI template.
    pub uri_template: String,
    /// Its programmatic name.
    pub name: String,
    /// Its display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// What its resources are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The MIME type of its resources, if they share one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// Hints for the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Annotations>,
    /// Icons for display.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icons: Option<Vec<Icon>>,
    /// The template's `_meta`.
    #[serde(rename = "_meta", default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Map<String, Value>>,
    /// Every other field, kept as it came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Result of `resources/templates/list`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListResourceTemplatesResult {
    /// The templates.
    pub resource_templates: Vec<ResourceTemplate>,
    /// Where the next page starts; none on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// Modern: `complete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_type: Option<String>,
    /// Modern: how long the client may cache this result, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
    /// Modern: `public` or `private`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_scope: Option<String>,
    /// The result's `_meta`.
    #[serde(rename = "_meta", default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Map<String, Value>>,
    /// Every other field, kept as it came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Params of `resources/read` (and `resources/subscribe`).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadResourceParams {
    /// The resource's URI.
    pub uri: String,
    /// The request's `_meta`.
    #[serde(rename = "_meta", default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Map<String, Value>>,
    /// Every other field, kept as it came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Result of `resources/read`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadResourceResult {
    /// The contents (one resource may have several parts).
    pub contents: Vec<ResourceContents>,
    /// Modern: `complete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_type: Option<String>,
    /// Modern: how long the client may cache this result, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
    /// Modern: `public` or `private`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_scope: Option<String>,
    /// The result's `_meta`.
    #[serde(rename = "_meta", default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Map<String, Value>>,
    /// Every other field, kept as it came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::DeserializeOwned;
    use serde_json::json;

    /// Parses `value` as `T`, serializes it back, and checks nothing changed.
    fn round_trip<T: DeserializeOwned + Serialize>(value: Value) -> T {
        let typed: T = serde_json::from_value(value.clone()).expect("parses");
        assert_eq!(
            serde_json::to_value(&typed).unwrap(),
            value,
            "round trip changed the value"
        );
        typed
    }

    #[test]
    fn call_tool_params_both_eras() {
        let legacy: CallToolParams = round_trip(json!({
            "name": "build", "arguments": {"city": "Micropolis"},
            "task": {"ttl": 60000}, "_meta": {"progressToken": 7}
        }));
        assert_eq!(legacy.name, "build");
        assert!(legacy.extra.contains_key("task"));
        assert_eq!(legacy.meta.unwrap()["progressToken"], 7);

        let modern: CallToolParams = round_trip(json!({
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientInfo": {"name": "ExampleClient", "version": "1.0.0"},
                "io.modelcontextprotocol/clientCapabilities": {}
            },
            "name": "get_weather",
            "arguments": {"location": "New York"},
            "requestState": "opaque", "inputResponses": {"a": {"action": "accept"}}
        }));
        assert_eq!(modern.arguments.unwrap()["location"], "New York");
        assert!(modern.extra.contains_key("requestState"));
    }

    #[test]
    fn call_tool_result_keeps_content_kinds_and_unknowns() {
        let r: CallToolResult = round_trip(json!({
            "resultType": "complete",
            "content": [
                {"type": "text", "text": "hi", "annotations": {"audience": ["user"], "priority": 0.5}},
                {"type": "image", "data": "AAA=", "mimeType": "image/png"},
                {"type": "audio", "data": "BBB=", "mimeType": "audio/wav", "_meta": {"k": 1}},
                {"type": "resource_link", "uri": "file:///a", "name": "a", "size": 3, "future": true},
                {"type": "resource", "resource": {"uri": "file:///b", "text": "b", "mimeType": "text/plain"}},
                {"type": "resource", "resource": {"uri": "file:///c", "blob": "Qw=="}},
                {"type": "hologram", "voxels": 3},
                {"type": "text"},
                "not an object"
            ],
            "structuredContent": [{"id": "1"}],
            "isError": false,
            "_meta": {"x": 1},
            "futureField": {"nested": [1, 2]}
        }));
        let kinds: Vec<_> = r.content.iter().map(Content::kind).collect();
        assert_eq!(
            kinds,
            [
                Some("text"),
                Some("image"),
                Some("audio"),
                Some("resource_link"),
                Some("resource"),
                Some("resource"),
                Some("hologram"),
                Some("text"),
                None
            ]
        );
        assert!(
            matches!(r.content[7], Content::Other(_)),
            "a malformed text block is kept whole"
        );
        let Content::Resource(embedded) = &r.content[5] else {
            panic!()
        };
        assert!(matches!(embedded.resource, ResourceContents::Blob(_)));
        assert_eq!(embedded.resource.uri(), Some("file:///c"));
        let Content::ResourceLink(link) = &r.content[3] else {
            panic!()
        };
        assert_eq!(link.extra["future"], true);
        assert_eq!(r.result_type.as_deref(), Some("complete"));
        assert!(r.extra.contains_key("futureField"));
    }

    #[test]
    fn list_results_keep_modern_cache_fields() {
        let tools: ListToolsResult = round_trip(json!({
            "resultType": "complete",
            "tools": [{
                "name": "get_weather", "title": "Weather", "description": "d",
                "inputSchema": {"type": "object", "properties": {"location": {"type": "string"}}},
                "outputSchema": {"type": "object"},
                "annotations": {"readOnlyHint": true, "destructiveHint": false, "vendorHint": 1},
                "icons": [{"src": "https://example.com/i.png", "mimeType": "image/png", "sizes": ["48x48"]}],
                "execution": {"taskSupport": "optional"}
            }],
            "nextCursor": "next", "ttlMs": 300000, "cacheScope": "public"
        }));
        assert_eq!(tools.ttl_ms, Some(300_000));
        assert_eq!(tools.cache_scope.as_deref(), Some("public"));
        let tool = &tools.tools[0];
        assert_eq!(
            tool.annotations.as_ref().unwrap().read_only_hint,
            Some(true)
        );
        assert!(tool.extra.contains_key("execution"));

        let _: ListPromptsResult = round_trip(json!({
            "prompts": [{"name": "p", "arguments": [{"name": "a", "required": true, "x": 1}]}],
            "resultType": "complete", "ttlMs": 0, "cacheScope": "private"
        }));
        let _: ListResourcesResult = round_trip(json!({
            "resources": [{"uri": "file:///a", "name": "a", "mimeType": "text/plain", "size": 10,
                           "annotations": {"lastModified": "2025-01-01T00:00:00Z"}}],
            "nextCursor": "c"
        }));
        let _: ListResourceTemplatesResult = round_trip(json!({
            "resourceTemplates": [{"uriTemplate": "file:///{path}", "name": "files"}],
            "resultType": "complete", "ttlMs": 5, "cacheScope": "public"
        }));
        let _: PaginatedParams =
            round_trip(json!({"cursor": "c", "_meta": {"progressToken": "t"}}));
    }

    #[test]
    fn prompts_and_resources() {
        let get: GetPromptParams =
            round_trip(json!({"name": "review", "arguments": {"code": "x"}}));
        assert_eq!(get.arguments.unwrap()["code"], "x");
        let result: GetPromptResult = round_trip(json!({
            "description": "d", "resultType": "complete",
            "messages": [{"role": "user", "content": {"type": "text", "text": "hi"}}]
        }));
        assert_eq!(result.messages[0].content.as_text(), Some("hi"));

        let read: ReadResourceParams = round_trip(json!({"uri": "file:///a", "requestState": "s"}));
        assert_eq!(read.uri, "file:///a");
        let contents: ReadResourceResult = round_trip(json!({
            "resultType": "complete",
            "contents": [
                {"uri": "file:///project/src/main.rs", "mimeType": "text/x-rust", "text": "fn main() {}"},
                {"uri": "file:///b.bin", "blob": "AAEC"},
                {"uri": "weird://x", "neither": true}
            ],
            "ttlMs": 60000, "cacheScope": "private"
        }));
        assert!(matches!(contents.contents[0], ResourceContents::Text(_)));
        assert!(matches!(contents.contents[1], ResourceContents::Blob(_)));
        assert!(matches!(contents.contents[2], ResourceContents::Other(_)));
        assert_eq!(contents.contents[2].uri(), Some("weird://x"));
    }

    #[test]
    fn spec_examples_round_trip() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/spec/2026-07-28/examples");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            // The spec examples live beside the repository, not in it.
            return;
        };
        let mut checked = 0;
        for entry in entries.flatten() {
            let kind = entry.file_name().to_string_lossy().into_owned();
            let check: fn(Value) = match kind.as_str() {
                "CallToolRequestParams" => |v| drop(round_trip::<CallToolParams>(v)),
                "CallToolResult" => |v| drop(round_trip::<CallToolResult>(v)),
                "ListToolsResult" => |v| drop(round_trip::<ListToolsResult>(v)),
                "ListPromptsResult" => |v| drop(round_trip::<ListPromptsResult>(v)),
                "GetPromptRequestParams" => |v| drop(round_trip::<GetPromptParams>(v)),
                "GetPromptResult" => |v| drop(round_trip::<GetPromptResult>(v)),
                "ListResourcesResult" => |v| drop(round_trip::<ListResourcesResult>(v)),
                "ListResourceTemplatesResult" => {
                    |v| drop(round_trip::<ListResourceTemplatesResult>(v))
                }
                "ReadResourceRequestParams" => |v| drop(round_trip::<ReadResourceParams>(v)),
                "ReadResourceResult" => |v| drop(round_trip::<ReadResourceResult>(v)),
                "Tool" => |v| drop(round_trip::<Tool>(v)),
                "Prompt" => |v| drop(round_trip::<Prompt>(v)),
                "Resource" => |v| drop(round_trip::<Resource>(v)),
                "ContentBlock" | "TextContent" | "ImageContent" | "AudioContent"
                | "ResourceLink" | "EmbeddedResource" => |v| {
                    assert!(!matches!(round_trip::<Content>(v), Content::Other(_)));
                },
                _ => continue,
            };
            for file in std::fs::read_dir(entry.path()).unwrap().flatten() {
                let text = std::fs::read_to_string(file.path()).unwrap();
                check(serde_json::from_str(&text).unwrap());
                checked += 1;
            }
        }
        assert!(
            checked > 0,
            "no spec example was checked in {}",
            dir.display()
        );
    }

    #[test]
    fn constructors() {
        let r = CallToolResult::text("ok");
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"content": [{"type": "text", "text": "ok"}]})
        );
        let e = CallToolResult::error_text("no");
        assert_eq!(serde_json::to_value(&e).unwrap()["isError"], true);
    }
}
