//! Secrets as an operator uses them: `switchyard secret` writes the
//! encrypted store, `${secret:NAME}` takes a value into an upstream's
//! environment, and the value is nowhere to be read: not in the store file,
//! the state file, a trace-level log, the admin API or `validate`.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::harness::{BIN, Legacy, Served, eventually, scratch};

const ADMIN_TOKEN: &str = "secrets-test-admin-token";

/// `switchyard ARGS` with `stdin` fed in; (status, stdout, stderr).
async fn cli(args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("SWITCHYARD_SECRET_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let out = child.wait_with_output().await.unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A config whose `demo` upstream gets `API_KEY` from the store, writes it
/// to `seen.txt` (the proof that it arrived) and prints it to stderr (which
/// the gateway must not repeat).
fn config(dir: &Path) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"

[secrets]
key_file = "secret.key"

[admin]
token = "{ADMIN_TOKEN}"
listen = "127.0.0.1:0"

[upstreams.demo]
command = "sh"
args = ["-c", "printf %s \"$API_KEY\" > '{seen}'; echo \"child says $API_KEY\" >&2; exec '{BIN}' demo"]
env = {{ API_KEY = "${{secret:API_KEY}}" }}
"#,
        seen = dir.join("seen.txt").display()
    )
}

/// The admin API of a gateway process, with the test's token.
trait AdminCalls {
    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value;
}

impl AdminCalls for Served {
    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = reqwest::Client::new()
            .request(
                method,
                format!("http://{}{path}", self.admin.as_ref().unwrap()),
            )
            .bearer_auth(ADMIN_TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: {text}"))
    }
}

#[tokio::test]
async fn a_secret_reaches_the_upstream_and_nothing_else() {
    let dir = scratch("secrets");
    let cfg = dir.join("gw.toml");
    std::fs::write(&cfg, config(&dir)).unwrap();
    let cfg_arg = cfg.to_str().unwrap();
    let plaintext = "sk-live-7f3a9c2e11d04b6b";

    // No key yet: a clear error at start, naming what to do.
    let (ok, _, err) = cli(&["validate", "--config", cfg_arg], "").await;
    assert!(!ok);
    assert!(err.contains("secret.key"), "{err}");

    let key = dir.join("secret.key");
    let (ok, _, err) = cli(&["secret", "keygen", "--out", key.to_str().unwrap()], "").await;
    assert!(ok, "{err}");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);

    // A reference to a secret the store lacks says which and how to add it.
    let (ok, _, err) = cli(&["validate", "--config", cfg_arg], "").await;
    assert!(!ok);
    assert!(err.contains("secret set API_KEY"), "{err}");

    let (ok, _, err) = cli(
        &["secret", "set", "API_KEY", "--config", cfg_arg],
        &format!("{plaintext}\n"),
    )
    .await;
    assert!(ok, "{err}");
    let (ok, out, _) = cli(&["secret", "list", "--config", cfg_arg], "").await;
    assert!(ok);
    assert_eq!(out.trim(), "API_KEY");
    let (ok, out, err) = cli(&["validate", "--config", cfg_arg], "").await;
    assert!(ok, "{err}");
    assert!(!out.contains(plaintext) && !err.contains(plaintext));

    let served = Served::start(&cfg, &[("RUST_LOG", "trace")], true).await;
    let seen = dir.join("seen.txt");
    assert!(
        eventually(Duration::from_secs(10), async || std::fs::read_to_string(
            &seen
        )
        .is_ok_and(|s| s == plaintext))
        .await,
        "the child never saw the secret in its environment"
    );
    let client = Legacy::connect(&format!("http://{}/mcp", served.main)).await;
    assert_eq!(
        client.call_text("echo", json!({"message": "hi"})).await,
        "Echo: hi"
    );
    // The child printed it; the gateway repeats the line redacted.
    assert!(
        eventually(Duration::from_secs(5), async || served
            .log()
            .contains("child says (secret)"))
        .await,
        "{}",
        served.log()
    );

    // The admin API lists names, takes a new value without echoing it, and
    // the upstream restarts with it.
    let listed = served
        .admin(reqwest::Method::GET, "/admin/secrets", None)
        .await;
    assert_eq!(listed["secrets"], json!(["API_KEY"]));
    let rotated = "sk-live-rotated-55e1c0ffee";
    let set = served
        .admin(
            reqwest::Method::PUT,
            "/admin/secrets/API_KEY",
            Some(json!({"value": rotated})),
        )
        .await;
    assert_eq!(set["secret"], "API_KEY");
    assert!(!set.to_string().contains(rotated), "{set}");
    assert!(
        eventually(Duration::from_secs(10), async || std::fs::read_to_string(
            &seen
        )
        .is_ok_and(|s| s == rotated))
        .await,
        "the upstream did not restart with the new value"
    );
    // Too short to redact: refused, and nothing changed.
    let short = served
        .admin(
            reqwest::Method::PUT,
            "/admin/secrets/OTHER",
            Some(json!({"value": "abc"})),
        )
        .await;
    assert!(
        short["error"].as_str().unwrap().contains("at least 8"),
        "{short}"
    );
    // In use: not removable.
    let rm = served
        .admin(reqwest::Method::DELETE, "/admin/secrets/API_KEY", None)
        .await;
    assert!(rm["error"].as_str().unwrap().contains("in use"), "{rm}");

    // An upstream added through the API with a secret reference: the state
    // file keeps the reference, never the value.
    let added = served
        .admin(
            reqwest::Method::POST,
            "/admin/upstreams",
            Some(json!({"name": "second", "command": BIN, "args": ["demo"], "env": {"TOKEN": "${secret:API_KEY}"}})),
        )
        .await;
    assert!(added.get("error").is_none(), "{added}");
    let state = std::fs::read_to_string(dir.join("gw.admin.toml")).unwrap();
    assert!(state.contains("${secret:API_KEY}"), "{state}");

    let mut everything = served.log();
    for path in [
        "/admin/upstreams",
        "/admin/upstreams/demo",
        "/admin/routes",
        "/admin/secrets",
    ] {
        everything.push_str(
            &served
                .admin(reqwest::Method::GET, path, None)
                .await
                .to_string(),
        );
    }
    everything.push_str(&state);
    everything.push_str(&std::fs::read_to_string(dir.join("gw.secrets")).unwrap());
    for value in [plaintext, rotated] {
        assert!(
            !everything.contains(value),
            "the plaintext {value} leaked:\n{everything}"
        );
    }
    drop(served);

    // A wrong key: the gateway does not start, and says why.
    let other = scratch("secrets-wrong-key").join("k");
    let (ok, _, _) = cli(&["secret", "keygen", "--out", other.to_str().unwrap()], "").await;
    assert!(ok);
    std::fs::copy(&other, &key).unwrap();
    let (ok, _, err) = cli(&["serve", "--config", cfg_arg], "").await;
    assert!(!ok);
    assert!(err.contains("does not open"), "{err}");
}
