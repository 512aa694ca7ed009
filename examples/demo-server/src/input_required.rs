//! The SEP-2322 fixture of the conformance suite 0.2
//! (`input-required-result-*` scenarios): tools, and one prompt, that need
//! input from the client, in either era (see `client_input::gather`).
//!
//! Input request keys, messages and schemas are the ones the scenarios'
//! descriptions give (`user_name`, `capital_question`, `client_roots`,
//! `confirm`, `greeting`, `step1`/`step2`, `user_context`); the scenarios answer
//! by those keys where they name them.

use serde_json::{Map, Value, json};

use crate::client_input::{self, Gathered, InputNeed};
use crate::content::{text, tool_error, tool_result};
use crate::protocol::RpcError;
use crate::request::{Request, RequestEra};

/// `(name, description)` of the tools, in listing order; none takes arguments.
pub(crate) const TOOLS: &[(&str, &str)] = &[
    (
        "test_input_required_result_elicitation",
        "Tests an InputRequiredResult with one elicitation (SEP-2322): asks the user's name, answers \"Hello, <name>!\"",
    ),
    (
        "test_input_required_result_sampling",
        "Tests an InputRequiredResult with one sampling request (SEP-2322): asks for the capital of France",
    ),
    (
        "test_input_required_result_list_roots",
        "Tests an InputRequiredResult with one roots/list request (SEP-2322): reports the client's roots",
    ),
    (
        "test_input_required_result_request_state",
        "Tests the requestState round trip (SEP-2322): answers \"state-ok\" once the confirmation comes back with its requestState",
    ),
    (
        "test_input_required_result_multiple_inputs",
        "Tests several inputRequests at once (SEP-2322): elicitation, sampling and roots/list",
    ),
    (
        "test_input_required_result_multi_round",
        "Tests a multi-round InputRequiredResult flow (SEP-2322): asks a name, then a favorite color",
    ),
    (
        "test_input_required_result_tampered_state",
        "Tests that a tampered requestState is rejected (SEP-2322): asks a confirmation under an integrity-protected requestState",
    ),
    (
        "test_input_required_result_capabilities",
        "Tests that inputRequests respect the client's capabilities (SEP-2322): asks only what the client declared (elicitation, sampling, roots)",
    ),
];

/// The prompt that needs input.
pub(crate) const PROMPT: &str = "test_input_required_result_prompt";

fn elicit_name(key: &'static str, message: &str) -> InputNeed {
    elicitation(key, message, "name", "string")
}

fn elicitation(key: &'static str, message: &str, field: &str, kind: &str) -> InputNeed {
    InputNeed {
        key,
        method: "elicitation/create",
        params: json!({
            "message": message,
            "requestedSchema": {
                "type": "object",
                "properties": { field: { "type": kind } },
                "required": [field],
            },
        }),
        capability: "elicitation",
    }
}

fn sample(key: &'static str, prompt: &str, max_tokens: u32) -> InputNeed {
    InputNeed {
        key,
        method: "sampling/createMessage",
        params: json!({
            "messages": [{ "role": "user", "content": { "type": "text", "text": prompt } }],
            "maxTokens": max_tokens,
        }),
        capability: "sampling",
    }
}

fn list_roots(key: &'static str) -> InputNeed {
    InputNeed {
        key,
        method: "roots/list",
        params: json!({}),
        capability: "roots",
    }
}

/// The rounds of input `tool` needs, and whether answers count only with a
/// `requestState`; `None` for a name not in [`TOOLS`].
fn plan(req: &Request, tool: &str) -> Option<(Vec<Vec<InputNeed>>, bool)> {
    let confirm = || elicitation("confirm", "Please confirm", "ok", "boolean");
    Some(match tool {
        "test_input_required_result_elicitation" => (
            vec![vec![elicit_name("user_name", "What is your name?")]],
            false,
        ),
        "test_input_required_result_sampling" => (
            vec![vec![sample(
                "capital_question",
                "What is the capital of France?",
                100,
            )]],
            false,
        ),
        "test_input_required_result_list_roots" => (vec![vec![list_roots("client_roots")]], false),
        "test_input_required_result_request_state" => (vec![vec![confirm()]], true),
        "test_input_required_result_tampered_state" => (vec![vec![confirm()]], true),
        "test_input_required_result_multiple_inputs" => (
            vec![vec![
                elicit_name("user_name", "What is your name?"),
                sample("greeting", "Generate a greeting", 50),
                list_roots("client_roots"),
            ]],
            true,
        ),
        "test_input_required_result_multi_round" => (
            vec![
                vec![elicit_name("step1", "Step 1: What is your name?")],
                vec![elicitation(
                    "step2",
                    "Step 2: What is your favorite color?",
                    "color",
                    "string",
                )],
            ],
            true,
        ),
        "test_input_required_result_capabilities" => {
            let declared = declared_capabilities(req);
            let needs: Vec<InputNeed> = [
                elicit_name("user_name", "What is your name?"),
                sample("greeting", "Generate a greeting", 50),
                list_roots("client_roots"),
            ]
            .into_iter()
            .filter(|need| {
                declared
                    .as_ref()
                    .is_none_or(|caps| caps.get(need.capability).is_some())
            })
            .collect();
            (vec![needs], false)
        }
        _ => return None,
    })
}

/// The client's capabilities: this request's (modern), the session's
/// (legacy), or `None` before a legacy `initialize`.
fn declared_capabilities(req: &Request) -> Option<Value> {
    match &req.era {
        RequestEra::Modern(meta) => Some(meta.client_capabilities.clone()),
        RequestEra::Legacy => req.session.legacy_client_capabilities(),
    }
}

/// `tools/call` of one of [`TOOLS`]; `None` if `tool` is not one of them.
pub(crate) async fn call_tool(req: &Request, tool: &str) -> Option<Result<Value, RpcError>> {
    let (rounds, state_required) = plan(req, tool)?;
    if rounds.iter().all(Vec::is_empty) {
        return Some(Ok(tool_result(vec![text(
            "The client declared none of elicitation, sampling and roots: nothing to ask",
        )])));
    }
    Some(
        client_input::gather(req, tool, rounds, state_required)
            .await
            .map(|gathered| match gathered {
                Gathered::Answered(answers) => tool_result(vec![text(finish(tool, &answers))]),
                Gathered::Failed(reason) => {
                    tool_error(format!("Could not get input from the client: {reason}"))
                }
                Gathered::InputRequired(result) => result,
            }),
    )
}

/// The final text of `tool` from its answers.
fn finish(tool: &str, answers: &Map<String, Value>) -> String {
    match tool {
        "test_input_required_result_elicitation" => greeting(&answers["user_name"], "name"),
        "test_input_required_result_sampling" => {
            format!(
                "LLM response: {}",
                sampled_text(&answers["capital_question"])
            )
        }
        "test_input_required_result_list_roots" => {
            format!("Client roots: {}", roots(&answers["client_roots"]))
        }
        "test_input_required_result_request_state" => format!(
            "state-ok: confirmation {}",
            elicited(&answers["confirm"], "ok")
        ),
        "test_input_required_result_tampered_state" => format!(
            "Confirmed, with no tampering detected: confirmation {}",
            elicited(&answers["confirm"], "ok")
        ),
        "test_input_required_result_multiple_inputs" => format!(
            "{} Greeting: \"{}\". Client roots: {}",
            greeting(&answers["user_name"], "name"),
            sampled_text(&answers["greeting"]),
            roots(&answers["client_roots"]),
        ),
        "test_input_required_result_multi_round" => format!(
            "Completed 2 rounds: name {}, favorite color {}",
            elicited(&answers["step1"], "name"),
            elicited(&answers["step2"], "color"),
        ),
        _ => {
            let parts: Vec<String> = answers
                .iter()
                .map(|(key, answer)| match key.as_str() {
                    "user_name" => format!("user_name: {}", elicited(answer, "name")),
                    "greeting" => format!("greeting: {}", sampled_text(answer)),
                    "client_roots" => format!("client_roots: {}", roots(answer)),
                    _ => format!("{key}: {answer}"),
                })
                .collect();
            format!(
                "Asked only for what the client declared. {}",
                parts.join("; ")
            )
        }
    }
}

/// `"Hello, <name>!"` for an accepted elicitation.
fn greeting(answer: &Value, field: &str) -> String {
    match accepted_field(answer, field) {
        Some(name) => format!("Hello, {name}!"),
        None => format!("Hello, stranger! (no {field} given)"),
    }
}

fn accepted_field(answer: &Value, field: &str) -> Option<String> {
    if answer.get("action").and_then(Value::as_str) != Some("accept") {
        return None;
    }
    let value = answer.get("content")?.get(field)?;
    Some(match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// `"<value>"` if accepted, else `"not given (action=…)"`.
fn elicited(answer: &Value, field: &str) -> String {
    accepted_field(answer, field).unwrap_or_else(|| {
        let action = answer
            .get("action")
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        format!("not given (action={action})")
    })
}

/// The text of a `CreateMessageResult`, whose `content` is one block or (2025-11-25) an array.
fn sampled_text(answer: &Value) -> String {
    let content = &answer["content"];
    let first = if content.is_array() {
        &content[0]
    } else {
        content
    };
    first
        .get("text")
        .and_then(Value::as_str)
        .unwrap_or("No response")
        .to_owned()
}

/// `"uri (name), …"` of a `ListRootsResult`.
fn roots(answer: &Value) -> String {
    let roots: Vec<String> = answer
        .get("roots")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|root| {
            let uri = root.get("uri").and_then(Value::as_str).unwrap_or("?");
            match root.get("name").and_then(Value::as_str) {
                Some(name) => format!("{uri} ({name})"),
                None => uri.to_owned(),
            }
        })
        .collect();
    if roots.is_empty() {
        "(none)".to_owned()
    } else {
        roots.join(", ")
    }
}

/// `prompts/get` of [`PROMPT`]: asks for the context, then builds the prompt from it.
pub(crate) async fn get_prompt(req: &Request, description: &str) -> Result<Value, RpcError> {
    let need = elicitation(
        "user_context",
        "What context should the prompt use?",
        "context",
        "string",
    );
    match client_input::gather(req, PROMPT, vec![vec![need]], false).await? {
        Gathered::Answered(answers) => {
            let prompt = match accepted_field(&answers["user_context"], "context") {
                Some(context) => format!("Answer using this context: {context}"),
                None => format!(
                    "Answer without extra context (the user gave none: {})",
                    elicited(&answers["user_context"], "context")
                ),
            };
            Ok(json!({
                "description": description,
                "messages": [{ "role": "user", "content": text(prompt) }],
            }))
        }
        Gathered::Failed(reason) => Err(RpcError::internal(format!(
            "{PROMPT} needs the user's context: {reason}"
        ))),
        Gathered::InputRequired(result) => Ok(result),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_make_the_texts_the_scenarios_look_for() {
        let accept = |content: Value| json!({ "action": "accept", "content": content });
        let mut answers = Map::new();
        answers.insert("user_name".into(), accept(json!({ "name": "Alice" })));
        assert_eq!(
            finish("test_input_required_result_elicitation", &answers),
            "Hello, Alice!"
        );
        answers.insert("confirm".into(), accept(json!({ "ok": true })));
        assert!(finish("test_input_required_result_request_state", &answers).contains("state-ok"));
        answers.insert(
            "greeting".into(),
            json!({ "role": "assistant", "content": { "type": "text", "text": "Hello there!" }, "model": "m" }),
        );
        answers.insert(
            "client_roots".into(),
            json!({ "roots": [{ "uri": "file:///test/root", "name": "Test Root" }] }),
        );
        assert_eq!(
            finish("test_input_required_result_multiple_inputs", &answers),
            "Hello, Alice! Greeting: \"Hello there!\". Client roots: file:///test/root (Test Root)"
        );
        let declined = json!({ "action": "decline" });
        assert_eq!(
            greeting(&declined, "name"),
            "Hello, stranger! (no name given)"
        );
    }

    /// A client on the other end of [`crate::serve`].
    struct Client {
        input: tokio::io::DuplexStream,
        output: tokio::io::Lines<tokio::io::BufReader<tokio::io::DuplexStream>>,
        next_id: u64,
    }

    impl Client {
        fn start(era: crate::Era) -> Self {
            let (input, server_input) = tokio::io::duplex(1 << 16);
            let (server_output, output) = tokio::io::duplex(1 << 16);
            let opts = crate::Options {
                era,
                watch_interval: None,
                ..crate::Options::default()
            };
            tokio::spawn(crate::serve(opts, server_input, server_output));
            let output = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(output));
            Self {
                input,
                output,
                next_id: 0,
            }
        }

        async fn send(&mut self, message: Value) {
            let line = format!("{message}\n");
            tokio::io::AsyncWriteExt::write_all(&mut self.input, line.as_bytes())
                .await
                .unwrap();
        }

        async fn receive(&mut self) -> Value {
            let line = self.output.next_line().await.unwrap().expect("a line");
            serde_json::from_str(&line).unwrap()
        }

        /// Sends a request and returns the next message, its response.
        async fn request(&mut self, method: &str, params: Value) -> Value {
            self.next_id += 1;
            let id = self.next_id;
            self.send(json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }))
                .await;
            self.receive().await
        }
    }

    fn modern(params: Value) -> Value {
        let mut params = params;
        params["_meta"] = json!({
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": { "elicitation": {}, "sampling": {}, "roots": {} },
        });
        params
    }

    #[tokio::test]
    async fn modern_multi_round_evolves_the_state_and_rejects_tampering() {
        let mut client = Client::start(crate::Era::Modern);
        let name = "test_input_required_result_multi_round";
        let r1 = client
            .request(
                "tools/call",
                modern(json!({ "name": name, "arguments": {} })),
            )
            .await["result"]
            .clone();
        assert_eq!(r1["resultType"], "input_required");
        assert_eq!(r1["inputRequests"]["step1"]["method"], "elicitation/create");
        let answer = |content: Value| json!({ "action": "accept", "content": content });
        let retry = |key: &str, content: Value, state: &Value| {
            modern(json!({
                "name": name,
                "arguments": {},
                "inputResponses": { key: answer(content) },
                "requestState": state,
            }))
        };
        let r2 = client
            .request(
                "tools/call",
                retry("step1", json!({ "name": "Alice" }), &r1["requestState"]),
            )
            .await["result"]
            .clone();
        assert_eq!(r2["resultType"], "input_required");
        assert!(r2["inputRequests"]["step2"].is_object());
        assert_ne!(r2["requestState"], r1["requestState"]);
        let tampered = json!(format!("{}-TAMPERED", r2["requestState"].as_str().unwrap()));
        let rejected = client
            .request(
                "tools/call",
                retry("step2", json!({ "color": "blue" }), &tampered),
            )
            .await;
        assert_eq!(rejected["error"]["code"], -32602);
        let r3 = client
            .request(
                "tools/call",
                retry("step2", json!({ "color": "blue" }), &r2["requestState"]),
            )
            .await["result"]
            .clone();
        assert_eq!(r3["resultType"], "complete");
        assert_eq!(
            r3["content"][0]["text"],
            "Completed 2 rounds: name Alice, favorite color blue"
        );
    }

    #[tokio::test]
    async fn modern_capabilities_tool_asks_only_what_was_declared() {
        let mut client = Client::start(crate::Era::Modern);
        let mut params =
            modern(json!({ "name": "test_input_required_result_capabilities", "arguments": {} }));
        params["_meta"]["io.modelcontextprotocol/clientCapabilities"] = json!({ "sampling": {} });
        let result = client.request("tools/call", params).await["result"].clone();
        let methods: Vec<&Value> = result["inputRequests"]
            .as_object()
            .unwrap()
            .values()
            .map(|request| &request["method"])
            .collect();
        assert_eq!(methods, [&json!("sampling/createMessage")]);
    }

    #[tokio::test]
    async fn legacy_sends_a_rounds_requests_together_and_answers_from_them() {
        let mut client = Client::start(crate::Era::Legacy);
        let init = json!({
            "protocolVersion": "2025-11-25",
            "capabilities": { "elicitation": {}, "sampling": {}, "roots": {} },
            "clientInfo": { "name": "test", "version": "1" },
        });
        client.request("initialize", init).await;
        client
            .send(json!({ "jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": { "name": "test_input_required_result_multiple_inputs", "arguments": {} } }))
            .await;
        // All three requests arrive before any is answered.
        let mut asked = Vec::new();
        for _ in 0..3 {
            asked.push(client.receive().await);
        }
        let methods: Vec<&str> = asked
            .iter()
            .map(|m| m["method"].as_str().unwrap())
            .collect();
        assert_eq!(
            methods,
            ["elicitation/create", "sampling/createMessage", "roots/list"]
        );
        let answers = [
            json!({ "action": "accept", "content": { "name": "Bob" } }),
            json!({ "role": "assistant", "content": { "type": "text", "text": "Hi" }, "model": "m" }),
            json!({ "roots": [{ "uri": "file:///r" }] }),
        ];
        for (request, result) in asked.iter().zip(answers) {
            client
                .send(json!({ "jsonrpc": "2.0", "id": request["id"], "result": result }))
                .await;
        }
        let response = client.receive().await;
        assert_eq!(response["id"], 9);
        assert_eq!(
            response["result"]["content"][0]["text"],
            "Hello, Bob! Greeting: \"Hi\". Client roots: file:///r"
        );
    }
}
