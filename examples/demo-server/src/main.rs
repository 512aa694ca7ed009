//! `switchyard-demo-server`: the demo MCP server on stdin/stdout.
//!
//! Logs go to stderr (filter with `RUST_LOG`, default `info`); stdout carries
//! only protocol messages. Exit status: 0 at end of input, 64 for bad flags,
//! 1 on an I/O failure, 3 when the `crash` tool is called.

use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();

    let opts = match switchyard_demo::parse_args(std::env::args().skip(1)) {
        Ok(opts) => opts,
        Err(message) if message == switchyard_demo::USAGE => {
            eprintln!("{message}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("switchyard-demo-server: {message}");
            return ExitCode::from(64);
        }
    };
    match switchyard_demo::serve_stdio(opts).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("switchyard-demo-server: {error:#}");
            ExitCode::FAILURE
        }
    }
}
