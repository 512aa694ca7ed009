//! Prompts: the conformance fixture (`test_simple_prompt`,
//! `test_prompt_with_arguments`, `test_prompt_with_embedded_resource`,
//! `test_prompt_with_image`, and the SEP-2322 `test_input_required_result_prompt`
//! of `input_required`) and the demo's `greet`.

use serde_json::{Map, Value, json};

use crate::content::{embedded_text, png, text};
use crate::protocol::RpcError;
use crate::request::Request;

/// `(name, title, description, [(argument, description)])`; every argument is required.
type PromptSpec = (
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

const PROMPTS: &[PromptSpec] = &[
    (
        "test_simple_prompt",
        "Simple Test Prompt",
        "A simple prompt without arguments",
        &[],
    ),
    (
        "test_prompt_with_arguments",
        "Prompt With Arguments",
        "A prompt with required arguments",
        &[
            ("arg1", "First test argument"),
            ("arg2", "Second test argument"),
        ],
    ),
    (
        "test_prompt_with_embedded_resource",
        "Prompt With Embedded Resource",
        "A prompt that includes an embedded resource",
        &[("resourceUri", "URI of the resource to embed")],
    ),
    (
        "test_prompt_with_image",
        "Prompt With Image",
        "A prompt that includes image content",
        &[],
    ),
    (
        crate::input_required::PROMPT,
        "Prompt Requiring Input",
        "A prompt that first asks the user for context (SEP-2322 InputRequiredResult)",
        &[],
    ),
    (
        "greet",
        "Greeting",
        "Asks the model to greet someone by name",
        &[("name", "Who to greet")],
    ),
];

/// The `prompts/list` entries.
pub(crate) fn list() -> Vec<Value> {
    PROMPTS
        .iter()
        .map(|(name, title, description, arguments)| {
            let arguments: Vec<Value> = arguments
                .iter()
                .map(|(arg, description)| json!({ "name": arg, "description": description, "required": true }))
                .collect();
            json!({ "name": name, "title": title, "description": description, "arguments": arguments })
        })
        .collect()
}

/// `prompts/get`. Unknown prompts and missing arguments are -32602.
pub(crate) async fn get(req: &Request) -> Result<Value, RpcError> {
    let name = req.str_param("name")?;
    let spec = PROMPTS
        .iter()
        .find(|(candidate, ..)| *candidate == name)
        .ok_or_else(|| RpcError::invalid_params(format!("Unknown prompt: {name}")))?;
    let empty = Map::new();
    let given = match req.params.get("arguments") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(arguments)) => arguments,
        Some(_) => return Err(RpcError::invalid_params("`arguments` must be an object")),
    };
    let arg = |key: &str| -> Result<&str, RpcError> {
        given.get(key).and_then(Value::as_str).ok_or_else(|| {
            RpcError::invalid_params(format!("prompt {name} needs the string argument `{key}`"))
        })
    };
    for (key, _) in spec.3 {
        arg(key)?;
    }
    if name == crate::input_required::PROMPT {
        return crate::input_required::get_prompt(req, spec.2).await;
    }
    let user = |content: Value| json!({ "role": "user", "content": content });
    let messages = match name {
        "test_simple_prompt" => vec![user(text("This is a simple prompt for testing."))],
        "test_prompt_with_arguments" => vec![user(text(format!(
            "Prompt with arguments: arg1='{}', arg2='{}'",
            arg("arg1")?,
            arg("arg2")?
        )))],
        "test_prompt_with_embedded_resource" => vec![
            user(embedded_text(
                arg("resourceUri")?,
                "text/plain",
                "Embedded resource content for testing.",
            )),
            user(text("Please process the embedded resource above.")),
        ],
        "test_prompt_with_image" => {
            vec![user(png()), user(text("Please analyze the image above."))]
        }
        "greet" => vec![user(text(format!(
            "Please greet {} warmly, in one sentence.",
            arg("name")?
        )))],
        _ => unreachable!("every prompt in PROMPTS has a body"),
    };
    Ok(json!({ "description": spec.2, "messages": messages }))
}
