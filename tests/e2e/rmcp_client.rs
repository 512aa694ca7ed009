//! The official Rust SDK (rmcp) as an independent client of a real gateway:
//! the legacy lifecycle (`initialize`) with progress, sampling, elicitation
//! and tools list_changed, the modern lifecycle (`server/discover`) with
//! `subscriptions/listen`, and an aggregated route.

// rmcp marks sampling deprecated (SEP-2577), yet the legacy era still has it.
#![allow(deprecated)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, CreateMessageRequestParams,
    CreateMessageResult, ElicitRequestParams, ElicitResult, ElicitationAction, Implementation,
    ProgressNotificationParam, ProtocolVersion, SamplingMessage, ServerNotification,
    SubscriptionFilter,
};
use rmcp::service::{NotificationContext, RequestContext, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{ClientHandler, ClientLifecycleMode, ClientServiceExt, ErrorData, RoleClient};
use serde_json::{Value, json};

use crate::harness::{Gateway, LEGACY, MODERN, demo_config, eventually};

/// What the text answered to every `sampling/createMessage`.
const SAMPLED: &str = "rmcp-sampled-text";

/// A client handler that records what the server sent it.
#[derive(Clone, Default)]
struct Recorder {
    progress: Arc<Mutex<Vec<ProgressNotificationParam>>>,
    /// The text of each sampling request's first message.
    sampling_prompts: Arc<Mutex<Vec<String>>>,
    /// The message of each elicitation request.
    elicitations: Arc<Mutex<Vec<String>>>,
    tools_changed: Arc<Mutex<usize>>,
    /// The protocol version sent in `initialize`.
    protocol: Option<ProtocolVersion>,
}

impl Recorder {
    fn legacy() -> Recorder {
        Recorder {
            protocol: Some(ProtocolVersion::V_2025_11_25),
            ..Recorder::default()
        }
    }

    fn tools_changed(&self) -> usize {
        *self.tools_changed.lock().unwrap()
    }
}

impl ClientHandler for Recorder {
    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        let prompt = params
            .messages
            .first()
            .and_then(|m| m.content.first())
            .and_then(|c| c.as_text())
            .map(|t| t.text.clone())
            .unwrap_or_default();
        self.sampling_prompts.lock().unwrap().push(prompt);
        Ok(CreateMessageResult::new(
            SamplingMessage::assistant_text(SAMPLED),
            "e2e-model".into(),
        ))
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        let message = match request {
            ElicitRequestParams::FormElicitationParams { message, .. } => message,
            ElicitRequestParams::UrlElicitationParams { message, .. } => {
                format!("url: {message}")
            }
            _ => "unknown elicitation".into(),
        };
        self.elicitations.lock().unwrap().push(message);
        Ok(ElicitResult::new(ElicitationAction::Accept)
            .with_content(json!({"username": "ada", "email": "ada@example.com"})))
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.progress.lock().unwrap().push(params);
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        *self.tools_changed.lock().unwrap() += 1;
    }

    fn get_info(&self) -> ClientConfig {
        let capabilities: ClientCapabilities =
            serde_json::from_value(json!({"sampling": {}, "elicitation": {"form": {}}})).unwrap();
        let info = ClientConfig::new(
            capabilities,
            Implementation::new("switchyard-e2e-rmcp", "1"),
        );
        match &self.protocol {
            Some(version) => info.with_protocol_version(version.clone()),
            None => info,
        }
    }
}

type Client = RunningService<RoleClient, Recorder>;

async fn connect(url: &str, handler: Recorder, lifecycle: ClientLifecycleMode) -> Client {
    let transport = StreamableHttpClientTransport::from_uri(url.to_owned());
    tokio::time::timeout(
        Duration::from_secs(15),
        handler.serve_with_lifecycle(transport, lifecycle),
    )
    .await
    .expect("rmcp connects within 15 s")
    .unwrap_or_else(|e| panic!("rmcp could not connect to {url}: {e}"))
}

async fn connect_legacy(url: &str, handler: Recorder) -> Client {
    connect(url, handler, ClientLifecycleMode::Initialize).await
}

async fn connect_modern(url: &str) -> Client {
    connect(
        url,
        Recorder::default(),
        ClientLifecycleMode::Discover {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        },
    )
    .await
}

fn protocol_of(client: &Client) -> String {
    client
        .peer_info()
        .expect("the server's info is known after connecting")
        .protocol_version
        .to_string()
}

/// Calls a tool (within 20 s) and returns the whole result as JSON.
async fn call(client: &Client, tool: &str, args: Value) -> Value {
    let params = CallToolRequestParams::new(tool.to_owned())
        .with_arguments(args.as_object().expect("arguments are an object").clone());
    let result = tokio::time::timeout(Duration::from_secs(20), client.call_tool(params))
        .await
        .unwrap_or_else(|_| panic!("tools/call {tool} answered within 20 s"))
        .unwrap_or_else(|e| panic!("tools/call {tool} failed: {e}"));
    serde_json::to_value(result).unwrap()
}

/// Calls a tool and returns its first text content; panics on `isError`.
async fn call_text(client: &Client, tool: &str, args: Value) -> String {
    let result = call(client, tool, args).await;
    assert_ne!(
        result["isError"], true,
        "{tool} returned an error: {result}"
    );
    result["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{tool} returned no text: {result}"))
        .to_owned()
}

async fn tool_names(client: &Client) -> Vec<String> {
    let tools = tokio::time::timeout(Duration::from_secs(10), client.list_all_tools())
        .await
        .expect("tools/list answered within 10 s")
        .expect("tools/list succeeds");
    tools.iter().map(|t| t.name.to_string()).collect()
}

#[tokio::test]
async fn rmcp_legacy_lists_calls_and_receives_progress() {
    let gw = Gateway::start(&demo_config(&[("demo", "")])).await;
    let handler = Recorder::legacy();
    let client = connect_legacy(&gw.url("/mcp"), handler.clone()).await;
    assert_eq!(protocol_of(&client), LEGACY);

    let names = tool_names(&client).await;
    for want in ["echo", "add", "slow", "whoami", "set_tools"] {
        assert!(names.iter().any(|n| n == want), "no {want} in {names:?}");
    }
    assert_eq!(
        call_text(&client, "echo", json!({"message": "hello from rmcp"})).await,
        "Echo: hello from rmcp"
    );
    assert_eq!(
        call_text(&client, "add", json!({"a": 2, "b": 40})).await,
        "42"
    );

    // rmcp puts a progress token on every request; only `slow` reports progress.
    assert_eq!(
        call_text(&client, "slow", json!({"ms": 300, "steps": 3})).await,
        "done"
    );
    let progress = handler.progress.lock().unwrap().clone();
    let steps: Vec<(f64, Option<f64>)> = progress.iter().map(|p| (p.progress, p.total)).collect();
    assert_eq!(
        steps,
        vec![(1.0, Some(3.0)), (2.0, Some(3.0)), (3.0, Some(3.0))],
        "{progress:?}"
    );
    assert!(
        progress
            .iter()
            .all(|p| p.progress_token == progress[0].progress_token),
        "one request, one token: {progress:?}"
    );
    client.cancel().await.unwrap();
    gw.shutdown().await;
}

#[tokio::test]
async fn rmcp_legacy_answers_sampling_and_elicitation() {
    sampling_and_elicitation_across("--era legacy", false).await;
}

/// The era bridge, legacy upstream → modern client: rmcp receives
/// InputRequiredResults and retries with its answers.
#[tokio::test]
async fn rmcp_modern_answers_a_legacy_upstreams_sampling_and_elicitation() {
    sampling_and_elicitation_across("--era legacy", true).await;
}

/// The era bridge, modern upstream → legacy client: rmcp receives real
/// server requests; the gateway retries the upstream with the answers.
#[tokio::test]
async fn rmcp_legacy_answers_a_modern_upstreams_input_requests() {
    sampling_and_elicitation_across("--era modern", false).await;
}

/// Both modern: the upstream's InputRequiredResult passes through.
#[tokio::test]
async fn rmcp_modern_answers_a_modern_upstreams_input_requests() {
    sampling_and_elicitation_across("--era modern", true).await;
}

/// One cell of the era matrix: sampling and elicitation with the demo
/// upstream in `upstream_era`, rmcp connecting in the modern or legacy era.
async fn sampling_and_elicitation_across(upstream_era: &str, modern_client: bool) {
    let gw = Gateway::start(&demo_config(&[("demo", upstream_era)])).await;
    let (handler, lifecycle) = if modern_client {
        (
            Recorder::default(),
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
    } else {
        (Recorder::legacy(), ClientLifecycleMode::Initialize)
    };
    let client = connect(&gw.url("/mcp"), handler.clone(), lifecycle).await;
    let expected = if modern_client { MODERN } else { LEGACY };
    assert_eq!(protocol_of(&client), expected);

    let text = call_text(
        &client,
        "test_sampling",
        json!({"prompt": "What is the capital of France?"}),
    )
    .await;
    assert_eq!(text, format!("LLM response: {SAMPLED}"));
    assert_eq!(
        *handler.sampling_prompts.lock().unwrap(),
        vec!["What is the capital of France?".to_owned()]
    );

    let text = call_text(
        &client,
        "test_elicitation",
        json!({"message": "Who are you?"}),
    )
    .await;
    assert!(
        text.starts_with("User response: action=accept, content="),
        "{text}"
    );
    let content: Value =
        serde_json::from_str(text.trim_start_matches("User response: action=accept, content="))
            .unwrap_or_else(|e| panic!("content is not JSON ({e}): {text}"));
    assert_eq!(
        content,
        json!({"username": "ada", "email": "ada@example.com"})
    );
    assert_eq!(
        *handler.elicitations.lock().unwrap(),
        vec!["Who are you?".to_owned()]
    );
    client.cancel().await.unwrap();
    gw.shutdown().await;
}

#[tokio::test]
async fn rmcp_legacy_hears_tools_list_changed() {
    let gw = Gateway::start(&demo_config(&[("demo", "")])).await;
    let handler = Recorder::legacy();
    let client = connect_legacy(&gw.url("/mcp"), handler.clone()).await;
    let before = tool_names(&client).await;
    assert!(!before.iter().any(|n| n.starts_with("rmcp_extra")));

    // The notification goes to the standalone GET stream, which rmcp opens in
    // the background after `initialize`: a notification sent before it is
    // open is (rightly) not delivered, so a few tries are allowed.
    let mut heard = false;
    let mut last = String::new();
    for attempt in 0..5 {
        last = format!("rmcp_extra{attempt}");
        let seen = handler.tools_changed();
        call_text(&client, "set_tools", json!({"extra": [last.clone()]})).await;
        if eventually(Duration::from_secs(2), async || {
            handler.tools_changed() > seen
        })
        .await
        {
            heard = true;
            break;
        }
    }
    assert!(
        heard,
        "no notifications/tools/list_changed reached on_tool_list_changed"
    );
    // The list changed, and rmcp's cached list was dropped.
    let after = tool_names(&client).await;
    assert!(after.contains(&last), "{last} not in {after:?}");
    client.cancel().await.unwrap();
    gw.shutdown().await;
}

#[tokio::test]
async fn rmcp_modern_discover_lists_calls_and_listens() {
    let gw = Gateway::start(&demo_config(&[("demo", "")])).await;
    let url = gw.url("/mcp");
    let client = connect_modern(&url).await;
    assert_eq!(protocol_of(&client), MODERN);

    let names = tool_names(&client).await;
    assert!(names.iter().any(|n| n == "echo"), "{names:?}");
    assert!(!names.iter().any(|n| n == "modern_extra"), "{names:?}");
    assert_eq!(
        call_text(&client, "echo", json!({"message": "modern rmcp"})).await,
        "Echo: modern rmcp"
    );

    let mut sub = tokio::time::timeout(
        Duration::from_secs(10),
        client.listen(SubscriptionFilter::builder().tools_list_changed().build()),
    )
    .await
    .expect("subscriptions/listen is acknowledged within 10 s")
    .expect("subscriptions/listen succeeds");
    assert_eq!(sub.acknowledged().tools_list_changed, Some(true));

    // Another modern client changes the tool list.
    let actor = connect_modern(&url).await;
    let text = call_text(&actor, "set_tools", json!({"extra": ["modern_extra"]})).await;
    assert!(text.contains("modern_extra"), "{text}");

    let n = tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("a notification within 10 s")
        .expect("the subscription carries valid messages")
        .expect("the subscription is still open");
    assert!(
        matches!(n, ServerNotification::ToolListChangedNotification(_)),
        "{n:?}"
    );
    let names = tool_names(&client).await;
    assert!(names.iter().any(|n| n == "modern_extra"), "{names:?}");

    sub.cancel().await.unwrap();
    actor.cancel().await.unwrap();
    client.cancel().await.unwrap();
    gw.shutdown().await;
}

#[tokio::test]
async fn rmcp_on_an_aggregated_route_reaches_both_upstreams() {
    let gw = Gateway::start(&demo_config(&[("a", ""), ("b", "")])).await;
    let url = gw.url("/mcp");
    for (era, client) in [
        ("legacy", connect_legacy(&url, Recorder::legacy()).await),
        ("modern", connect_modern(&url).await),
    ] {
        let names = tool_names(&client).await;
        assert!(names.iter().any(|n| n == "a__echo"), "{era}: {names:?}");
        assert!(names.iter().any(|n| n == "b__echo"), "{era}: {names:?}");
        assert!(!names.iter().any(|n| n == "echo"), "{era}: {names:?}");
        assert_eq!(
            call_text(&client, "a__echo", json!({"message": "to a"})).await,
            "Echo: to a"
        );
        assert_eq!(
            call_text(&client, "b__echo", json!({"message": "to b"})).await,
            "Echo: to b"
        );
        // Each prefix reaches its own upstream.
        let a = call(&client, "a__whoami", json!({})).await;
        let b = call(&client, "b__whoami", json!({})).await;
        assert_eq!(a["structuredContent"]["name"], "a", "{era}: {a}");
        assert_eq!(b["structuredContent"]["name"], "b", "{era}: {b}");
        client.cancel().await.unwrap();
    }
    gw.shutdown().await;
}
