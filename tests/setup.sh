#!/usr/bin/env bash
# Installs what the test suite needs beyond Rust, once: promtool (from Debian's prometheus
# package) to validate the /metrics exposition, and Chromium with its driver (Debian's chromium
# and chromium-driver) for the web console's browser test. Run by `make test`; a second run
# installs nothing.
set -euo pipefail

missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
if [ ${#missing[@]} -eq 0 ]; then
  echo "test tools present: promtool, chromium, chromedriver" >&2
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  echo "the tests need these Debian packages: ${missing[*]} (install them, or run as root)" >&2
  exit 1
fi
echo "installing test tools: ${missing[*]} (apt-get update, then install; this takes a minute or two)" >&2
"${sudo[@]}" apt-get update
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
echo "installed: ${missing[*]}" >&2
