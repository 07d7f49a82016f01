#!/usr/bin/env bash
# Installs what the test suite needs beyond Rust, once: promtool (from Debian's prometheus
# package) to validate the /metrics exposition. Run by `make test`.
set -euo pipefail

missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  echo "the tests need these Debian packages: ${missing[*]} (install them, or run as root)" >&2
  exit 1
fi
echo "installing test tools: ${missing[*]}" >&2
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
