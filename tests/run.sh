#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need
# (Debian's Chromium and ChromeDriver for the console's browser tests,
# Pebble for the ACME tests; the pinned npm/PyPI peers: SDK clients, the
# conformance suite, peer gateways, axe-core), checks formatting and lints,
# then runs every test.
#
#   bash tests/run.sh
#
# Set CARGO_TARGET_DIR to share a build cache between clones.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== system packages (Debian: chromium, chromium-driver, pebble; idempotent)"
bash tests/system-packages.sh

echo "== peers (npm, PyPI; idempotent)"
bash tests/peers/setup.sh > /dev/null

echo "== wasm32-wasip2 target (plugins build to it; idempotent)"
rustup target add wasm32-wasip2

echo "== fmt"
cargo fmt --all -- --check
cargo fmt --manifest-path examples/stamp-plugin/Cargo.toml -- --check

echo "== clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
# The plugin side as it really builds: the SDK and every plugin crate for
# wasm (all members but the host and the demo server), and the standalone
# example (its own workspace).
wasm_target="${CARGO_TARGET_DIR:-target}/wasm"
cargo clippy --target wasm32-wasip2 --locked --target-dir "$wasm_target" \
  --workspace --exclude switchyard --exclude switchyard-demo-server -- -D warnings
cargo clippy --manifest-path examples/stamp-plugin/Cargo.toml --all-targets --locked \
  --target-dir "${CARGO_TARGET_DIR:-target}/wasm-standalone" -- -D warnings

echo "== tests"
cargo test --workspace --locked
cargo test --manifest-path examples/stamp-plugin/Cargo.toml --locked \
  --target-dir "${CARGO_TARGET_DIR:-target}/wasm-standalone"
