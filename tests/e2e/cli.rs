//! The binary as an operator runs it: `switchyard serve` on the default
//! configuration serves the demo offline and stops cleanly on SIGTERM;
//! `switchyard import claude-desktop` writes a configuration that validates
//! and serves, and refuses bad input with status 64.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::harness::{BIN, Gateway, Legacy, alive, cpu_ticks, eventually, tool_names};

#[tokio::test]
async fn serve_runs_the_default_config_and_stops_on_sigterm() {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/switchyard.toml");
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .env("SWITCHYARD_SERVER__LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .env_remove("SWITCHYARD_BIN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // The log line "switchyard listening local=127.0.0.1:PORT" names the port.
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.split("local=").nth(1) {
                return rest.split_whitespace().next().unwrap().to_owned();
            }
        }
        panic!("the gateway exited before listening");
    })
    .await
    .expect("the gateway listens within 20 s");
    // Keep draining the log so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let url = format!("http://{addr}/mcp");
    let client = Legacy::connect(&url).await;
    assert_eq!(
        client
            .call_text("echo", json!({"message": "default"}))
            .await,
        "Echo: default"
    );
    let health: serde_json::Value = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let demo_pid = health["upstreams"][0]["pid"].as_u64().unwrap() as u32;

    // Idle spin (on in the default config) parks once requests stop: an idle
    // gateway must not keep a core busy (a stuck spinner would burn ~100
    // ticks a second).
    let pid = child.id().unwrap() as i32;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = cpu_ticks(pid as u32);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = cpu_ticks(pid as u32) - before;
    assert!(idle < 20, "an idle gateway used {idle} CPU ticks in 1 s");

    // SAFETY: kill(2) on the child we spawned; no memory is touched.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("the gateway exits within 15 s of SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
    assert!(
        eventually(Duration::from_secs(5), async || !alive(demo_pid)).await,
        "the demo child outlived the gateway"
    );
}

/// A fresh folder under the system's temp dir.
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("switchyard-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn import_claude_desktop_config_validates_and_serves() {
    let dir = scratch("import");
    // The fixture's `"{bin}"` becomes this run's binary, JSON-escaped.
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/claude_desktop_config.json");
    let json = std::fs::read_to_string(fixture)
        .unwrap()
        .replace("\"{bin}\"", &serde_json::to_string(BIN).unwrap());
    let input = dir.join("claude_desktop_config.json");
    std::fs::write(&input, json).unwrap();
    let config = dir.join("switchyard.toml");

    let import = Command::new(BIN)
        .args(["import", "claude-desktop"])
        .arg(&input)
        .arg("--out")
        .arg(&config)
        .output()
        .await
        .unwrap();
    let notes = String::from_utf8_lossy(&import.stderr);
    assert!(import.status.success(), "{notes}");
    assert!(
        notes.contains("skipped server \"retired\": it is disabled"),
        "{notes}"
    );
    assert!(
        notes.contains("renamed server \"beta tools\" to upstream \"beta-tools\""),
        "{notes}"
    );
    let toml = std::fs::read_to_string(&config).unwrap();
    assert!(!toml.contains("no-such-server"), "{toml}");
    // Without --out the same configuration goes to stdout.
    let stdout = Command::new(BIN)
        .args(["import", "claude-desktop"])
        .arg(&input)
        .output()
        .await
        .unwrap();
    assert!(stdout.status.success());
    assert_eq!(String::from_utf8(stdout.stdout).unwrap(), toml);

    let validate = Command::new(BIN)
        .args(["validate", "--config"])
        .arg(&config)
        .output()
        .await
        .unwrap();
    assert!(
        validate.status.success(),
        "{}\n{toml}",
        String::from_utf8_lossy(&validate.stderr)
    );

    let gw = Gateway::start_file(&config, &toml).await;
    let client = Legacy::connect(&gw.url("/mcp")).await;
    let tools = client.result("tools/list", json!({})).await;
    let names = tool_names(&tools);
    for up in ["alpha", "beta-tools"] {
        assert!(names.contains(&format!("{up}__echo")), "{names:?}");
    }
    let who = client.call_text("beta-tools__whoami", json!({})).await;
    assert!(who.contains("beta"), "beta-tools__whoami answered {who}");
    gw.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn import_refuses_bad_input_with_status_64() {
    let dir = scratch("import-bad");
    let not_json = dir.join("not_json.json");
    std::fs::write(&not_json, "mcpServers: {}").unwrap();
    let no_command = dir.join("no_command.json");
    std::fs::write(&no_command, r#"{"mcpServers": {"fs": {"args": ["x"]}}}"#).unwrap();
    let out = dir.join("out.toml");
    let cases = [
        (dir.join("missing.json"), "cannot read"),
        (not_json, "not a JSON object"),
        (no_command, "server \"fs\": has neither `command`"),
    ];
    for (input, needle) in cases {
        let run = Command::new(BIN)
            .args(["import", "claude-desktop"])
            .arg(&input)
            .arg("--out")
            .arg(&out)
            .output()
            .await
            .unwrap();
        let err = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(64), "{err}");
        assert!(err.contains(&input.display().to_string()), "{err}");
        assert!(err.contains(needle), "{needle:?} not in: {err}");
        assert!(!out.exists(), "nothing is written on error");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
