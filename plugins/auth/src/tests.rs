use super::*;
use jsonwebtoken::{EncodingKey, Header, encode};
use switchyard_sdk::codes;
use switchyard_sdk::testing::Harness;

const JWKS: &str = include_str!("../../../tests/fixtures/jwt/jwks.json");
const RSA: &str = include_str!("../../../tests/fixtures/jwt/rsa.pem");
const EC: &str = include_str!("../../../tests/fixtures/jwt/ec.pem");
const HS: &[u8] = include_bytes!("../../../tests/fixtures/jwt/hs256.secret");
const AUD: &str = "http://gw.test/mcp";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn token(alg: Algorithm, claims: Value) -> String {
    let (kid, key) = match alg {
        Algorithm::RS256 => ("rsa-1", EncodingKey::from_rsa_pem(RSA.as_bytes()).unwrap()),
        Algorithm::ES256 => ("ec-1", EncodingKey::from_ec_pem(EC.as_bytes()).unwrap()),
        _ => ("hs-1", EncodingKey::from_secret(HS)),
    };
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    encode(&header, &claims, &key).unwrap()
}

fn claims(extra: Value) -> Value {
    let mut c = json!({"sub": "alice", "aud": AUD, "iss": "https://auth.test", "exp": now() + 600, "roles": ["dev"], "scope": "mcp:tools"});
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

fn harness() -> Harness<Auth> {
    Harness::new(json!({
        "api_keys": [{"principal": "bot", "key_hash": hash_key("s3cret", b"salty"), "roles": ["reader"]}],
        "jwt": {"jwks": serde_json::from_str::<Value>(JWKS).unwrap(), "issuer": "https://auth.test", "roles_claim": "roles"},
        "roles": {"dev": {"tools": ["*"], "prompts": ["*"], "resources": ["*"]},
                  "reader": {"tools": ["echo", "get_*"], "resources": ["demo://*"]}},
        "authorization_servers": ["https://auth.test"],
        "scopes": ["mcp:tools"],
        "resource": AUD,
    }))
    .unwrap()
}

fn with_token(method: &str, t: &str) -> Context {
    Context::new(method)
        .with_route("/mcp")
        .with_header("authorization", format!("Bearer {t}"))
}

fn refused(h: &Harness<Auth>, ctx: &Context) -> Rejection {
    match h.on_request(ctx, &Params::none()) {
        RequestDecision::Reject(r) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn admitted(h: &Harness<Auth>, ctx: &Context) -> Continuation {
    match h.on_request(ctx, &Params::none()) {
        RequestDecision::Continue(c) => c,
        other => panic!("expected to pass, got {other:?}"),
    }
}

#[test]
fn every_algorithm_names_the_principal_and_roles() {
    let h = harness();
    for alg in [Algorithm::RS256, Algorithm::ES256, Algorithm::HS256] {
        let c = admitted(
            &h,
            &with_token("tools/list", &token(alg, claims(json!({})))),
        );
        assert_eq!(c.principal.as_deref(), Some("alice"), "{alg:?}");
        assert_eq!(c.attributes, vec![("roles".to_owned(), "dev".to_owned())]);
    }
}

#[test]
fn bad_tokens_get_401_with_a_challenge() {
    let h = harness();
    let cases = [
        (claims(json!({"exp": now() - 3600})), "expired"),
        (
            claims(json!({"aud": "http://elsewhere/mcp"})),
            "not for this resource",
        ),
        (claims(json!({"iss": "https://evil.test"})), "issuer"),
        (claims(json!({"nbf": now() + 3600})), "not valid yet"),
    ];
    for (c, reason) in cases {
        let r = refused(&h, &with_token("tools/list", &token(Algorithm::RS256, c)));
        assert_eq!(r.http_status, 401);
        assert!(r.error.message.contains(reason), "{}", r.error.message);
        let challenge = &r.headers[0].1;
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
        assert!(
            challenge.contains(
                "resource_metadata=\"http://gw.test/.well-known/oauth-protected-resource/mcp\""
            ),
            "{challenge}"
        );
    }
    // A signature made with another key.
    let good = token(Algorithm::RS256, claims(json!({})));
    let (head, _) = good.rsplit_once('.').unwrap();
    let forged = format!("{head}.{}", "A".repeat(342));
    assert!(
        refused(&h, &with_token("tools/list", &forged))
            .error
            .message
            .contains("signature")
    );
}

#[test]
fn missing_credentials_and_unknown_keys() {
    let h = harness();
    let r = refused(&h, &Context::new("tools/list").with_route("/mcp"));
    assert_eq!(r.http_status, 401);
    assert_eq!(
        r.headers,
        vec![(
            "www-authenticate".to_owned(),
            "Bearer resource_metadata=\"http://gw.test/.well-known/oauth-protected-resource/mcp\""
                .to_owned()
        )]
    );
    let r = refused(&h, &with_token("tools/list", "not-a-key"));
    assert!(r.error.message.contains("not a known API key"));
    let c = admitted(&h, &with_token("tools/list", "s3cret"));
    assert_eq!(c.principal.as_deref(), Some("bot"));
}

#[test]
fn missing_scope_is_403() {
    let h = harness();
    let r = refused(
        &h,
        &with_token(
            "tools/list",
            &token(Algorithm::ES256, claims(json!({"scope": "other"}))),
        ),
    );
    assert_eq!(r.http_status, 403);
    assert!(r.headers[0].1.contains("error=\"insufficient_scope\""));
}

#[test]
fn rbac_hides_and_refuses_like_unknown() {
    let h = harness();
    let call = |tool: &str| with_token("tools/call", "s3cret").with_target(tool);
    assert!(matches!(
        h.on_request(&call("get_weather"), &Params::none()),
        RequestDecision::Continue(_)
    ));
    let r = refused(&h, &call("delete_all"));
    assert_eq!(r.error.code, codes::INVALID_PARAMS);
    assert_eq!(r.error.message, "unknown tool: delete_all");
    assert_eq!(r.http_status, 200);
    let list = Outcome::ok(&json!({"tools": [{"name": "echo"}, {"name": "delete_all"}]}));
    let ctx = Context::new("tools/list")
        .with_principal("bot")
        .with_attribute("roles", "reader");
    match h.on_response(&ctx, &Params::none(), &list) {
        ResponseDecision::Replace(v) => assert_eq!(v["tools"], json!([{"name": "echo"}])),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_metadata_document_is_described() {
    let d = harness().describe();
    assert_eq!(d.well_known[0].0, "oauth-protected-resource");
    assert_eq!(
        d.well_known[0].1,
        json!({"authorization_servers": ["https://auth.test"], "bearer_methods_supported": ["header"],
               "scopes_supported": ["mcp:tools"], "resource": AUD})
    );
}

#[test]
fn bad_configs_are_refused() {
    for bad in [
        json!({}),
        json!({"api_keys": [{"principal": "x", "key_hash": "plain"}]}),
        json!({"jwt": {"jwks": {"keys": []}, "algorithms": ["none"]}}),
        json!({"jwt": {}}),
        json!({"api_keys": [], "jwt": {"jwks_file": "/nope.json"}}),
    ] {
        assert!(Harness::<Auth>::new(bad.clone()).is_err(), "{bad}");
    }
}

#[test]
fn a_jwks_url_is_fetched_through_the_gateway() {
    let h = Harness::<Auth>::new(json!({
        "jwt": {"jwks_url": "https://idp.test/jwks.json", "issuer": "https://auth.test"},
        "resource": AUD,
    }))
    .unwrap();
    let t = token(Algorithm::ES256, claims(json!({})));
    // Not granted (no answer): the token cannot be checked.
    let r = refused(&h, &with_token("tools/list", &t));
    assert!(
        r.error.message.contains("unavailable"),
        "{}",
        r.error.message
    );
    h.set_fetch("https://idp.test/jwks.json", Ok(JWKS.to_owned()));
    assert_eq!(
        admitted(&h, &with_token("tools/list", &t))
            .principal
            .as_deref(),
        Some("alice")
    );
}
