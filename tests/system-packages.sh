#!/usr/bin/env bash
# system-packages.sh: the Debian packages the tests drive (idempotent).
#
#   bash tests/system-packages.sh
#
# chromium + chromium-driver: the console's browser tests (tests/e2e/console.rs)
# drive a real Chromium through ChromeDriver (WebDriver).
# pebble: the ACME tests (tests/e2e/acme.rs) get certificates from Let's
# Encrypt's test CA and its challenge test server (pebble, pebble-challtestsrv).
# Installed only when a binary is missing, so a second run costs nothing.
set -euo pipefail

want=()
command -v chromium >/dev/null || want+=(chromium)
command -v chromedriver >/dev/null || want+=(chromium-driver)
command -v pebble >/dev/null && command -v pebble-challtestsrv >/dev/null || want+=(pebble)
if ((${#want[@]} == 0)); then
  echo "system-packages.sh: up to date" >&2
  exit 0
fi
sudo=()
[[ $(id -u) == 0 ]] || sudo=(sudo)
echo "system-packages.sh: installing ${want[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq >&2
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${want[@]}" >&2
command -v chromium >/dev/null && command -v chromedriver >/dev/null &&
  command -v pebble >/dev/null && command -v pebble-challtestsrv >/dev/null
