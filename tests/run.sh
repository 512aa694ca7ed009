#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need
# (the pinned npm/PyPI peers: SDK clients, the conformance suite, peer
# gateways), checks formatting and lints, then runs every test.
#
#   bash tests/run.sh
#
# Set CARGO_TARGET_DIR to share a build cache between clones.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== peers (npm, PyPI; idempotent)"
bash tests/peers/setup.sh > /dev/null

echo "== fmt"
cargo fmt --all -- --check

echo "== clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== tests"
cargo test --workspace --locked
