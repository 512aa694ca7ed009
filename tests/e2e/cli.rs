//! The binary as an operator runs it: `switchyard serve` on the default
//! configuration serves the demo offline and stops cleanly on SIGTERM.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::harness::{BIN, Legacy, alive, eventually};

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

    let pid = child.id().unwrap() as i32;
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
