//! `console`: what the web console costs, printed as one table.
//!
//! ```text
//! cargo bench -p switchyard --bench console
//! cargo bench -p switchyard --bench console -- --seconds 20 --consoles 50
//! ```
//!
//! Starts `switchyard serve` (the demo upstream, the admin listener on) and
//! measures:
//! - **page weight**: bytes on the wire for the overview (HTML, CSS, script;
//!   gzip where the browser asks for it) and each other page's HTML;
//! - **first render**: the overview's `first-contentful-paint` in Debian's
//!   headless Chromium (through ChromeDriver), median of `--renders` fresh loads;
//! - **streaming CPU**: the gateway's CPU (user+sys from `/proc`) over
//!   `--seconds` with no console open, then with `--consoles` signed-in
//!   consoles reading the live overview (`/ui/events`).
//!
//! Needs `chromium` and `chromedriver` (`tests/system-packages.sh`).
//! Everything binds 127.0.0.1.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{ClientBuilder, Locator};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");
const TOKEN: &str = "bench-console-admin-token";

struct Opts {
    seconds: f64,
    consoles: usize,
    renders: usize,
}

fn parse_opts() -> Result<Opts, String> {
    let mut o = Opts {
        seconds: 10.0,
        consoles: 50,
        renders: 10,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |name: &str| -> Result<f64, String> {
            args.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a number"))
        };
        match a.as_str() {
            "--seconds" => o.seconds = num("--seconds")?,
            "--consoles" => o.consoles = num("--consoles")? as usize,
            "--renders" => o.renders = num("--renders")? as usize,
            "--bench" => {}
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(o)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// User+sys CPU seconds of `pid` (the gateway; its children are not counted).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 (11 and 12 after the name).
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / hz
}

struct Gateway {
    child: Child,
    admin: SocketAddr,
    dir: std::path::PathBuf,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn start() -> Gateway {
    let dir = std::env::temp_dir().join(format!("sybench-console-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (main, admin) = (free_port(), free_port());
    let file = dir.join("gw.toml");
    std::fs::write(
        &file,
        format!(
            "[server]\nlisten = \"127.0.0.1:{main}\"\n\n[upstreams.demo]\ncommand = \"{BIN}\"\nargs = [\"demo\", \"--name\", \"demo\"]\n\n[admin]\nlisten = \"127.0.0.1:{admin}\"\ntoken = \"{TOKEN}\"\n"
        ),
    )
    .unwrap();
    let child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&file)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let admin = SocketAddr::from(([127, 0, 0, 1], admin));
    let gw = Gateway { child, admin, dir };
    for _ in 0..400 {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{main}/healthz")).await
            && let Ok(h) = r.json::<Value>().await
            && h["upstreams"][0]["state"] == "ready"
        {
            return gw;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the gateway did not start");
}

/// A signed-in session cookie (`name=value`).
async fn sign_in(http: &reqwest::Client, admin: SocketAddr) -> String {
    let resp = http
        .post(format!("http://{admin}/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={TOKEN}"))
        .send()
        .await
        .unwrap();
    resp.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// Bytes of `url` on the wire (gzip asked for, as browsers do).
async fn wire_bytes(http: &reqwest::Client, url: &str, cookie: &str) -> usize {
    http.get(url)
        .header("cookie", cookie)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .len()
}

async fn page_weight(gw: &Gateway) -> Vec<(String, String)> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cookie = sign_in(&http, gw.admin).await;
    let base = format!("http://{}", gw.admin);
    let html = http
        .get(format!("{base}/ui/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let asset = |ext: &str| {
        html.split('"')
            .find(|s| s.starts_with("/ui/static/") && s.ends_with(ext))
            .unwrap()
            .to_owned()
    };
    let (css, js) = (asset(".css"), asset(".js"));
    let mut rows = Vec::new();
    let overview = html.len();
    let css_b = wire_bytes(&http, &format!("{base}{css}"), &cookie).await;
    let js_b = wire_bytes(&http, &format!("{base}{js}"), &cookie).await;
    rows.push((
        "overview, whole (HTML + CSS + script, gzip assets)".into(),
        format!(
            "{} B ({overview} + {css_b} + {js_b})",
            overview + css_b + js_b
        ),
    ));
    for page in [
        "/ui/routes",
        "/ui/explorer",
        "/ui/metrics",
        "/ui/logs",
        "/ui/sessions",
        "/ui/config",
    ] {
        let n = wire_bytes(&http, &format!("{base}{page}"), &cookie).await;
        rows.push((format!("{page} HTML"), format!("{n} B")));
    }
    rows
}

async fn first_render(gw: &Gateway, renders: usize) -> Result<Vec<f64>, String> {
    let port = free_port();
    let mut driver = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("chromedriver: {e} (tests/system-packages.sh installs it)"))?;
    let result = async {
        for _ in 0..200 {
            if reqwest::get(format!("http://127.0.0.1:{port}/status")).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = std::env::temp_dir().join(format!("sybench-chromium-{port}"));
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-quic", "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                         format!("--user-data-dir={}", profile.display())]
            }
        });
        let Value::Object(caps) = caps else { unreachable!() };
        let b = ClientBuilder::rustls()
            .map_err(|e| e.to_string())?
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .map_err(|e| e.to_string())?;
        b.goto(&format!("http://{}/ui/login", gw.admin)).await.map_err(|e| e.to_string())?;
        b.find(Locator::Css("#token")).await.map_err(|e| e.to_string())?.send_keys(TOKEN).await.map_err(|e| e.to_string())?;
        b.find(Locator::Css("form button")).await.map_err(|e| e.to_string())?.click().await.map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for _ in 0..renders {
            b.goto(&format!("http://{}/ui/", gw.admin)).await.map_err(|e| e.to_string())?;
            b.wait().for_element(Locator::Css("tr[data-upstream]")).await.map_err(|e| e.to_string())?;
            // Paint entries are recorded shortly after the paint itself.
            let mut fcp = Value::Null;
            for _ in 0..50 {
                fcp = b
                    .execute(
                        "const p = performance.getEntriesByName('first-contentful-paint')[0]; return p ? p.startTime : null;",
                        vec![],
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                if fcp.is_number() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            out.push(fcp.as_f64().ok_or("no first-contentful-paint entry")?);
        }
        let _ = b.close().await;
        let _ = std::fs::remove_dir_all(&profile);
        Ok(out)
    }
    .await;
    let _ = driver.kill();
    let _ = driver.wait();
    result
}

/// The gateway's CPU over `secs` while `consoles` read the live overview.
async fn streaming_cpu(gw: &Gateway, consoles: usize, secs: f64) -> (f64, usize) {
    let http = reqwest::Client::new();
    let mut tasks = Vec::new();
    let events = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for _ in 0..consoles {
        let cookie = sign_in(
            &reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            gw.admin,
        )
        .await;
        let resp = http
            .get(format!("http://{}/ui/events", gw.admin))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        let events = std::sync::Arc::clone(&events);
        tasks.push(tokio::spawn(async move {
            use futures_util::StreamExt;
            let mut body = resp.bytes_stream();
            while let Some(Ok(chunk)) = body.next().await {
                let n = chunk.windows(13).filter(|w| *w == b"event: upstre").count();
                events.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            }
        }));
    }
    // Let the first fragments pass, then measure.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before_events = events.load(std::sync::atomic::Ordering::Relaxed);
    let pid = gw.child.id();
    let (cpu0, t0) = (cpu_seconds(pid), Instant::now());
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    let cpu = cpu_seconds(pid) - cpu0;
    let wall = t0.elapsed().as_secs_f64();
    let got = events.load(std::sync::atomic::Ordering::Relaxed) - before_events;
    for t in tasks {
        t.abort();
    }
    (cpu / wall * 100.0, got)
}

fn main() -> std::process::ExitCode {
    let opts = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!(
                "console: {e}\nusage: cargo bench -p switchyard --bench console [-- --seconds N --consoles N --renders N]"
            );
            return std::process::ExitCode::from(2);
        }
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let rows =
        rt.block_on(async {
            let gw = start().await;
            let mut rows = page_weight(&gw).await;
            match first_render(&gw, opts.renders).await {
                Ok(mut ms) => {
                    ms.sort_by(f64::total_cmp);
                    rows.push((
                        format!("overview first-contentful-paint, {} loads", ms.len()),
                        format!(
                            "median {:.0} ms (min {:.0}, max {:.0})",
                            ms[ms.len() / 2],
                            ms[0],
                            ms[ms.len() - 1]
                        ),
                    ));
                }
                Err(e) => rows.push(("overview first render".into(), format!("FAILED: {e}"))),
            }
            let (idle, _) = streaming_cpu(&gw, 0, opts.seconds).await;
            rows.push((
                format!("gateway CPU, no console, {} s", opts.seconds),
                format!("{idle:.2}% of one core"),
            ));
            let (busy, events) = streaming_cpu(&gw, opts.consoles, opts.seconds).await;
            rows.push((
            format!("gateway CPU, {} consoles streaming, {} s", opts.consoles, opts.seconds),
            format!(
                "{busy:.2}% of one core ({events} overview updates received, {:.1}/s per console)",
                events as f64 / opts.seconds / opts.consoles.max(1) as f64
            ),
        ));
            rows
        });
    println!("\n| console | measured |\n|---|---|");
    for (k, v) in rows {
        println!("| {k} | {v} |");
    }
    std::process::ExitCode::SUCCESS
}
