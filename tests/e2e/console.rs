//! The web console in a real browser: Debian's Chromium driven through
//! ChromeDriver (WebDriver, by `fantoccini`), against the real `switchyard`
//! binary started on a config file with the demo server as its child.
//!
//! Chromium and ChromeDriver are installed by `tests/system-packages.sh`
//! (the test command runs it); without them these tests fail, they do not
//! skip. Screenshots of every page go to `<target>/tmp/console/`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::harness::{BIN, Legacy, eventually, tool_names};

const ADMIN: &str = "admin-token-for-the-console-test";
const VIEWER: &str = "viewer-token-for-the-console-test";

/// The test's configuration: `/mcp` serves the demo alone, `/all` every
/// upstream (so one added through the console joins it).
fn config(dir: &Path) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:0"

[upstreams.demo]
command = "{BIN}"
args = ["demo", "--name", "demo", "--era", "legacy"]

[[routes]]
path = "/mcp"
upstreams = ["demo"]

[[routes]]
path = "/all"

[plugins.deny-echo]
component = "builtin:filter"
config = {{ tools = {{ deny = ["echo"] }} }}

[admin]
listen = "127.0.0.1:0"
token = "{ADMIN}"
viewer_token = "{VIEWER}"
state_file = "{}"
"#,
        dir.join("gw.admin.toml").display()
    )
}

/// The real binary serving a config file; stderr is kept.
struct Served {
    child: Child,
    main: SocketAddr,
    admin: SocketAddr,
    stderr: Arc<Mutex<String>>,
    file: PathBuf,
    dir: PathBuf,
}

impl Served {
    async fn start(name: &str) -> Served {
        let dir =
            std::env::temp_dir().join(format!("switchyard-console-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("gw.toml");
        std::fs::write(&file, config(&dir)).unwrap();
        let mut child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&file)
            .env("RUST_LOG", "info")
            .env("SWITCHYARD_LOG_FORMAT", "text")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let pipe = child.stderr.take().unwrap();
            let stderr = Arc::clone(&stderr);
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let _ = tx.send(line.clone());
                    let mut s = stderr.lock().unwrap();
                    s.push_str(&line);
                    s.push('\n');
                }
            });
        }
        let addr_after = |line: &str, key: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .and_then(|a| a.parse::<SocketAddr>().ok())
        };
        let (mut main, mut admin) = (None, None);
        let until = std::time::Instant::now() + Duration::from_secs(60);
        while main.is_none() || admin.is_none() {
            let left = until.saturating_duration_since(std::time::Instant::now());
            let line = rx.recv_timeout(left).unwrap_or_else(|_| {
                panic!("the gateway did not start:\n{}", stderr.lock().unwrap())
            });
            if line.contains("switchyard listening") {
                main = addr_after(&line, "local=");
            }
            if line.contains("admin API listening") {
                admin = addr_after(&line, "listen=");
            }
        }
        let served = Served {
            child,
            main: main.unwrap(),
            admin: admin.unwrap(),
            stderr,
            file,
            dir,
        };
        served.wait_ready("demo").await;
        served
    }

    fn ui(&self, path: &str) -> String {
        format!("http://{}/ui{path}", self.admin)
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.main)
    }

    async fn health(&self) -> Value {
        match reqwest::get(self.url("/healthz")).await {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        }
    }

    /// Upstream `name`'s pid once it is ready.
    async fn wait_ready(&self, name: &str) -> u32 {
        for _ in 0..400 {
            let h = self.health().await;
            if let Some(u) = h["upstreams"]
                .as_array()
                .and_then(|a| a.iter().find(|u| u["name"] == name))
                && u["state"] == "ready"
                && let Some(pid) = u["pid"].as_u64()
            {
                return pid as u32;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{name} is not ready: {}", self.health().await);
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A headless Chromium under its own ChromeDriver.
struct Browser {
    driver: Child,
    client: Client,
    profile: PathBuf,
}

impl Browser {
    async fn start() -> Browser {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("chromedriver does not run ({e}): tests/system-packages.sh installs it")
            });
        let status = format!("http://127.0.0.1:{port}/status");
        let up = eventually(Duration::from_secs(20), async || {
            reqwest::get(&status).await.is_ok_and(|r| r.status() == 200)
        })
        .await;
        assert!(up, "chromedriver did not answer on port {port}");
        let profile = std::env::temp_dir().join(format!("switchyard-chromium-{port}"));
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium(),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.display()),
                ]
            }
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let client = ClientBuilder::rustls()
            .unwrap()
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session");
        Browser {
            driver,
            client,
            profile,
        }
    }

    async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        match self
            .client
            .wait()
            .at_most(Duration::from_secs(15))
            .for_element(Locator::Css(css))
            .await
        {
            Ok(e) => e,
            Err(e) => panic!("no `{css}` on {}: {e}", self.path().await),
        }
    }

    async fn fill(&self, css: &str, text: &str) {
        self.find(css).await.send_keys(text).await.unwrap();
    }

    /// Clicks a control that submits a form, and waits for the page the
    /// submission leads to: the old document is marked first, so nothing
    /// after this can find an element of the page being left.
    async fn click(&self, css: &str) {
        self.client
            .execute("window.__left = true; return null;", vec![])
            .await
            .unwrap();
        self.find(css).await.click().await.unwrap();
        self.until(
            "window.__left !== true && document.readyState !== 'loading'",
            "the submission leads to a new page",
        )
        .await;
    }

    async fn select(&self, css: &str, value: &str) {
        self.find(css).await.select_by_value(value).await.unwrap();
    }

    async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    async fn has(&self, css: &str) -> bool {
        !self
            .client
            .find_all(Locator::Css(css))
            .await
            .unwrap()
            .is_empty()
    }

    async fn js(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_owned()
    }

    async fn sign_in(&self, served: &Served, token: &str) {
        self.goto(&served.ui("/login")).await;
        self.fill("#token", token).await;
        self.click("form button[type=submit]").await;
    }

    /// Waits until `script` (an expression) is truthy in the page.
    async fn until(&self, script: &str, what: &str) {
        let body = format!("return Boolean({script});");
        let ok = eventually(Duration::from_secs(20), async || {
            self.client
                .execute(&body, vec![])
                .await
                .is_ok_and(|v| v == json!(true))
        })
        .await;
        assert!(ok, "{what}: `{script}` never held on {}", self.path().await);
    }

    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        let dir = screenshots();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    async fn close(self) {
        let _ = self.client.close().await;
        let mut driver = self.driver;
        let _ = driver.kill();
        let _ = driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn chromium() -> String {
    for c in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if Path::new(c).exists() {
            return c.into();
        }
    }
    panic!("no Chromium: tests/system-packages.sh installs Debian's chromium");
}

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn form<K: serde::Serialize, V: serde::Serialize>(fields: &[(K, V)]) -> String {
    serde_urlencoded::to_string(fields).unwrap()
}

/// Signs in over plain HTTP: the session cookie and the page's CSRF token.
async fn http_session(served: &Served, token: &str) -> (reqwest::Client, String, String) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = http
        .post(served.ui("/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("token", token)]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    let pair = cookie.split(';').next().unwrap().to_owned();
    let page = http
        .get(served.ui("/"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = page
        .split("name=\"csrf-token\" content=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    (http, format!("{pair}|{cookie}"), csrf)
}

#[tokio::test]
async fn sign_in_roles_cookies_and_csrf() {
    let served = Served::start("signin").await;
    let b = Browser::start().await;
    // Signed out: every page leads to the sign-in page.
    b.goto(&served.ui("/routes")).await;
    b.find("#token").await;
    assert_eq!(b.path().await, "/ui/login");
    // A wrong token is refused, slowly, and logged without the token.
    b.sign_in(&served, "not-the-right-token-at-all").await;
    assert!(b.text("#login-error").await.contains("not valid"));
    assert_eq!(b.path().await, "/ui/login");
    let started = std::time::Instant::now();
    let refused = reqwest::Client::new()
        .post(served.ui("/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("token", "another-wrong-token-xyz")]))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert!(
        started.elapsed() >= Duration::from_millis(450),
        "a failed sign-in is slowed down"
    );
    let log = served.stderr();
    assert!(log.contains("sign-in refused"), "{log}");
    assert!(!log.contains("not-the-right-token") && !log.contains("another-wrong-token"));
    // The right one signs in: the overview, and a cookie the page's scripts cannot read.
    b.sign_in(&served, ADMIN).await;
    b.find("tr[data-upstream=demo]").await;
    assert_eq!(b.path().await, "/ui/");
    let cookies = b.client.get_all_cookies().await.unwrap();
    let c = cookies
        .iter()
        .find(|c| c.name() == "switchyard_console")
        .expect("the session cookie");
    assert_eq!(c.http_only(), Some(true));
    assert_eq!(format!("{:?}", c.same_site()), "Some(Strict)");
    assert_eq!(b.js("return document.cookie").await, json!(""));
    assert!(b.has("#do-restart").await || b.has("a[href='/ui/upstreams/new']").await);
    // The cookie's flags as sent (no Secure: this listener is plain HTTP).
    let (http, cookie, csrf) = http_session(&served, ADMIN).await;
    let (pair, set_cookie) = cookie.split_once('|').unwrap();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age=28800"] {
        assert!(set_cookie.contains(flag), "{flag} missing: {set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"));
    // A POST without the CSRF token, or with a wrong one, is refused.
    let restart = served.ui("/upstreams/demo/restart");
    let post = |body: Vec<(&'static str, String)>| {
        http.post(&restart)
            .header("cookie", pair)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&body))
            .send()
    };
    assert_eq!(post(vec![]).await.unwrap().status(), 403);
    assert_eq!(
        post(vec![("_csrf", "0".repeat(64))])
            .await
            .unwrap()
            .status(),
        403
    );
    // Pages are gzip-compressed when asked; the live stream is not.
    let get = |path: &str, encoding: &'static str| {
        http.get(served.ui(path))
            .header("cookie", pair)
            .header("accept-encoding", encoding)
            .send()
    };
    let explorer = get("/explorer?route=/mcp", "gzip").await.unwrap();
    assert_eq!(explorer.status(), 200);
    assert_eq!(explorer.headers()["content-encoding"], "gzip");
    let plain = get("/explorer?route=/mcp", "identity").await.unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    assert!(plain.text().await.unwrap().contains("echo"));
    let events = get("/events", "gzip").await.unwrap();
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    assert!(events.headers().get("content-encoding").is_none());
    drop(events);
    let pid = served.wait_ready("demo").await;
    assert_eq!(
        post(vec![("_csrf", csrf.clone())]).await.unwrap().status(),
        303
    );
    let new_pid = eventually(Duration::from_secs(10), async || {
        served.wait_ready("demo").await != pid
    })
    .await;
    assert!(new_pid, "the CSRF-carrying POST restarted the upstream");
    // Sign-out ends the session.
    b.click(".signout button").await;
    b.find("#token").await;
    b.goto(&served.ui("/")).await;
    b.find("#token").await;
    // The viewer: every page, no button, and its POSTs refused.
    b.sign_in(&served, VIEWER).await;
    b.find("tr[data-upstream=demo]").await;
    for page in [
        "/",
        "/upstreams/demo",
        "/routes",
        "/explorer?route=/mcp",
        "/config",
        "/sessions",
    ] {
        b.goto(&served.ui(page)).await;
        b.find("main h1").await;
        // Controls that change something: POST forms' buttons, editors.
        let buttons: Vec<_> = b
            .client
            .find_all(Locator::Css("main form[method=post] button, main textarea"))
            .await
            .unwrap();
        let mut texts = Vec::new();
        for x in &buttons {
            texts.push(x.text().await.unwrap());
        }
        // The explorer's own "Show" (a GET form) is reading.
        texts.retain(|t| t != "Show");
        assert!(texts.is_empty(), "{page} shows a viewer {texts:?}");
    }
    assert!(!b.has("a[href='/ui/upstreams/new']").await);
    let (vhttp, vcookie, vcsrf) = http_session(&served, VIEWER).await;
    let vpair = vcookie.split_once('|').unwrap().0;
    for (path, body) in [
        ("/upstreams/demo/restart", vec![("_csrf", vcsrf.clone())]),
        (
            "/routes/chain",
            vec![
                ("_csrf", vcsrf.clone()),
                ("route", "/mcp".into()),
                ("plugins", "deny-echo".into()),
            ],
        ),
        (
            "/config",
            vec![
                ("_csrf", vcsrf.clone()),
                ("text", String::new()),
                ("action", "apply".into()),
            ],
        ),
    ] {
        let r = vhttp
            .post(served.ui(path))
            .header("cookie", vpair)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&body))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "a viewer's POST {path}");
    }
    assert!(
        std::fs::read_to_string(&served.file)
            .unwrap()
            .contains("[[routes]]")
    );
    b.close().await;
}

#[tokio::test]
async fn the_overview_follows_a_crash_live_and_the_upstream_page_acts() {
    let served = Served::start("live").await;
    let b = Browser::start().await;
    b.sign_in(&served, ADMIN).await;
    b.find("tr[data-upstream=demo] .state-ready").await;
    // Record every state the page shows, without reloading it.
    b.js(r#"
        window.__noReload = true;
        window.__seen = [];
        const body = document.querySelector('[data-live="upstreams"]');
        new MutationObserver(() => {
          const row = body.querySelector('tr[data-upstream="demo"]');
          if (row) window.__seen.push(row.querySelector('[data-field=state]').textContent + ' '
            + row.querySelector('[data-field=pid]').textContent);
        }).observe(body, { childList: true, subtree: true, characterData: true });
        return true;"#)
        .await;
    b.until(
        "document.querySelector('.live-note') && !document.querySelector('.live-note').hidden",
        "the live stream",
    )
    .await;
    let pid = served.wait_ready("demo").await;
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let new_pid = eventually(Duration::from_secs(20), async || {
        let h = served.health().await;
        h["upstreams"][0]["state"] == "ready" && h["upstreams"][0]["pid"] != json!(pid)
    })
    .await;
    assert!(new_pid, "the child came back");
    let new_pid = served.wait_ready("demo").await;
    b.until(
        &format!("window.__seen.some(s => s === 'ready {new_pid}')"),
        "the page shows the new pid",
    )
    .await;
    let seen = b.js("return window.__seen").await;
    let seen: Vec<String> = serde_json::from_value(seen).unwrap();
    let crashed = seen
        .iter()
        .position(|s| !s.starts_with("ready"))
        .unwrap_or_else(|| panic!("never shown down: {seen:?}"));
    let back = seen
        .iter()
        .rposition(|s| *s == format!("ready {new_pid}"))
        .unwrap();
    assert!(
        crashed < back,
        "down, then ready with the new pid: {seen:?}"
    );
    assert_eq!(
        b.js("return window.__noReload === true").await,
        json!(true),
        "no reload"
    );
    assert!(
        b.text("tr[data-upstream=demo] [data-field=restarts]")
            .await
            .parse::<u32>()
            .unwrap()
            >= 1
    );
    b.screenshot("overview").await;

    // The restart button changes the pid.
    b.goto(&served.ui("/upstreams/demo")).await;
    b.click("#do-restart").await;
    b.find(".flash").await;
    let restarted = eventually(Duration::from_secs(15), async || {
        served.wait_ready("demo").await != new_pid
    })
    .await;
    assert!(restarted, "restart changed the pid");

    // A bad spec shows its error beside the field and changes nothing.
    b.goto(&served.ui("/upstreams/new")).await;
    b.fill("#f-name", "bad").await;
    b.fill("#f-command", BIN).await;
    b.fill("#f-timeout", "soon").await;
    b.click("#add").await;
    let error = b.text("#e-timeout").await;
    assert!(error.contains("duration"), "{error}");
    assert_eq!(
        b.find("#f-timeout")
            .await
            .attr("aria-invalid")
            .await
            .unwrap()
            .as_deref(),
        Some("true")
    );
    assert!(
        served.health().await["upstreams"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["name"] != "bad")
    );
    assert!(
        !served.dir.join("gw.admin.toml").exists()
            || !std::fs::read_to_string(served.dir.join("gw.admin.toml"))
                .unwrap()
                .contains("bad")
    );

    // An `mcpServers` JSON pasted: each server added.
    b.goto(&served.ui("/upstreams/new")).await;
    let servers = json!({"mcpServers": {"imported": {"command": BIN, "args": ["demo", "--name", "imported"]}}});
    b.js(&format!(
        "document.getElementById('f-servers').value = {}; return true;",
        json!(servers.to_string())
    ))
    .await;
    b.click("#import").await;
    assert!(b.text(".flash").await.contains("imported"));
    served.wait_ready("imported").await;
    // Pasted JSON that is not a server list says why and adds nothing.
    b.goto(&served.ui("/upstreams/new")).await;
    b.fill("#f-servers", r#"{"servers": {}}"#).await;
    b.click("#import").await;
    assert!(b.text("#e-servers").await.contains("mcpServers"));

    // An upstream added through the form: its stderr in the tail, its tools in the explorer.
    let marker = format!("console-marker-{}", std::process::id());
    b.goto(&served.ui("/upstreams/new")).await;
    b.fill("#f-name", "extra").await;
    b.fill("#f-command", "sh").await;
    let script = format!("-c\necho {marker} >&2; exec {BIN} demo --name extra --era legacy");
    b.fill("#f-args", &script).await;
    b.click("#add").await;
    b.find(".flash").await;
    assert_eq!(b.path().await, "/ui/upstreams/extra");
    served.wait_ready("extra").await;
    b.until(
        &format!("document.querySelector('#log').textContent.includes('{marker}')"),
        "the child's stderr in the tail",
    )
    .await;
    b.screenshot("upstream").await;
    // The tail's filter hides what does not match, and pause holds it.
    b.fill("#log-filter", "no-such-line-anywhere").await;
    b.until(
        "document.querySelector('#log').textContent === ''",
        "the filter",
    )
    .await;
    b.goto(&served.ui("/explorer?route=/all")).await;
    b.find("article.tool").await;
    assert!(
        b.has("article[data-name='extra__echo']").await,
        "the added upstream's tools"
    );
    // The gateway's own log has the child's line too.
    b.goto(&served.ui("/logs")).await;
    b.until(
        &format!("document.querySelector('#log').textContent.includes('{marker}')"),
        "the gateway log",
    )
    .await;
    b.close().await;
}

#[tokio::test]
async fn the_explorer_calls_through_the_chain_and_edits_persist() {
    let served = Served::start("explorer").await;
    let b = Browser::start().await;
    b.sign_in(&served, ADMIN).await;
    b.find("tr[data-upstream=demo]").await;
    // "Try it" on echo: its text, the upstream that answered, the latency.
    b.goto(&served.ui("/explorer?route=/mcp")).await;
    b.fill(
        "article[data-name=echo] input[name='arg.message']",
        "hi from the console",
    )
    .await;
    b.click("#try-echo").await;
    assert!(
        b.text("#result-body")
            .await
            .contains("Echo: hi from the console")
    );
    assert_eq!(b.text("#result-upstream").await, "demo");
    assert!(b.text("#result-latency").await.ends_with("ms"));
    b.screenshot("explorer").await;

    // Swapping in a filter that denies echo hides it, here and from a client.
    b.goto(&served.ui("/routes")).await;
    let chain = b.find("input[data-chain-for='/mcp']").await;
    chain.clear().await.unwrap();
    chain.send_keys("deny-echo").await.unwrap();
    b.click("form:has(input[data-chain-for='/mcp']) button[value=set]")
        .await;
    b.find(".flash").await;
    assert!(b.text("main").await.contains("deny-echo"));
    b.screenshot("routes").await;
    b.goto(&served.ui("/explorer?route=/mcp")).await;
    b.find("#tools-h").await;
    assert!(
        !b.has("article[data-name=echo]").await,
        "echo hidden from the explorer"
    );
    let client = Legacy::connect(&served.url("/mcp")).await;
    let tools = tool_names(&client.result("tools/list", json!({})).await);
    assert!(!tools.contains(&"echo".to_owned()), "{tools:?}");
    assert!(!tools.is_empty());
    // The swap survives a change of the config file.
    let text = std::fs::read_to_string(&served.file).unwrap();
    std::fs::write(
        &served.file,
        format!("{text}\n[[routes]]\npath = \"/later\"\nupstreams = [\"demo\"]\n"),
    )
    .unwrap();
    let reloaded = eventually(Duration::from_secs(20), async || {
        reqwest::Client::new()
            .post(served.url("/later"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
            .send()
            .await
            .is_ok_and(|r| r.status() != 404)
    })
    .await;
    assert!(reloaded, "the file change applied");
    let client = Legacy::connect(&served.url("/mcp")).await;
    let tools = tool_names(&client.result("tools/list", json!({})).await);
    assert!(
        !tools.contains(&"echo".to_owned()),
        "the swap was lost: {tools:?}"
    );

    // A config edit with a typo: the error, and nothing changes.
    b.goto(&served.ui("/config")).await;
    b.find("#config-text").await;
    let before = std::fs::read_to_string(&served.file).unwrap();
    b.js("const t = document.getElementById('config-text'); t.value = t.value.replace('[[routes]]', '[[routez]]'); return true;")
        .await;
    b.click("#config-check").await;
    assert!(b.text("#config-error").await.contains("routez"));
    assert!(b.text("#config-diff").await.contains("+[[routez]]"));
    b.click("#config-apply").await;
    assert!(b.text("#config-error").await.contains("routez"));
    assert_eq!(
        std::fs::read_to_string(&served.file).unwrap(),
        before,
        "a refused edit writes nothing"
    );
    // A good edit applies: a new route serves.
    b.goto(&served.ui("/config")).await;
    b.js("const t = document.getElementById('config-text'); t.value += '\\n[[routes]]\\npath = \"/edited\"\\nupstreams = [\"demo\"]\\n'; return true;")
        .await;
    b.click("#config-apply").await;
    b.find(".flash").await;
    let client = Legacy::connect(&served.url("/edited")).await;
    assert!(tool_names(&client.result("tools/list", json!({})).await).contains(&"echo".to_owned()));
    // The effective configuration hides the tokens.
    b.goto(&served.ui("/config")).await;
    let effective = b.text("#effective").await;
    assert!(
        effective.contains("(secret)") && !effective.contains(ADMIN) && !effective.contains(VIEWER)
    );
    b.screenshot("config").await;
    // The legacy clients above are listed as sessions; one can be ended.
    b.goto(&served.ui("/sessions")).await;
    assert!(b.text("main table").await.contains("/edited"));
    b.screenshot("sessions").await;
    let sid = client.session.clone();
    b.js("window.confirm = () => true; return true;").await;
    b.click(&format!("form:has(input[value='{sid}']) button"))
        .await;
    b.find(".flash").await;
    assert!(!b.text("main table").await.contains(&sid[..8]));
    let gone = client.request("tools/list", json!({})).await;
    assert_eq!(
        gone.status, 404,
        "an ended session is unknown to its client"
    );

    // Plugins from the routes page: a file that is no component is refused
    // with its reason and nothing changes; a built-in loads into a chain.
    b.goto(&served.ui("/routes")).await;
    let junk = served.dir.join("junk.wasm");
    std::fs::write(&junk, b"not a component").unwrap();
    b.fill("#p-name", "junk").await;
    b.fill("#p-wasm", &junk.display().to_string()).await;
    b.select("#p-route", "/all").await;
    b.click("#add-plugin").await;
    assert!(
        b.text("#chain-problem")
            .await
            .contains("not a WebAssembly component")
    );
    let all_tools = async || {
        let c = Legacy::connect(&served.url("/all")).await;
        tool_names(&c.result("tools/list", json!({})).await)
    };
    assert!(all_tools().await.iter().any(|t| t.ends_with("echo")));
    b.goto(&served.ui("/routes")).await;
    b.fill("#p-name", "no-echo").await;
    b.select("#p-builtin", "builtin:filter").await;
    b.fill("#p-config", r#"{"tools": {"deny": ["echo"]}}"#)
        .await;
    b.select("#p-route", "/all").await;
    b.click("#add-plugin").await;
    b.find(".flash").await;
    assert!(
        !all_tools().await.iter().any(|t| t.ends_with("echo")),
        "the loaded filter hides echo on /all"
    );
    let state = std::fs::read_to_string(served.dir.join("gw.admin.toml")).unwrap();
    assert!(
        state.contains("[plugins.no-echo]") && !state.contains("junk"),
        "{state}"
    );
    b.close().await;
}

/// The axe-core scan, in the page: serious and critical violations.
async fn axe(b: &Browser, source: &str) -> Vec<String> {
    b.client.execute(source, vec![]).await.unwrap();
    let found = b
        .client
        .execute_async(
            r#"const done = arguments[arguments.length - 1];
            axe.run(document, { resultTypes: ["violations"] })
              .then(r => done(r.violations
                 .filter(v => v.impact === "serious" || v.impact === "critical")
                 .map(v => v.id + ": " + v.nodes.map(n => n.target.join(" ")).join(", "))))
              .catch(e => done(["axe failed: " + e]));"#,
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value(found).unwrap()
}

#[tokio::test]
async fn every_page_passes_an_accessibility_scan_and_fits_a_phone() {
    let axe_js = std::fs::read_to_string(crate::peers::peers().get("PEERS_AXE")).unwrap();
    let served = Served::start("axe").await;
    let b = Browser::start().await;
    b.goto(&served.ui("/login")).await;
    b.find("#token").await;
    let mut failures = Vec::new();
    let login = axe(&b, &axe_js).await;
    if !login.is_empty() {
        failures.push(format!("/login: {login:?}"));
    }
    b.screenshot("login").await;
    b.sign_in(&served, ADMIN).await;
    b.find("tr[data-upstream=demo]").await;
    let pages = [
        ("/", "overview-full"),
        ("/upstreams/demo", "upstream-demo"),
        ("/upstreams/new", "new-upstream"),
        ("/routes", "routes-full"),
        ("/explorer?route=/mcp", "explorer-full"),
        ("/metrics", "metrics"),
        ("/logs", "logs"),
        ("/sessions", "sessions-full"),
        ("/config", "config-full"),
    ];
    for (page, shot) in pages {
        b.goto(&served.ui(page)).await;
        b.find("main h1").await;
        let found = axe(&b, &axe_js).await;
        if !found.is_empty() {
            failures.push(format!("{page}: {found:?}"));
        }
        b.screenshot(shot).await;
    }
    // Keyboard: the skip link is the first stop and leads to the content.
    b.goto(&served.ui("/")).await;
    b.find("main h1").await;
    b.client
        .active_element()
        .await
        .unwrap()
        .send_keys("\u{e004}")
        .await
        .unwrap();
    assert_eq!(
        b.js("return document.activeElement.className").await,
        json!("skip")
    );
    // 360 px wide: nothing wider than the screen but the scrolling tables.
    b.client.set_window_size(360, 800).await.unwrap();
    for (page, _) in pages {
        b.goto(&served.ui(page)).await;
        b.find("main h1").await;
        let overflow = b
            .js("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
            .await;
        if overflow.as_f64().unwrap_or(0.0) > 1.0 {
            let wide = b
                .js("const w = document.documentElement.clientWidth;
                     return [...document.querySelectorAll('main *')]
                       .filter(e => e.getBoundingClientRect().right > w + 1 && !e.closest('.scroll'))
                       .slice(0, 6).map(e => e.tagName + '.' + e.className + ' ' + (e.textContent || '').slice(0, 40));")
                .await;
            failures.push(format!("{page} is {overflow} px wider than 360: {wide}"));
        }
    }
    b.goto(&served.ui("/")).await;
    b.find("main h1").await;
    b.screenshot("overview-360").await;
    assert!(failures.is_empty(), "{failures:#?}");
    b.close().await;
}
