//! Supervision of stdio upstreams: restart policies, crash loops, health
//! checks, process groups, lazy start and idle stop, `/proc` figures.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn a_crash_loop_backs_off_and_ends_marked_failed() {
    let gw = Gateway::start(
        "[upstreams.flaky]\ncommand = \"sh\"\nargs = [\"-c\", \"exit 3\"]\nrestart = { policy = \"on-failure\", max = 3, window_seconds = 60 }\n",
    )
    .await;
    let started = Instant::now();
    assert!(
        reaches(&gw, "flaky", "failed", Duration::from_secs(20)).await,
        "{}",
        gw.health().await
    );
    let took = started.elapsed();
    let r = upstream_report(&gw, "flaky").await;
    assert_eq!(r["restarts"], 3, "{r}");
    let detail = r["detail"].as_str().unwrap();
    assert!(detail.contains("crash loop"), "{detail}");
    assert!(detail.contains("exited with status 3"), "{detail}");
    // Backoff: three delays of at least half of 100, 200 and 400 ms.
    assert!(took >= Duration::from_millis(350), "no backoff: {took:?}");
    // And it stays failed: no more restarts.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(upstream_report(&gw, "flaky").await["restarts"], 3);
    // A call fails at once, naming why.
    let client = modern(
        &gw.url("/mcp"),
        "tools/call",
        json!({"name": "anything", "arguments": {}}),
    )
    .await;
    let msg = client.last()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(msg.contains("failed"), "{}", client.last());
    gw.shutdown().await;
}

#[tokio::test]
async fn restart_policies_on_failure_and_never() {
    let gw = Gateway::start(
        "[upstreams.clean]\ncommand = \"sh\"\nargs = [\"-c\", \"exit 0\"]\nrestart = { policy = \"on-failure\" }\n\n\
         [upstreams.never]\ncommand = \"sh\"\nargs = [\"-c\", \"exit 1\"]\nrestart = { policy = \"never\" }\n",
    )
    .await;
    for name in ["clean", "never"] {
        assert!(
            reaches(&gw, name, "failed", Duration::from_secs(10)).await,
            "{}",
            gw.health().await
        );
        let r = upstream_report(&gw, name).await;
        assert_eq!(r["restarts"], 0, "{r}");
        assert!(
            r["detail"].as_str().unwrap().contains("restart policy"),
            "{r}"
        );
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn killing_a_child_mid_call_errors_within_a_second_and_it_comes_back() {
    let gw = Gateway::start(&demo_config(&[("demo", "")])).await;
    let url = gw.url("/mcp");
    let before = gw.pid_of("demo").await.unwrap();
    let call = {
        let url = url.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let r = modern(
                &url,
                "tools/call",
                json!({"name": "slow", "arguments": {"ms": 20000, "steps": 1}}),
            )
            .await;
            (r, started)
        })
    };
    assert!(
        eventually(Duration::from_secs(5), async || {
            upstream_report(&gw, "demo").await["in_flight"] == 1
        })
        .await
    );
    let killed = Instant::now();
    // SAFETY: kill(2) on a pid this test just read; no memory involved.
    unsafe {
        libc::kill(before as i32, libc::SIGKILL);
    }
    let (reply, _) = call.await.unwrap();
    let answered = killed.elapsed();
    assert!(
        reply.last()["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("demo")),
        "{}",
        reply.last()
    );
    assert!(
        answered < Duration::from_secs(1),
        "error after {answered:?}"
    );
    assert!(
        eventually(Duration::from_secs(10), async || {
            gw.pid_of("demo").await.is_some_and(|p| p != before)
        })
        .await
    );
    let r = upstream_report(&gw, "demo").await;
    assert_eq!(r["restarts"], 1, "{r}");
    assert!(r["last_exit"].as_str().unwrap().contains("signal 9"), "{r}");
    let echo = modern(
        &url,
        "tools/call",
        json!({"name": "echo", "arguments": {"message": "back"}}),
    )
    .await;
    assert_eq!(echo.last()["result"]["content"][0]["text"], "Echo: back");
    gw.shutdown().await;
}

#[tokio::test]
async fn an_unresponsive_child_fails_its_health_check_and_is_restarted() {
    let toml = format!(
        "{}health = {{ interval_seconds = 1, timeout_seconds = 1 }}\n",
        demo_config(&[("demo", "")])
    );
    let gw = Gateway::start(&toml).await;
    let before = gw.pid_of("demo").await.unwrap();
    // Frozen, not dead: only a health check can tell.
    // SAFETY: as above.
    unsafe {
        libc::kill(before as i32, libc::SIGSTOP);
    }
    assert!(
        eventually(Duration::from_secs(10), async || {
            gw.pid_of("demo").await.is_some_and(|p| p != before)
        })
        .await,
        "{}",
        gw.health().await
    );
    let r = upstream_report(&gw, "demo").await;
    assert_eq!(r["health_failures"], 1, "{r}");
    assert!(
        r["last_exit"]
            .as_str()
            .unwrap()
            .contains("health check `server/discover`"),
        "{r}"
    );
    assert!(
        eventually(Duration::from_secs(5), async || !alive(before)).await,
        "the frozen child was not killed"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn a_wrapper_leaves_no_orphan_after_fifty_restarts() {
    // Like npx/uvx: the upstream is a shell that leaves a grandchild (a
    // `sleep` marked by a unique argument) in the child's process group.
    let marker = format!("{}", 7_000_000 + std::process::id());
    let toml = format!(
        "[upstreams.wrapped]\ncommand = \"sh\"\nargs = [\"-c\", \"sleep {marker} & exec {{bin}} demo --name wrapped\"]\nrestart = {{ max = 100 }}\n[admin]\ntoken = \"test-token-0123456789\"\n"
    );
    let gw = Gateway::start(&toml).await;
    let admin = format!("http://{}", gw.admin.unwrap());
    let http = reqwest::Client::new();
    let mut pid = gw.pid_of("wrapped").await.unwrap();
    for i in 0..50 {
        if i % 2 == 0 {
            let resp = http
                .post(format!("{admin}/admin/upstreams/wrapped/restart"))
                .bearer_auth("test-token-0123456789")
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 202);
        } else {
            // SAFETY: as above.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
        }
        let previous = pid;
        assert!(
            eventually(Duration::from_secs(15), async || {
                gw.pid_of("wrapped").await.is_some_and(|p| p != previous)
            })
            .await,
            "cycle {i}: {}",
            gw.health().await
        );
        pid = gw.pid_of("wrapped").await.unwrap();
    }
    // Counted, not assumed: exactly the current grandchild is left.
    assert!(
        eventually(Duration::from_secs(5), async || processes_with_arg(&marker)
            .len()
            == 1)
        .await,
        "orphans: {:?}",
        processes_with_arg(&marker)
    );
    gw.shutdown().await;
    assert!(
        eventually(Duration::from_secs(5), async || processes_with_arg(&marker)
            .is_empty())
        .await,
        "left after shutdown: {:?}",
        processes_with_arg(&marker)
    );
}

#[tokio::test]
async fn lazy_upstreams_start_on_first_use_and_stop_when_idle() {
    let toml = format!(
        "{}lazy = true\nidle_timeout = \"1s\"\n",
        demo_config(&[("demo", "")])
    );
    let gw = Gateway::start(&toml).await;
    let r = upstream_report(&gw, "demo").await;
    assert_eq!(r["state"], "idle", "{r}");
    assert!(r["pid"].is_null(), "{r}");
    let url = gw.url("/mcp");
    let echo = modern(
        &url,
        "tools/call",
        json!({"name": "echo", "arguments": {"message": "wake"}}),
    )
    .await;
    assert_eq!(
        echo.last()["result"]["content"][0]["text"],
        "Echo: wake",
        "{}",
        echo.last()
    );
    let pid = gw.pid_of("demo").await.expect("started on use");
    // /proc figures of the running child's group.
    let r = upstream_report(&gw, "demo").await;
    assert!(r["rss_bytes"].as_u64().unwrap() > 0, "{r}");
    assert!(r["processes"].as_u64().unwrap() >= 1, "{r}");
    assert!(r["uptime_seconds"].as_f64().unwrap() >= 0.0, "{r}");
    assert!(
        reaches(&gw, "demo", "idle", Duration::from_secs(10)).await,
        "{}",
        gw.health().await
    );
    assert!(eventually(Duration::from_secs(5), async || !alive(pid)).await);
    // And it wakes again.
    let echo = modern(
        &url,
        "tools/call",
        json!({"name": "echo", "arguments": {"message": "again"}}),
    )
    .await;
    assert_eq!(echo.last()["result"]["content"][0]["text"], "Echo: again");
    assert_eq!(
        upstream_report(&gw, "demo").await["restarts"],
        0,
        "idle stops are not restarts"
    );
    gw.shutdown().await;
}
