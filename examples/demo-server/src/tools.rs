//! Tools: the conformance fixture (`test_*`, `json_schema_2020_12_tool`, and
//! the SEP-2322 `test_input_required_result_*` of `input_required`), the
//! demo and test tools (`echo`, `add`, `slow`, `whoami`, `set_tools`,
//! `touch_resource`, `notify_list_changed`, `crash`, `log_to_stderr`) and the dynamic extras that
//! `set_tools` adds (each behaves like `echo`).
//!
//! Names, arguments and texts of the fixture follow the conformance suite
//! 0.1.16 and its reference server, since the suite checks them; the
//! SEP-2575 diagnostics (`test_logging_tool`, `test_missing_capability`,
//! `test_streaming_elicitation`) and the SEP-2106 keywords of
//! `json_schema_2020_12_tool` follow the 0.2 suite.
//! Bad arguments are tool errors (`isError: true`), as 2025-11-25 asks;
//! an unknown tool is a protocol error (-32602).

use std::time::Duration;

use serde_json::{Number, Value, json};

use crate::client_input::{self, Asked, InputNeed};
use crate::content::{self, embedded_text, png, text, tool_error, tool_result, wav};
use crate::protocol::{LogLevel, RpcError};
use crate::request::Request;
use crate::session::{Change, Session};

/// `(name, description, inputSchema)` of every built-in tool, in listing order.
fn builtins() -> Vec<(&'static str, &'static str, Value)> {
    let no_args = json!({ "type": "object", "properties": {} });
    [
        // ----- conformance fixture -----
        (
            "test_simple_text",
            "Tests simple text content response",
            no_args.clone(),
        ),
        (
            "test_image_content",
            "Tests image content response",
            no_args.clone(),
        ),
        (
            "test_audio_content",
            "Tests audio content response",
            no_args.clone(),
        ),
        (
            "test_embedded_resource",
            "Tests embedded resource content response",
            no_args.clone(),
        ),
        (
            "test_multiple_content_types",
            "Tests response with multiple content types (text, image, resource)",
            no_args.clone(),
        ),
        (
            "test_tool_with_logging",
            "Tests tool that emits log messages during execution",
            no_args.clone(),
        ),
        (
            "test_tool_with_progress",
            "Tests tool that reports progress notifications",
            no_args.clone(),
        ),
        (
            "test_error_handling",
            "Tests error response handling",
            no_args.clone(),
        ),
        (
            "test_reconnection",
            "Tests SSE stream disconnection and client reconnection (SEP-1699); over stdio it simply answers after 100 ms",
            no_args.clone(),
        ),
        (
            "test_sampling",
            "Tests server-initiated sampling (LLM completion request)",
            json!({
                "type": "object",
                "properties": { "prompt": { "type": "string", "description": "The prompt to send to the LLM" } },
                "required": ["prompt"],
            }),
        ),
        (
            "test_elicitation",
            "Tests server-initiated elicitation (user input request)",
            json!({
                "type": "object",
                "properties": { "message": { "type": "string", "description": "The message to show the user" } },
                "required": ["message"],
            }),
        ),
        (
            "test_elicitation_sep1034_defaults",
            "Tests elicitation with default values per SEP-1034",
            no_args.clone(),
        ),
        (
            "test_elicitation_sep1330_enums",
            "Tests elicitation with enum schema improvements per SEP-1330",
            no_args.clone(),
        ),
        (
            "json_schema_2020_12_tool",
            "Tool with JSON Schema 2020-12 features for conformance testing (SEP-1613)",
            json_schema_2020_12(),
        ),
        (
            "test_logging_tool",
            "Tests that log messages go out only at a requested log level (SEP-2575): emits notifications/message before its result",
            no_args.clone(),
        ),
        (
            "test_missing_capability",
            "Tests the undeclared-capability rejection (SEP-2575): needs the client's sampling capability",
            no_args.clone(),
        ),
        (
            "test_streaming_elicitation",
            "Tests that a request stream carries no independent requests (SEP-2575): needs the client's elicitation capability",
            no_args.clone(),
        ),
        (
            "test_custom_headers",
            "Tests mirrored parameter headers (SEP-2243): region and priority travel as Mcp-Param-Region / Mcp-Param-Priority",
            json!({
                "type": "object",
                "properties": {
                    "region": { "type": "string", "x-mcp-header": "Region" },
                    "priority": { "type": "integer", "x-mcp-header": "Priority" },
                    "query": { "type": "string" },
                },
                "required": ["region"],
            }),
        ),
    ]
    .into_iter()
    // ----- SEP-2322 fixture (`input_required`) -----
    .chain(
        crate::input_required::TOOLS
            .iter()
            .map(|(name, description)| (*name, *description, no_args.clone())),
    )
    .chain([
        // ----- demo and test tools -----
        (
            "echo",
            "Echoes the message back as \"Echo: {message}\"",
            echo_schema(),
        ),
        (
            "add",
            "Adds two numbers",
            json!({
                "type": "object",
                "properties": { "a": { "type": "number" }, "b": { "type": "number" } },
                "required": ["a", "b"],
            }),
        ),
        (
            "slow",
            "Takes `ms` milliseconds in `steps` steps, reporting progress after each; honours cancellation",
            json!({
                "type": "object",
                "properties": {
                    "ms": { "type": "integer", "minimum": 0, "default": 1000 },
                    "steps": { "type": "integer", "minimum": 0, "default": 10 },
                },
            }),
        ),
        (
            "whoami",
            "Reports this server's name and process id, to tell upstreams and respawns apart",
            no_args.clone(),
        ),
        (
            "set_tools",
            "Replaces the set of extra echo-like tools and announces tools/list_changed",
            json!({
                "type": "object",
                "properties": {
                    "extra": { "type": "array", "items": { "type": "string" }, "description": "Names of the extra tools" },
                    "description": { "type": "string", "description": "The extras' description (to change a definition)" },
                },
                "required": ["extra"],
            }),
        ),
        (
            "touch_resource",
            "Sends notifications/resources/updated for the URI to its subscribers",
            json!({
                "type": "object",
                "properties": { "uri": { "type": "string" } },
                "required": ["uri"],
            }),
        ),
        (
            "test_trigger_tool_change",
            "Conformance hook (SEP-2575): sends notifications/tools/list_changed to listeners",
            no_args.clone(),
        ),
        (
            "test_trigger_prompt_change",
            "Conformance hook (SEP-2575): sends notifications/prompts/list_changed to listeners",
            no_args.clone(),
        ),
        (
            "notify_list_changed",
            "Sends notifications/{list}/list_changed to whoever listens, without changing anything",
            json!({
                "type": "object",
                "properties": { "list": { "type": "string", "enum": ["tools", "prompts", "resources"] } },
                "required": ["list"],
            }),
        ),
        (
            "crash",
            "Exits the server process at once with status 3, without answering",
            no_args.clone(),
        ),
        (
            "log_to_stderr",
            "Writes the text to the server's stderr",
            json!({
                "type": "object",
                "properties": { "text": { "type": "string" } },
                "required": ["text"],
            }),
        ),
    ])
    .collect()
}

/// The input schema of `json_schema_2020_12_tool`, as the suite's reference:
/// `$schema`, `$defs` (with an `$anchor`) and `additionalProperties: false`
/// (SEP-1613), plus composition (`allOf`/`anyOf`) and conditional
/// (`if`/`then`/`else`) keywords (SEP-2106).
fn json_schema_2020_12() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {
            "address": {
                "$anchor": "addressDef",
                "type": "object",
                "properties": { "street": { "type": "string" }, "city": { "type": "string" } },
            },
        },
        "properties": {
            "name": { "type": "string" },
            "address": { "$ref": "#/$defs/address" },
            "contactMethod": { "type": "string", "enum": ["phone", "email"] },
            "phone": { "type": "string" },
            "email": { "type": "string" },
        },
        "allOf": [{ "anyOf": [{ "required": ["phone"] }, { "required": ["email"] }] }],
        "if": { "properties": { "contactMethod": { "const": "phone" } }, "required": ["contactMethod"] },
        "then": { "required": ["phone"] },
        "else": { "required": ["email"] },
        "additionalProperties": false,
    })
}

fn echo_schema() -> Value {
    json!({
        "type": "object",
        "properties": { "message": { "type": "string" } },
        "required": ["message"],
    })
}

/// The `tools/list` entries: built-ins, then the extras of `set_tools`.
pub(crate) fn list(session: &Session) -> Vec<Value> {
    let builtins = builtins()
        .into_iter()
        .map(|(name, description, schema)| json!({ "name": name, "description": description, "inputSchema": schema }));
    let description = session
        .extra_description()
        .unwrap_or_else(|| "An extra tool added by set_tools; echoes like `echo`".into());
    let extras = session.extra_tools().into_iter().map(
        |name| json!({ "name": name, "description": description, "inputSchema": echo_schema() }),
    );
    builtins.chain(extras).collect()
}

/// Why a tool call did not produce a normal result.
enum Failure {
    /// Answered as a JSON-RPC error.
    Protocol(RpcError),
    /// Answered as a result with `isError: true`.
    Tool(String),
}

impl From<RpcError> for Failure {
    fn from(error: RpcError) -> Self {
        Self::Protocol(error)
    }
}

/// `tools/call`: a `CallToolResult`, or in the modern era possibly an `InputRequiredResult`.
pub(crate) async fn call(req: &Request) -> Result<Value, RpcError> {
    let name = req.str_param("name")?;
    let args = match req.params.get("arguments") {
        None | Some(Value::Null) => json!({}),
        Some(args @ Value::Object(_)) => args.clone(),
        Some(_) => return Err(RpcError::invalid_params("`arguments` must be an object")),
    };
    match run(req, name, &args).await {
        Ok(result) => Ok(result),
        Err(Failure::Tool(message)) => Ok(tool_error(message)),
        Err(Failure::Protocol(error)) => Err(error),
    }
}

async fn run(req: &Request, name: &str, args: &Value) -> Result<Value, Failure> {
    let result = match name {
        "test_simple_text" => {
            tool_result(vec![text("This is a simple text response for testing.")])
        }
        "test_image_content" => tool_result(vec![png()]),
        "test_audio_content" => tool_result(vec![wav()]),
        "test_embedded_resource" => tool_result(vec![embedded_text(
            "test://embedded-resource",
            "text/plain",
            "This is an embedded resource content.",
        )]),
        "test_multiple_content_types" => tool_result(vec![
            text("Multiple content types test:"),
            png(),
            embedded_text(
                "test://mixed-content-resource",
                "application/json",
                &json!({ "test": "data", "value": 123 }).to_string(),
            ),
        ]),
        "test_tool_with_logging" => with_logging(req).await,
        "test_tool_with_progress" => with_progress(req).await,
        "test_error_handling" => tool_error("This tool intentionally returns an error for testing"),
        "test_reconnection" => {
            // Over HTTP the reference closes the SSE stream here; stdio has none to close.
            sleep_ms(100).await;
            tool_result(vec![text(
                "Reconnection test completed successfully. If you received this, the client properly reconnected after stream closure.",
            )])
        }
        "test_sampling" => sampling(req, name, str_arg(args, "prompt")?).await?,
        "test_elicitation" => {
            let schema = json!({
                "type": "object",
                "properties": {
                    "username": { "type": "string", "description": "User's response" },
                    "email": { "type": "string", "description": "User's email address" },
                },
                "required": ["username", "email"],
            });
            elicit(
                req,
                name,
                str_arg(args, "message")?,
                schema,
                "User response",
            )
            .await?
        }
        "test_elicitation_sep1034_defaults" => {
            let schema = json!({
                "type": "object",
                "properties": {
                    "name": { "type": "string", "description": "User name", "default": "John Doe" },
                    "age": { "type": "integer", "description": "User age", "default": 30 },
                    "score": { "type": "number", "description": "User score", "default": 95.5 },
                    "status": {
                        "type": "string",
                        "description": "User status",
                        "enum": ["active", "inactive", "pending"],
                        "default": "active",
                    },
                    "verified": { "type": "boolean", "description": "Verification status", "default": true },
                },
                "required": [],
            });
            let message = "Please review and update the form fields with defaults";
            elicit(req, name, message, schema, "Elicitation completed").await?
        }
        "test_elicitation_sep1330_enums" => {
            let schema = json!({
                "type": "object",
                "properties": {
                    "untitledSingle": {
                        "type": "string",
                        "description": "Select one option",
                        "enum": ["option1", "option2", "option3"],
                    },
                    "titledSingle": {
                        "type": "string",
                        "description": "Select one option with titles",
                        "oneOf": [
                            { "const": "value1", "title": "First Option" },
                            { "const": "value2", "title": "Second Option" },
                            { "const": "value3", "title": "Third Option" },
                        ],
                    },
                    "legacyEnum": {
                        "type": "string",
                        "description": "Select one option (legacy)",
                        "enum": ["opt1", "opt2", "opt3"],
                        "enumNames": ["Option One", "Option Two", "Option Three"],
                    },
                    "untitledMulti": {
                        "type": "array",
                        "description": "Select multiple options",
                        "minItems": 1,
                        "maxItems": 3,
                        "items": { "type": "string", "enum": ["option1", "option2", "option3"] },
                    },
                    "titledMulti": {
                        "type": "array",
                        "description": "Select multiple options with titles",
                        "minItems": 1,
                        "maxItems": 3,
                        "items": {
                            "anyOf": [
                                { "const": "value1", "title": "First Choice" },
                                { "const": "value2", "title": "Second Choice" },
                                { "const": "value3", "title": "Third Choice" },
                            ],
                        },
                    },
                },
                "required": [],
            });
            let message = "Please select options from the enum fields";
            elicit(req, name, message, schema, "Elicitation completed").await?
        }
        "test_logging_tool" => logging_tool(req).await,
        "test_missing_capability" => missing_capability(req, name).await?,
        "test_streaming_elicitation" => {
            let schema = json!({
                "type": "object",
                "properties": { "answer": { "type": "string", "description": "Any answer" } },
                "required": [],
            });
            let message = "Please provide an answer";
            elicit(req, name, message, schema, "Elicitation completed").await?
        }
        "json_schema_2020_12_tool" => tool_result(vec![text(format!(
            "JSON Schema 2020-12 tool called with: {args}"
        ))]),
        "test_custom_headers" => {
            let region = args
                .get("region")
                .and_then(Value::as_str)
                .unwrap_or_default();
            tool_result(vec![text(format!(
                "Custom headers test completed: region={region}"
            ))])
        }
        name if name.starts_with("test_input_required_result_") => {
            match crate::input_required::call_tool(req, name).await {
                Some(result) => result?,
                None => {
                    return Err(RpcError::invalid_params(format!("Unknown tool: {name}")).into());
                }
            }
        }
        "echo" => echo(args)?,
        "add" => add(args)?,
        "slow" => slow(req, args).await?,
        "whoami" => {
            let (name, pid) = (&req.session.opts.name, std::process::id());
            json!({ "content": [text(format!("{name} pid={pid}"))], "structuredContent": { "name": name, "pid": pid } })
        }
        "set_tools" => set_tools(req, args)?,
        "touch_resource" => {
            let uri = str_arg(args, "uri")?;
            req.session.bump_revision(uri);
            let notified = req.session.announce(Change::ResourceUpdated(uri));
            json!({
                "content": [text(format!("notified {notified} subscriber(s) of {uri}"))],
                "structuredContent": { "uri": uri, "notified": notified },
            })
        }
        "notify_list_changed" => {
            let change = match str_arg(args, "list")? {
                "tools" => Change::ToolsListChanged,
                "prompts" => Change::PromptsListChanged,
                "resources" => Change::ResourcesListChanged,
                other => {
                    return Err(Failure::Tool(format!(
                        "unknown list {other:?}: use tools, prompts or resources"
                    )));
                }
            };
            let notified = req.session.announce(change);
            json!({
                "content": [text(format!("notified {notified} listener(s)"))],
                "structuredContent": { "notified": notified },
            })
        }
        "test_trigger_tool_change" | "test_trigger_prompt_change" => {
            let change = if name == "test_trigger_tool_change" {
                Change::ToolsListChanged
            } else {
                Change::PromptsListChanged
            };
            let notified = req.session.announce(change);
            tool_result(vec![text(format!("notified {notified} listener(s)"))])
        }
        "crash" => {
            tracing::warn!("crash tool called: exiting with status 3");
            std::process::exit(3);
        }
        "log_to_stderr" => {
            // Straight to stderr, not through tracing: tests look for this exact text.
            eprintln!("{}", str_arg(args, "text")?);
            tool_result(vec![text("ok")])
        }
        extra if req.session.extra_tools().iter().any(|name| name == extra) => echo(args)?,
        unknown => return Err(RpcError::invalid_params(format!("Unknown tool: {unknown}")).into()),
    };
    Ok(result)
}

async fn with_logging(req: &Request) -> Value {
    req.log(LogLevel::Info, json!("Tool execution started"));
    sleep_ms(50).await;
    req.log(LogLevel::Info, json!("Tool processing data"));
    sleep_ms(50).await;
    req.log(LogLevel::Info, json!("Tool execution completed"));
    tool_result(vec![text("Tool with logging executed successfully")])
}

/// Logs twice (through [`Request::log`], so only at a level the client
/// asked for), then answers.
async fn logging_tool(req: &Request) -> Value {
    req.log(LogLevel::Info, json!("test_logging_tool started"));
    sleep_ms(10).await;
    req.log(LogLevel::Info, json!("test_logging_tool finished"));
    tool_result(vec![text("Logging tool executed")])
}

/// Needs sampling: a modern request without the `sampling` client
/// capability gets -32021; a legacy one sends `sampling/createMessage`
/// (a gateway translating for a modern client answers that with -32021).
async fn missing_capability(req: &Request, tool: &str) -> Result<Value, Failure> {
    let need = InputNeed {
        key: "sampling",
        method: "sampling/createMessage",
        params: json!({
            "messages": [{ "role": "user", "content": { "type": "text", "text": "Say hello" } }],
            "maxTokens": 16,
        }),
        capability: "sampling",
    };
    Ok(match client_input::ask(req, tool, need).await? {
        Asked::Answered(_) => tool_result(vec![text("Sampling capability was available")]),
        Asked::Failed(reason) => tool_error(format!("Sampling not supported or error: {reason}")),
        Asked::InputRequired(result) => result,
    })
}

/// 0, 50 and 100 of 100, 50 ms apart; the result is the progress token as
/// text (as in the reference server), which shows what token the server saw.
async fn with_progress(req: &Request) -> Value {
    for (i, progress) in [0, 50, 100].into_iter().enumerate() {
        if i > 0 {
            sleep_ms(50).await;
        }
        req.progress(
            progress,
            Some(100),
            Some(format!("Completed step {progress} of 100")),
        );
    }
    let reply = match req.progress_token() {
        Some(Value::String(token)) => token.clone(),
        Some(token) => token.to_string(),
        None => "no progress token".to_owned(),
    };
    tool_result(vec![text(reply)])
}

async fn sampling(req: &Request, tool: &str, prompt: &str) -> Result<Value, Failure> {
    let need = InputNeed {
        key: "sampling",
        method: "sampling/createMessage",
        params: json!({
            "messages": [{ "role": "user", "content": { "type": "text", "text": prompt } }],
            "maxTokens": 100,
        }),
        capability: "sampling",
    };
    Ok(match client_input::ask(req, tool, need).await? {
        Asked::Answered(result) => {
            // 2025-11-25 lets `content` be one block or an array of blocks.
            let content = &result["content"];
            let first = if content.is_array() {
                &content[0]
            } else {
                content
            };
            let reply = first
                .get("text")
                .and_then(Value::as_str)
                .unwrap_or("No response");
            tool_result(vec![text(format!("LLM response: {reply}"))])
        }
        Asked::Failed(reason) => tool_error(format!("Sampling not supported or error: {reason}")),
        Asked::InputRequired(result) => result,
    })
}

/// Asks the user through `elicitation/create` (form mode) and reports
/// `"{label}: action=…, content=…"`.
async fn elicit(
    req: &Request,
    tool: &str,
    message: &str,
    schema: Value,
    label: &str,
) -> Result<Value, Failure> {
    let need = InputNeed {
        key: "elicitation",
        method: "elicitation/create",
        params: json!({ "mode": "form", "message": message, "requestedSchema": schema }),
        capability: "elicitation",
    };
    Ok(match client_input::ask(req, tool, need).await? {
        Asked::Answered(result) => {
            let action = result
                .get("action")
                .and_then(Value::as_str)
                .unwrap_or("unknown");
            let content = result.get("content").cloned().unwrap_or_else(|| json!({}));
            tool_result(vec![text(format!(
                "{label}: action={action}, content={content}"
            ))])
        }
        Asked::Failed(reason) => {
            tool_error(format!("Elicitation not supported or error: {reason}"))
        }
        Asked::InputRequired(result) => result,
    })
}

fn echo(args: &Value) -> Result<Value, Failure> {
    Ok(tool_result(vec![content::text(format!(
        "Echo: {}",
        str_arg(args, "message")?
    ))]))
}

fn add(args: &Value) -> Result<Value, Failure> {
    let (a, b) = (number_arg(args, "a")?, number_arg(args, "b")?);
    // Integers stay exact; anything else is added as f64.
    let sum = match (a.as_i64(), b.as_i64()) {
        (Some(a), Some(b)) if a.checked_add(b).is_some() => Number::from(a + b),
        _ => {
            let sum = a.as_f64().unwrap_or(f64::NAN) + b.as_f64().unwrap_or(f64::NAN);
            Number::from_f64(sum)
                .ok_or_else(|| Failure::Tool("the sum is not a finite number".into()))?
        }
    };
    Ok(json!({ "content": [text(sum.to_string())], "structuredContent": { "sum": sum } }))
}

async fn slow(req: &Request, args: &Value) -> Result<Value, Failure> {
    let ms = u64_arg(args, "ms", 1000)?;
    let steps = u64_arg(args, "steps", 10)?;
    if steps == 0 {
        sleep_ms(ms).await;
    }
    for step in 1..=steps {
        // Spread `ms` evenly; the remainder goes to the last step.
        let share = ms / steps + if step == steps { ms % steps } else { 0 };
        sleep_ms(share).await;
        req.progress(step, Some(steps), None);
    }
    Ok(tool_result(vec![text("done")]))
}

fn set_tools(req: &Request, args: &Value) -> Result<Value, Failure> {
    let names = args
        .get("extra")
        .and_then(Value::as_array)
        .ok_or_else(|| Failure::Tool("argument `extra` must be an array of tool names".into()))?;
    let builtin_names: Vec<&str> = builtins().iter().map(|(name, _, _)| *name).collect();
    let mut extra: Vec<String> = Vec::new();
    for name in names {
        let name = name
            .as_str()
            .ok_or_else(|| Failure::Tool("argument `extra` must hold strings".into()))?;
        if !is_valid_tool_name(name) {
            return Err(Failure::Tool(format!(
                "invalid tool name {name:?}: use 1-128 characters of A-Z a-z 0-9 _ . -"
            )));
        }
        if builtin_names.contains(&name) {
            return Err(Failure::Tool(format!("{name} is a built-in tool")));
        }
        if !extra.iter().any(|e| e == name) {
            extra.push(name.to_owned());
        }
    }
    let description = args
        .get("description")
        .and_then(Value::as_str)
        .map(str::to_owned);
    req.session.set_extra_tools(extra.clone(), description);
    let notified = req.session.announce(Change::ToolsListChanged);
    let listing = if extra.is_empty() {
        "(none)".to_owned()
    } else {
        extra.join(", ")
    };
    Ok(json!({
        "content": [text(format!("extra tools: {listing}"))],
        "structuredContent": { "extra": extra, "notified": notified },
    }))
}

/// SEP-986: 1–128 characters of `[A-Za-z0-9_.-]`.
fn is_valid_tool_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn str_arg<'a>(args: &'a Value, key: &str) -> Result<&'a str, Failure> {
    args.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| Failure::Tool(format!("argument `{key}` must be a string")))
}

fn number_arg<'a>(args: &'a Value, key: &str) -> Result<&'a Number, Failure> {
    match args.get(key) {
        Some(Value::Number(n)) => Ok(n),
        _ => Err(Failure::Tool(format!("argument `{key}` must be a number"))),
    }
}

fn u64_arg(args: &Value, key: &str, default: u64) -> Result<u64, Failure> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(value) => value.as_u64().ok_or_else(|| {
            Failure::Tool(format!("argument `{key}` must be a non-negative integer"))
        }),
    }
}

async fn sleep_ms(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_names_are_valid_and_unique() {
        let names: Vec<&str> = builtins().iter().map(|(name, _, _)| *name).collect();
        assert!(names.iter().all(|name| is_valid_tool_name(name)));
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len());
    }

    #[test]
    fn json_schema_tool_keeps_2020_12_keywords() {
        let schema = json_schema_2020_12();
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(schema["$defs"]["address"]["$anchor"], "addressDef");
        assert!(schema["allOf"][0]["anyOf"].is_array());
        for keyword in ["if", "then", "else"] {
            assert!(schema.get(keyword).is_some(), "{keyword}");
        }
    }

    #[test]
    fn sep_2575_diagnostic_tools_are_listed() {
        let names: Vec<&str> = builtins().iter().map(|(name, _, _)| *name).collect();
        for tool in [
            "test_logging_tool",
            "test_missing_capability",
            "test_streaming_elicitation",
        ] {
            assert!(names.contains(&tool), "{tool}");
        }
    }

    #[test]
    fn tool_name_rules() {
        assert!(is_valid_tool_name("a.b-c_9"));
        assert!(!is_valid_tool_name(""));
        assert!(!is_valid_tool_name("has space"));
        assert!(!is_valid_tool_name(&"x".repeat(129)));
    }

    #[test]
    fn add_keeps_integers_exact() {
        let sum = |a: Value, b: Value| match add(&json!({ "a": a, "b": b })) {
            Ok(result) => result["content"][0]["text"].as_str().unwrap().to_owned(),
            Err(_) => "error".to_owned(),
        };
        assert_eq!(sum(json!(2), json!(3)), "5");
        assert_eq!(sum(json!(1.5), json!(1)), "2.5");
        assert_eq!(sum(json!("2"), json!(3)), "error");
    }
}
