//! End-to-end tests: a real gateway (`switchyard::run` on `127.0.0.1:0`), real
//! child processes (the `switchyard demo` server and npm/PyPI peers), and
//! clients we did not write (rmcp here; the TypeScript and Python SDKs and the
//! conformance suite through `tests/peers`).
//!
//! Modules:
//! - `harness`: start a gateway from TOML; raw legacy/modern HTTP clients.
//! - `cli`: the binary on the default config, SIGTERM; `import claude-desktop`.
//! - `config_files`: every TOML under `config/` and `examples/` validates;
//!   invalid configs fail with the file, key and value named.
//! - `protocol`: each bad-input class, header validation, sessions,
//!   Origin/Host protection, both eras on one path, HTTP+SSE.
//! - `upstreams`: id rewriting across clients, progress on the right stream,
//!   cancellation, a dead child, shutdown leaving no process, remote upstreams.
//! - `aggregation`: name collisions, routing back, merged pagination.
//! - `notifications`: list_changed to listeners of both eras, sampling relay,
//!   `Last-Event-ID` resumption.
//! - `plugins`: the plugin platform with components built from
//!   `tests/plugins/`: order rule, decisions, context, kv atomicity, method
//!   filtering, hostile plugins and failure modes.
//! - `policies`: the first-party plugins (`builtin:NAME`) end to end.
//! - `operations`: live reconfiguration by diff, the admin API and its
//!   OpenAPI document, `/metrics`, `switchyard health` / `tools`.
//! - `console`: the web console at `/ui/` in a real Chromium (ChromeDriver):
//!   sign-in, roles, CSRF, the live overview through a crash, forms, the
//!   explorer through a chain, config edits, axe-core scans, screenshots.
//! - `edge`: HTTPS from files (the Python SDK over it, a live certificate
//!   switch, HTTP/2, client certificates), MCP over WebSocket (the Python
//!   SDK's transport; Origin, token, size and binary refusals).
//! - `acme`: certificates from Pebble (Let's Encrypt's test CA) by
//!   TLS-ALPN-01 and HTTP-01, served to a client trusting only its root;
//!   restart from the cache, renewal, a refused order.
//! - `secrets`: `switchyard secret`, `${secret:NAME}` into an upstream's
//!   env, no plaintext in logs, admin output, state file or store.
//! - `rmcp_client`: the official Rust SDK as a client.
//! - `supervision`: restart policies, crash loops, health checks, orphans
//!   after restarts, lazy start and idle stop.
//! - `peers`: the TypeScript and Python SDK clients (four cells: each era of
//!   client × each era of upstream; tools, resources, prompts, progress,
//!   sampling, elicitation, list_changed), `switchyard stdio` under the TS
//!   stdio client, and the conformance suite (0.1.16 and 2026-07-28)
//!   (needs `tests/peers/setup.sh`; the test command runs it).

mod harness;

mod acme;
mod aggregation;
mod cli;
mod config_files;
mod console;
mod edge;
mod notifications;
mod operations;
mod peers;
mod plugins;
mod policies;
mod protocol;
mod rmcp_client;
mod secrets;
mod supervision;
mod upstreams;
