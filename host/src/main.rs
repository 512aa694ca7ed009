//! The `switchyard` command: thin; parses the CLI, loads the configuration,
//! and calls [`switchyard::run`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod scaffold;
mod secret_cmd;

/// mimalloc rather than glibc malloc: a relayed call allocates a few dozen
/// small, short-lived objects (JSON values, header maps, futures), and glibc's
/// malloc/free were ~9% of the gateway's CPU per call (perf, c=1 relay).
/// Measured (alternating runs of each build): at concurrency 1, p50 161.7 →
/// 153.5 µs and 87 → 84 µs of gateway CPU per call (medians of 5); at 64
/// concurrent (wrk), 32-50 → 29-31 µs per call and 23-34k → 33-34.5k calls/s.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit status for a configuration that does not validate (EX_USAGE).
pub(crate) const EXIT_CONFIG: u8 = 64;

/// Exit status when a running gateway cannot be reached (EX_UNAVAILABLE).
const EXIT_UNAVAILABLE: u8 = 69;

/// Where `serve` looks for a configuration when none is given.
const DEFAULT_CONFIG: &str = "config/switchyard.toml";

#[derive(Parser)]
#[command(
    name = "switchyard",
    version,
    about = "An MCP gateway: many MCP servers behind one dual-era endpoint"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the gateway.
    Serve {
        /// The TOML configuration (default: $SWITCHYARD_CONFIG, else config/switchyard.toml).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Check a configuration: exit 0 when valid, 64 with the reason otherwise.
    Validate {
        #[arg(long)]
        config: PathBuf,
    },
    /// Run the built-in demo MCP server over stdio (the default config's upstream).
    Demo {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Print the salted hash of an API key, for `builtin:auth`'s `api_keys`
    /// (`key_hash`). Reads the key from stdin when not given (keeps it out
    /// of shell history).
    HashKey { key: Option<String> },
    /// Plugin development.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Serve the configuration's route over this process's stdin/stdout
    /// (for clients that only launch stdio servers). Logs go to stderr.
    Stdio {
        #[arg(long)]
        config: PathBuf,
        /// The route to serve (default: the first configured).
        #[arg(long)]
        route: Option<String>,
    },
    /// Ask a running gateway for its health; exit 0 when every upstream is
    /// ready (or idle), 1 otherwise, 69 when it cannot be reached.
    Health {
        /// The gateway's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
    },
    /// List the tools a running gateway's route exposes.
    Tools {
        /// The route's URL.
        #[arg(long, default_value = "http://127.0.0.1:8080/mcp")]
        url: String,
        /// An extra request header, `Name: value` (repeatable), e.g. for auth.
        #[arg(long = "header", short = 'H')]
        headers: Vec<String>,
        /// Print the tools as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The encrypted secret store that `${secret:NAME}` reads.
    Secret {
        #[command(subcommand)]
        command: secret_cmd::SecretCommand,
    },
    /// Turn another tool's MCP server list into a Switchyard configuration.
    Import {
        #[command(subcommand)]
        command: ImportCommand,
    },
}

#[derive(Subcommand)]
enum ImportCommand {
    /// Claude Desktop's `claude_desktop_config.json` (`mcpServers`): one
    /// upstream per enabled server, all on `/mcp`. Notes go to stderr.
    ClaudeDesktop {
        /// The JSON file to read.
        path: PathBuf,
        /// Write the TOML here instead of stdout (replacing the file).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Write a new plugin crate (Rust, on the SDK) that builds as is.
    New {
        /// The crate name, e.g. `my-policy`.
        name: String,
        /// The folder to create it in (default: the current one).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The SDK to depend on (default: the `sdk/` this binary was built from).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
}

/// `--config`, else `$SWITCHYARD_CONFIG`, else the default.
pub(crate) fn config_path(given: Option<PathBuf>) -> PathBuf {
    given
        .or_else(|| std::env::var_os("SWITCHYARD_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { config } => match switchyard::config::load(Some(&config)) {
            Ok(c) => {
                // Plugins are part of the configuration: each must compile,
                // fit the world and accept its config.
                if let Err(e) = runtime().block_on(switchyard::plugin::Plugins::load(&c.plugins)) {
                    let e = switchyard::secrets::redact(&e.to_string()).into_owned();
                    eprintln!("{}: {e}", config.display());
                    return ExitCode::from(EXIT_CONFIG);
                }
                println!(
                    "{}: valid ({} upstreams, {} routes, {} plugins)",
                    config.display(),
                    c.upstreams.len(),
                    c.routes.len(),
                    c.plugins.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(EXIT_CONFIG)
            }
        },
        Command::Secret { command } => secret_cmd::run(command),
        Command::Serve { config } => {
            let path = config_path(config);
            let (config, plugins, rt, _traces) = match prepare(&path) {
                Ok(p) => p,
                Err(code) => return code,
            };
            match rt.block_on(serve(config, plugins)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("switchyard: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::HashKey { key } => {
            let key = match key {
                Some(k) => k,
                None => {
                    let mut line = String::new();
                    if std::io::stdin().read_line(&mut line).is_err() {
                        eprintln!("switchyard hash-key: cannot read the key from stdin");
                        return ExitCode::from(EXIT_CONFIG);
                    }
                    line.trim_end_matches(['\r', '\n']).to_owned()
                }
            };
            if key.is_empty() {
                eprintln!("switchyard hash-key: the key is empty");
                return ExitCode::from(EXIT_CONFIG);
            }
            println!("{}", hash_key(&key));
            ExitCode::SUCCESS
        }
        Command::Plugin {
            command: PluginCommand::New { name, dir, sdk },
        } => match scaffold::new_plugin(&name, &dir, sdk.as_deref()) {
            Ok(made) => {
                println!(
                    "created {}\nnext: cd {} && cargo test && cargo build --release --target wasm32-wasip2",
                    made.display(),
                    made.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("switchyard plugin new: {e}");
                ExitCode::from(EXIT_CONFIG)
            }
        },
        Command::Import {
            command: ImportCommand::ClaudeDesktop { path, out },
        } => import_claude_desktop(&path, out.as_deref()),
        Command::Stdio {
            config: path,
            route,
        } => {
            let (config, plugins, rt, _traces) = match prepare(&path) {
                Ok(p) => p,
                Err(code) => return code,
            };
            let served = rt.block_on(switchyard::stdio_front::serve(
                config,
                plugins,
                route.as_deref(),
                tokio::io::stdin(),
                tokio::io::stdout(),
            ));
            match served {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("switchyard stdio: {e:#}");
                    ExitCode::from(EXIT_CONFIG)
                }
            }
        }
        Command::Health { url } => match runtime().block_on(switchyard::ctl::health(&url)) {
            Ok(report) => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                );
                if switchyard::ctl::healthy(&report) {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            Err(e) => {
                eprintln!("switchyard health: {e}");
                ExitCode::from(EXIT_UNAVAILABLE)
            }
        },
        Command::Tools { url, headers, json } => {
            let mut pairs = Vec::new();
            for h in &headers {
                match h.split_once(':') {
                    Some((k, v)) => pairs.push((k.trim().to_owned(), v.trim().to_owned())),
                    None => {
                        eprintln!("switchyard tools: `{h}` is not a `Name: value` header");
                        return ExitCode::from(EXIT_CONFIG);
                    }
                }
            }
            match runtime().block_on(switchyard::ctl::tools(&url, &pairs)) {
                Ok(tools) if json => {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&tools).unwrap_or_default()
                    );
                    ExitCode::SUCCESS
                }
                Ok(tools) => {
                    let width = tools
                        .iter()
                        .filter_map(|t| t["name"].as_str())
                        .map(str::len)
                        .max()
                        .unwrap_or(0);
                    for t in &tools {
                        let name = t["name"].as_str().unwrap_or("?");
                        let desc = t["description"].as_str().unwrap_or("");
                        let first = desc.lines().next().unwrap_or("");
                        println!("{name:width$}  {first}");
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("switchyard tools: {e}");
                    ExitCode::from(EXIT_UNAVAILABLE)
                }
            }
        }
        Command::Demo { args } => {
            let opts = match switchyard_demo::parse_args(args.into_iter()) {
                Ok(o) => o,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            // One thread: the demo answers from memory, and a second worker
            // would only add wake-ups between the two.
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            let _traces = init_logging(&rt, &switchyard::config::TelemetryConfig::default());
            match rt.block_on(switchyard_demo::serve_stdio(opts)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("demo: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// What `serve` and `stdio` need before serving: the validated config, its
/// plugins loaded (a plugin that does not compile or refuses its config is a
/// configuration error, found before any port binds), the runtime, and
/// logging/tracing. Exit 64 naming the file otherwise.
type Prepared = (
    switchyard::config::Config,
    switchyard::plugin::Plugins,
    tokio::runtime::Runtime,
    Option<switchyard::telemetry::TraceGuard>,
);

fn prepare(path: &std::path::Path) -> Result<Prepared, ExitCode> {
    let config = switchyard::config::load(Some(path)).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(EXIT_CONFIG)
    })?;
    let rt = runtime();
    let traces = init_logging(&rt, &config.telemetry);
    let plugins = rt
        .block_on(switchyard::plugin::Plugins::load(&config.plugins))
        .map_err(|e| {
            let e = switchyard::secrets::redact(&e.to_string()).into_owned();
            eprintln!("{}: {e}", path.display());
            ExitCode::from(EXIT_CONFIG)
        })?;
    Ok((config, plugins, rt, traces))
}

/// `import claude-desktop`: the TOML to stdout or `out`, notes to stderr;
/// input that cannot be imported exits 64 naming the file and the server.
fn import_claude_desktop(path: &std::path::Path, out: Option<&std::path::Path>) -> ExitCode {
    use std::io::Write;
    let imported = match switchyard::import::claude_desktop_file(path) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("switchyard import: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    for note in &imported.notes {
        eprintln!("switchyard import: {note}");
    }
    let written = match out {
        Some(o) => std::fs::write(o, &imported.toml).map_err(|e| (o.display().to_string(), e)),
        None => std::io::stdout()
            .write_all(imported.toml.as_bytes())
            .map_err(|e| ("stdout".to_owned(), e)),
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err((to, e)) => {
            eprintln!("switchyard import: cannot write {to}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `sha256:SALT:DIGEST` with a fresh 16-byte salt, DIGEST = SHA-256(salt ‖
/// key): the form `builtin:auth` checks (in constant time). API keys are
/// long random strings, so a fast hash suffices; the salt keeps equal keys
/// from having equal hashes.
fn hash_key(key: &str) -> String {
    use sha2::Digest;
    let salt: [u8; 16] = rand::random();
    let mut h = sha2::Sha256::new();
    h.update(salt);
    h.update(key.as_bytes());
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    format!("sha256:{}:{}", hex(&salt), hex(&h.finalize()))
}

/// The gateway's runtime: multi-threaded, `SWITCHYARD_WORKER_THREADS`
/// workers (default: one per core).
fn runtime() -> tokio::runtime::Runtime {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = std::env::var("SWITCHYARD_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
    {
        b.worker_threads(n);
    }
    b.enable_all().build().expect("tokio runtime")
}

async fn serve(
    config: switchyard::config::Config,
    plugins: switchyard::plugin::Plugins,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.server.listen).await?;
    switchyard::run_with(config, plugins, listener, shutdown_signal()).await
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Logs to stderr (`RUST_LOG` filters, default `info`; `[telemetry]
/// log_format` or `SWITCHYARD_LOG_FORMAT` picks text or JSON lines), and
/// traces to `[telemetry] otlp_endpoint` when set. The guard flushes traces
/// when dropped (before the runtime is).
fn init_logging(
    rt: &tokio::runtime::Runtime,
    telemetry: &switchyard::config::TelemetryConfig,
) -> Option<switchyard::telemetry::TraceGuard> {
    let _inside = rt.enter();
    match switchyard::telemetry::init_logs_and_traces(telemetry) {
        Ok(guard) => Some(guard),
        Err(e) => {
            eprintln!("switchyard: logging/tracing not set up: {e}");
            None
        }
    }
}
