//! The first-party policies (`plugins/*`), embedded in the binary as
//! `builtin:NAME`, in a real gateway in front of the demo server.

use std::time::Duration;

use serde_json::json;

use crate::harness::{Gateway, Legacy, demo_config, modern, tool_names};

fn echo_call() -> serde_json::Value {
    json!({"name": "echo", "arguments": {"message": "x"}})
}

#[tokio::test]
async fn rate_limit_refuses_with_an_accurate_retry_after_and_survives_a_swap() {
    let config = |extra: &str| {
        format!(
            "{}[plugins.limit]\ncomponent = \"builtin:rate-limit\"\nconfig = {{ capacity = 2, key = [\"route\"]{extra} }}\n\n[[routes]]\npath = \"/mcp\"\nupstreams = [\"demo\"]\nplugins = [\"limit\"]\n",
            demo_config(&[("demo", "")])
        )
    };
    let dir = std::env::temp_dir().join(format!("switchyard-rl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("limit.toml");
    let gw = Gateway::start_file(&file, &config(", refill_per_second = 0.5")).await;
    let url = gw.url("/mcp");

    // Two tokens, then a refusal saying when the next one comes (1 token at
    // 0.5/s: 2 s), in both eras.
    let c = Legacy::connect(&url).await;
    for _ in 0..2 {
        c.result("tools/call", echo_call()).await;
    }
    let r = c.request("tools/call", echo_call()).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.headers["retry-after"], "2");
    assert_eq!(r.last()["error"]["data"]["retryAfterSeconds"], 2);
    assert!(
        r.last()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("retry in 2 s")
    );
    let r = modern(&url, "tools/call", echo_call()).await;
    assert_eq!(r.status, 429);
    // Other methods are not limited.
    c.result("tools/list", json!({})).await;

    // A slower refill (same bucket key) swaps the plugin; the bucket keeps
    // its level, so the wait is now long (at 0.1/s: 10 s minus the time
    // since the bucket emptied, so ≥ 5 s for anything under 5 s) instead of
    // the full bucket a lost state would give, or the ≤ 2 s of the old rate.
    let swap = dir.join("limit.tmp");
    std::fs::write(
        &swap,
        crate::harness::expand(&config(", refill_per_second = 0.1")),
    )
    .unwrap();
    std::fs::rename(&swap, &file).unwrap();
    // Until the swap lands the old rate answers (≤ 2 s); a refusal never
    // spends a token, so polling does not disturb the bucket.
    let mut wait = 0;
    for _ in 0..40 {
        let r = c.request("tools/call", echo_call()).await;
        assert_eq!(r.status, 429, "the bucket was lost: {:?}", r.last());
        wait = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
        if wait >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        (5..=10).contains(&wait),
        "retry-after {wait}: the swap did not land"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn filter_hides_refuses_redacts_and_bounds() {
    let toml = format!(
        r#"{}[plugins.guard]
component = "builtin:filter"
[plugins.guard.config]
tools = {{ deny = ["add*"] }}
arguments = [{{ tool = "echo", argument = "message", deny = "(?i)drop\\s+table" }}]
builtin_redactions = true
max_response_bytes = 400
on_oversize = "truncate"
validate_arguments = true

[[routes]]
path = "/mcp"
upstreams = ["demo"]
plugins = ["guard"]
"#,
        demo_config(&[("demo", "")])
    );
    let gw = Gateway::start(&toml).await;
    let c = Legacy::connect(&gw.url("/mcp")).await;

    // A denied tool is absent from the list and unknown when called.
    let tools = c.result("tools/list", json!({})).await;
    let names = tool_names(&tools);
    assert!(
        names.contains(&"echo".to_owned()) && !names.contains(&"add".to_owned()),
        "{names:?}"
    );
    let r = c
        .request(
            "tools/call",
            json!({"name": "add", "arguments": {"a": 1, "b": 2}}),
        )
        .await;
    assert_eq!(r.last()["error"]["code"], -32602);
    assert_eq!(r.last()["error"]["message"], "unknown tool: add");

    // The listed inputSchema is enforced: echo's `message` is a string.
    let r = c
        .request(
            "tools/call",
            json!({"name": "echo", "arguments": {"message": 5}}),
        )
        .await;
    assert!(
        r.last()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`arguments.message` must be string"),
        "{:?}",
        r.last()
    );

    // An argument rule.
    let r = c
        .request(
            "tools/call",
            json!({"name": "echo", "arguments": {"message": "please drop table users"}}),
        )
        .await;
    assert_eq!(r.last()["error"]["code"], -32602, "{:?}", r.last());

    // A secret in a result is redacted.
    let text = c
        .call_text(
            "echo",
            json!({"message": "my key is sk-abcdefghijklmnopqrstuvwxyz012345"}),
        )
        .await;
    assert_eq!(text, "Echo: my key is [redacted api key]");

    // An oversized result is truncated with a marker, under the budget.
    let r = c
        .result(
            "tools/call",
            json!({"name": "echo", "arguments": {"message": "z".repeat(2000)}}),
        )
        .await;
    assert!(r.to_string().len() <= 400, "{}", r.to_string().len());
    assert!(
        r["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("[truncated by the gateway")
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn pin_hides_a_tool_whose_definition_changes() {
    let toml = format!(
        "{}[plugins.pin]\ncomponent = \"builtin:pin\"\nconfig = {{ on_change = \"hide\" }}\n\n[[routes]]\npath = \"/mcp\"\nupstreams = [\"demo\"]\nplugins = [\"pin\"]\n",
        demo_config(&[("demo", "")])
    );
    let gw = Gateway::start(&toml).await;
    let c = Legacy::connect(&gw.url("/mcp")).await;
    let names = async || tool_names(&c.result("tools/list", json!({})).await);
    c.call_text(
        "set_tools",
        json!({"extra": ["helper"], "description": "helps"}),
    )
    .await;
    assert!(names().await.contains(&"helper".to_owned()));
    assert_eq!(
        c.call_text("helper", json!({"message": "a"})).await,
        "Echo: a"
    );
    // The upstream changes the tool's definition: hidden and uncallable.
    c.call_text(
        "set_tools",
        json!({"extra": ["helper"], "description": "helps, and reads your mail"}),
    )
    .await;
    let now = names().await;
    assert!(!now.contains(&"helper".to_owned()) && now.contains(&"echo".to_owned()));
    let r = c
        .request(
            "tools/call",
            json!({"name": "helper", "arguments": {"message": "a"}}),
        )
        .await;
    assert_eq!(r.last()["error"]["message"], "unknown tool: helper");
    // Back to the pinned definition: visible again.
    c.call_text(
        "set_tools",
        json!({"extra": ["helper"], "description": "helps"}),
    )
    .await;
    assert!(names().await.contains(&"helper".to_owned()));
    gw.shutdown().await;
}

#[tokio::test]
async fn tool_rewrite_renames_both_ways_and_injects_the_principal() {
    let toml = format!(
        r#"{}[plugins.namer]
component = "{{plugins}}/probe.wasm"
config = {{ principal = "alice" }}

[plugins.rewrite]
component = "builtin:tool-rewrite"
[plugins.rewrite.config.tools.echo]
name = "say"
description = "Repeat a message"
inject = {{ message = {{ from = "principal" }} }}
annotations = {{ readOnlyHint = true }}

[[routes]]
path = "/mcp"
upstreams = ["demo"]
plugins = ["namer", "rewrite"]
"#,
        demo_config(&[("demo", "")])
    );
    let gw = Gateway::start(&toml).await;
    let c = Legacy::connect(&gw.url("/mcp")).await;
    let tools = c.result("tools/list", json!({})).await;
    let list = tools["tools"].as_array().unwrap();
    let say = list.iter().find(|t| t["name"] == "say").expect("renamed");
    assert!(list.iter().all(|t| t["name"] != "echo"));
    assert_eq!(say["description"], "Repeat a message");
    assert_eq!(say["annotations"]["readOnlyHint"], true);
    assert_eq!(say["inputSchema"]["required"], json!([]));
    // The call maps back to `echo`, its argument set from the principal.
    assert_eq!(
        c.call_text("say", json!({"message": "ignored"})).await,
        "Echo: alice"
    );
    let r = c.request("tools/call", echo_call()).await;
    assert_eq!(r.last()["error"]["message"], "unknown tool: echo");
    gw.shutdown().await;
}

#[tokio::test]
async fn cache_answers_repeats_never_crosses_principals_and_list_changed_invalidates() {
    // namer (principal from a header) → cache → counter: what reaches the
    // counter was not answered from the cache. The upstream is legacy, so
    // its results carry no cacheScope and `default_scope` applies.
    let toml = format!(
        r#"{}[plugins.namer]
component = "{{plugins}}/probe.wasm"
config = {{ principal_from_header = "x-user", headers = ["x-user"] }}

[plugins.cache]
component = "builtin:cache"
config = {{ ttl_seconds = 60, default_scope = "private" }}

[plugins.counter]
component = "{{plugins}}/probe.wasm"
config = {{ request = "count", stats_target = "stats" }}

[[routes]]
path = "/mcp"
upstreams = ["demo"]
plugins = ["namer", "cache", "counter"]
"#,
        demo_config(&[("demo", "--era legacy")])
    );
    let gw = Gateway::start(&toml).await;
    let url = gw.url("/mcp");
    let as_user = async |user: &str, method: &str, params: serde_json::Value| {
        let c = Legacy::connect(&url).await;
        let r = crate::harness::read_reply(
            c.builder()
                .header("x-user", user)
                .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        r.last()["result"].clone()
    };
    let upstream_lists = async || {
        as_user(
            "admin",
            "tools/call",
            json!({"name": "stats", "arguments": {}}),
        )
        .await["seen"]["tools/list"]
            .as_u64()
            .unwrap()
    };
    as_user("alice", "tools/list", json!({})).await;
    as_user("alice", "tools/list", json!({})).await;
    assert_eq!(upstream_lists().await, 1, "alice's second list is a hit");
    as_user("bob", "tools/list", json!({})).await;
    assert_eq!(upstream_lists().await, 2, "bob never gets alice's entry");
    as_user("bob", "tools/list", json!({})).await;
    assert_eq!(upstream_lists().await, 2);

    // The upstream's list changes: its list_changed invalidates.
    as_user(
        "admin",
        "tools/call",
        json!({"name": "set_tools", "arguments": {"extra": ["fresh"]}}),
    )
    .await;
    let fresh = crate::harness::eventually(Duration::from_secs(5), async || {
        as_user("alice", "tools/list", json!({})).await["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "fresh")
    })
    .await;
    assert!(fresh, "list_changed did not invalidate alice's entry");
    gw.shutdown().await;
}

mod auth {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    use serde_json::{Value, json};

    use crate::harness::{BIN, Gateway, LEGACY, read_reply, tool_names};

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/jwt");

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn token(alg: Algorithm, claims: Value) -> String {
        let read = |f: &str| std::fs::read(format!("{FIXTURES}/{f}")).unwrap();
        let (kid, key) = match alg {
            Algorithm::RS256 => (
                "rsa-1",
                EncodingKey::from_rsa_pem(&read("rsa.pem")).unwrap(),
            ),
            Algorithm::ES256 => ("ec-1", EncodingKey::from_ec_pem(&read("ec.pem")).unwrap()),
            _ => ("hs-1", EncodingKey::from_secret(&read("hs256.secret"))),
        };
        let mut header = Header::new(alg);
        header.kid = Some(kid.into());
        encode(&header, &claims, &key).unwrap()
    }

    fn hash_key(key: &str) -> String {
        let out = std::process::Command::new(BIN)
            .args(["hash-key", key])
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    async fn post(url: &str, auth: Option<&str>, body: Value) -> crate::harness::Reply {
        let mut req = reqwest::Client::new()
            .post(url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        if let Some(a) = auth {
            req = req.header("authorization", format!("Bearer {a}"));
        }
        read_reply(req.json(&body).send().await.unwrap()).await
    }

    /// `initialize` + a session; returns the session id.
    async fn session(url: &str, auth: &str) -> String {
        let r = reqwest::Client::new()
            .post(url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("authorization", format!("Bearer {auth}"))
            .json(&json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.headers()["mcp-session-id"].to_str().unwrap().to_owned()
    }

    async fn in_session(
        url: &str,
        sid: &str,
        auth: &str,
        method: &str,
        params: Value,
    ) -> crate::harness::Reply {
        read_reply(
            reqwest::Client::new()
                .post(url)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .header("mcp-session-id", sid)
                .header("mcp-protocol-version", LEGACY)
                .header("authorization", format!("Bearer {auth}"))
                .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    #[tokio::test]
    async fn auth_keys_tokens_metadata_and_roles() {
        let toml = format!(
            r#"{}[plugins.keys]
component = "builtin:auth"
grants = {{ dirs = [{{ host = "{FIXTURES}", guest = "/keys" }}] }}
[plugins.keys.config]
api_keys = [{{ principal = "bot", key_hash = "{}", roles = ["reader"] }}]
jwt = {{ jwks_file = "/keys/jwks.json", issuer = "https://auth.test", roles_claim = "roles" }}
roles = {{ dev = {{ tools = ["*"] }}, reader = {{ tools = ["echo"] }} }}
authorization_servers = ["https://auth.test"]
scopes = ["mcp:tools"]

[[routes]]
path = "/mcp"
upstreams = ["demo"]
plugins = ["keys"]
"#,
            crate::harness::demo_config(&[("demo", "")]),
            hash_key("bot-key-0123456789")
        );
        let gw = Gateway::start(&toml).await;
        let url = gw.url("/mcp");
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}}});

        // No credential: 401 pointing at a metadata document that exists.
        let r = post(&url, None, init.clone()).await;
        assert_eq!(r.status, 401);
        let challenge = r.headers["www-authenticate"].to_str().unwrap().to_owned();
        let meta_url = challenge
            .split("resource_metadata=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap()
            .to_owned();
        assert_eq!(
            meta_url,
            gw.url("/.well-known/oauth-protected-resource/mcp")
        );
        let meta: Value = reqwest::get(&meta_url).await.unwrap().json().await.unwrap();
        assert_eq!(meta["resource"], url.as_str());
        assert_eq!(meta["authorization_servers"], json!(["https://auth.test"]));
        assert_eq!(meta["scopes_supported"], json!(["mcp:tools"]));
        // A modern request too.
        let r = crate::harness::modern(&url, "tools/list", json!({})).await;
        assert_eq!(r.status, 401);

        // An unknown key, and bad tokens: 401 invalid_token.
        let good = json!({"sub": "alice", "aud": url, "iss": "https://auth.test",
                          "exp": now() + 600, "roles": ["dev"], "scope": "mcp:tools"});
        let with = |patch: Value| {
            let mut c = good.clone();
            for (k, v) in patch.as_object().unwrap() {
                c[k] = v.clone();
            }
            c
        };
        let forged = {
            let t = token(Algorithm::RS256, good.clone());
            let (head, _) = t.rsplit_once('.').unwrap();
            format!("{head}.{}", "A".repeat(342))
        };
        for (cred, reason) in [
            ("nope".to_owned(), "not a known API key"),
            (
                token(Algorithm::RS256, with(json!({"exp": now() - 600}))),
                "expired",
            ),
            (
                token(Algorithm::ES256, with(json!({"aud": "http://other/mcp"}))),
                "not for this resource",
            ),
            (forged, "signature"),
        ] {
            let r = post(&url, Some(&cred), init.clone()).await;
            assert_eq!(r.status, 401, "{reason}");
            let challenge = r.headers["www-authenticate"].to_str().unwrap();
            assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
            assert!(
                r.last()["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains(reason)
            );
        }
        // A valid token without the scope: 403 insufficient_scope.
        let r = post(
            &url,
            Some(&token(Algorithm::HS256, with(json!({"scope": "other"})))),
            init.clone(),
        )
        .await;
        assert_eq!(r.status, 403);
        assert!(
            r.headers["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("insufficient_scope")
        );

        // A good token (RS256, role dev): everything.
        let jwt = token(Algorithm::RS256, good.clone());
        let sid = session(&url, &jwt).await;
        let r = in_session(
            &url,
            &sid,
            &jwt,
            "tools/call",
            json!({"name": "add", "arguments": {"a": 2, "b": 3}}),
        )
        .await;
        assert_eq!(
            r.last()["result"]["content"][0]["text"],
            "5",
            "{:?}",
            r.last()
        );

        // An API key with role reader: only `echo` is there.
        let key = "bot-key-0123456789";
        let sid = session(&url, key).await;
        let r = in_session(&url, &sid, key, "tools/list", json!({})).await;
        assert_eq!(tool_names(&r.last()["result"]), ["echo"]);
        let r = in_session(
            &url,
            &sid,
            key,
            "tools/call",
            json!({"name": "add", "arguments": {"a": 1, "b": 1}}),
        )
        .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.last()["error"]["code"], -32602);
        assert_eq!(r.last()["error"]["message"], "unknown tool: add");
        // The session does not carry the credential: a request without one
        // is refused even inside it.
        let r = read_reply(
            reqwest::Client::new()
                .post(&url)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .header("mcp-session-id", &sid)
                .header("mcp-protocol-version", LEGACY)
                .json(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, 401);
        gw.shutdown().await;
    }

    /// A JWKS from a URL: fetched by the gateway for the plugin, only when
    /// granted, and cached (two token checks, one fetch).
    #[tokio::test]
    async fn a_jwks_url_is_fetched_once_and_only_when_granted() {
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let jwks = std::fs::read_to_string(format!("{FIXTURES}/jwks.json")).unwrap();
        let counter = std::sync::Arc::clone(&hits);
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let body = jwks.clone();
                async move { body }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let idp = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        let config = |grant: &str| {
            format!(
                r#"{}[plugins.keys]
component = "builtin:auth"
grants = {{ urls = ["{grant}"] }}
config = {{ jwt = {{ jwks_url = "{idp}/jwks.json", issuer = "https://auth.test" }} }}

[[routes]]
path = "/mcp"
upstreams = ["demo"]
plugins = ["keys"]
"#,
                crate::harness::demo_config(&[("demo", "")])
            )
        };
        let gw = Gateway::start(&config(&format!("{idp}/*"))).await;
        let url = gw.url("/mcp");
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}}});
        for alg in [Algorithm::RS256, Algorithm::ES256] {
            let t = token(
                alg,
                json!({"sub": "carol", "aud": url, "iss": "https://auth.test", "exp": now() + 600}),
            );
            let r = post(&url, Some(&t), init.clone()).await;
            assert_eq!(r.status, 200, "{alg:?}: {:?}", r.last());
        }
        assert_eq!(
            hits.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "the JWKS is cached"
        );
        gw.shutdown().await;

        // Granted something else: the plugin may not fetch it.
        let gw = Gateway::start(&config("https://elsewhere.test/*")).await;
        let url = gw.url("/mcp");
        let t = token(
            Algorithm::RS256,
            json!({"sub": "carol", "aud": url, "iss": "https://auth.test", "exp": now() + 600}),
        );
        let r = post(&url, Some(&t), init).await;
        assert_eq!(r.status, 401);
        assert!(
            r.last()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("unavailable")
        );
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
        gw.shutdown().await;
    }

    /// The client's credential stops at the gateway: a remote upstream (here
    /// another gateway whose plugin reports the headers it received) sees
    /// only the headers configured for it.
    #[tokio::test]
    async fn the_clients_credential_never_reaches_an_upstream() {
        let inner = Gateway::start(&format!(
            "{}[plugins.reporter]\ncomponent = \"{{plugins}}/probe.wasm\"\nconfig = {{ request = \"context\", headers = [\"authorization\", \"x-api-key\"], methods = [\"tools/call\"] }}\n\n[[routes]]\npath = \"/mcp\"\nupstreams = [\"demo\"]\nplugins = [\"reporter\"]\n",
            crate::harness::demo_config(&[("demo", "")])
        ))
        .await;
        let outer = Gateway::start(&format!(
            r#"[upstreams.remote]
url = "{}"
headers = {{ Authorization = "Bearer upstream-secret" }}
timeout = "10s"

[plugins.keys]
component = "builtin:auth"
config = {{ api_keys = [{{ principal = "alice", key_hash = "{}" }}], api_key_header = "x-api-key" }}

[[routes]]
path = "/mcp"
upstreams = ["remote"]
plugins = ["keys"]
"#,
            inner.url("/mcp"),
            hash_key("client-key-0123456789")
        ))
        .await;
        let url = outer.url("/mcp");
        for header in ["authorization", "x-api-key"] {
            let value = if header == "authorization" {
                "Bearer client-key-0123456789"
            } else {
                "client-key-0123456789"
            };
            let sid = {
                let r = reqwest::Client::new()
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("accept", "application/json, text/event-stream")
                    .header(header, value)
                    .json(&json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                        "protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}}}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200, "{header}");
                r.headers()["mcp-session-id"].to_str().unwrap().to_owned()
            };
            let r = read_reply(
                reqwest::Client::new()
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("accept", "application/json, text/event-stream")
                    .header("mcp-session-id", &sid)
                    .header("mcp-protocol-version", LEGACY)
                    .header(header, value)
                    .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                  "params": {"name": "echo", "arguments": {"message": "x"}}}))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            let seen = &r.last()["result"]["context"]["headers"];
            assert_eq!(
                seen,
                &json!([["authorization", "Bearer upstream-secret"]]),
                "{header}: {:?}",
                r.last()
            );
        }
        outer.shutdown().await;
        inner.shutdown().await;
    }
}

/// `examples/policies.toml`: the five policies chained over two upstreams.
#[tokio::test]
async fn the_example_chain_runs_every_policy_in_order() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    let toml = std::fs::read_to_string(root.join("examples/policies.toml"))
        .unwrap()
        .replace("127.0.0.1:8080", "127.0.0.1:0");
    let gw = Gateway::start(&toml).await;
    let url = gw.url("/mcp");
    let call = async |auth: Option<&str>, method: &str, params: serde_json::Value| {
        let mut body = crate::harness::modern_body(json!(1), method, params);
        body["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"] = json!({});
        let mut req = reqwest::Client::new()
            .post(&url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", crate::harness::MODERN)
            .header("mcp-method", method);
        if let Some(name) = body["params"]["name"].as_str() {
            req = req.header("mcp-name", name);
        }
        if let Some(a) = auth {
            req = req.header("authorization", format!("Bearer {a}"));
        }
        crate::harness::read_reply(req.json(&body).send().await.unwrap()).await
    };
    let key = Some("demo-key-change-me");

    // auth first: nothing without the key.
    assert_eq!(call(None, "tools/list", json!({})).await.status, 401);
    // The list: both upstreams, alpha's echo renamed, crash tools filtered.
    let r = call(key, "tools/list", json!({})).await;
    let names = tool_names(&r.last()["result"]);
    assert!(
        names.contains(&"say".to_owned()) && names.contains(&"beta__echo".to_owned()),
        "{names:?}"
    );
    assert!(
        !names
            .iter()
            .any(|n| n.contains("crash") || n == "alpha__echo"),
        "{names:?}"
    );
    // A call through the rewrite, with a secret the filter redacts.
    let r = call(
        key,
        "tools/call",
        json!({"name": "say", "arguments": {"message": "sk-abcdefghijklmnopqrstuvwxyz0123"}}),
    )
    .await;
    assert_eq!(
        r.last()["result"]["content"][0]["text"],
        "Echo: [redacted api key]",
        "{:?}",
        r.last()
    );
    // The filter's argument rule and deny list.
    let r = call(
        key,
        "tools/call",
        json!({"name": "beta__echo", "arguments": {"message": "drop table x"}}),
    )
    .await;
    assert_eq!(r.last()["error"]["code"], -32602);
    let r = call(
        key,
        "tools/call",
        json!({"name": "beta__crash", "arguments": {}}),
    )
    .await;
    assert_eq!(r.last()["error"]["message"], "unknown tool: beta__crash");
    gw.shutdown().await;
}
