//! The `switchyard` command: thin; parses the CLI, loads the configuration,
//! and calls [`switchyard::run`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

mod scaffold;

/// Exit status for a configuration that does not validate (EX_USAGE).
const EXIT_CONFIG: u8 = 64;

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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { config } => match switchyard::config::load(Some(&config)) {
            Ok(c) => {
                // Plugins are part of the configuration: each must compile,
                // fit the world and accept its config.
                if let Err(e) = runtime().block_on(switchyard::plugin::Plugins::load(&c.plugins)) {
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
        Command::Serve { config } => {
            init_logging();
            let path = config
                .or_else(|| std::env::var_os("SWITCHYARD_CONFIG").map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
            let config = match switchyard::config::load(Some(&path)) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            let rt = runtime();
            // Plugins load before the port binds: a plugin that does not
            // compile or refuses its config is a configuration error.
            let plugins = match rt.block_on(switchyard::plugin::Plugins::load(&config.plugins)) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("{}: {e}", path.display());
                    return ExitCode::from(EXIT_CONFIG);
                }
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
        Command::Demo { args } => {
            init_logging();
            let opts = match switchyard_demo::parse_args(args.into_iter()) {
                Ok(o) => o,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
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

/// Logs to stderr; `RUST_LOG` filters (default `info`), and
/// `SWITCHYARD_LOG_FORMAT=json` switches to JSON lines.
fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a terminal: piped logs stay plain text for tools.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if std::env::var("SWITCHYARD_LOG_FORMAT").is_ok_and(|v| v == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}
