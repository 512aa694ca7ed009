//! Fixture payloads and content-block builders shared by tools, resources and prompts.

use serde_json::{Value, json};

/// A 1×1 red PNG, the image of the conformance fixture.
pub(crate) const PNG_BASE64: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";

/// A well-formed 46-byte WAV: 8 kHz, 16-bit mono, one silent sample.
pub(crate) const WAV_BASE64: &str =
    "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YQIAAAAAAA==";

pub(crate) fn text(text: impl Into<String>) -> Value {
    json!({ "type": "text", "text": text.into() })
}

pub(crate) fn png() -> Value {
    json!({ "type": "image", "data": PNG_BASE64, "mimeType": "image/png" })
}

pub(crate) fn wav() -> Value {
    json!({ "type": "audio", "data": WAV_BASE64, "mimeType": "audio/wav" })
}

/// An `EmbeddedResource` content block holding text.
pub(crate) fn embedded_text(uri: &str, mime_type: &str, text: &str) -> Value {
    json!({ "type": "resource", "resource": { "uri": uri, "mimeType": mime_type, "text": text } })
}

/// A successful `CallToolResult`.
pub(crate) fn tool_result(content: Vec<Value>) -> Value {
    json!({ "content": content })
}

/// A `CallToolResult` with `isError: true`: the tool ran and failed, which the
/// model should see (unlike a protocol error).
pub(crate) fn tool_error(message: impl Into<String>) -> Value {
    json!({ "content": [text(message)], "isError": true })
}
