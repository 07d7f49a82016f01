#!/usr/bin/env bash
# Installs what the test suite needs beyond Rust, once: promtool (from Debian's prometheus
# package) to validate the /metrics exposition, Chromium with its driver (Debian's chromium
# and chromium-driver) for the web console's browser test, PostgreSQL's server (Debian's
# postgresql: the storage tests start a throwaway cluster from its initdb and pg_ctl, see
# tests/support/postgres.rs), redis-server (Debian's package; the replica tests start their
# own on a free loopback port), and OpenAI's Codex CLI (npm
# @openai/codex, at a pinned version, under target/codex) for tests/codex/run.sh. Run by
# `make test`; a second run installs nothing. Only package registries are reached.
set -euo pipefail
cd "$(dirname "$0")/.."

# The Codex CLI, pinned: its requests are what the end-to-end test drives llmgate with.
codex_version=0.171.0
codex_dir=target/codex
codex="$codex_dir/node_modules/.bin/codex"
if [ -x "$codex" ] && [ "$("$codex" --version 2>/dev/null)" = "codex-cli $codex_version" ]; then
  echo "test tool present: codex-cli $codex_version ($codex)" >&2
elif ! command -v npm >/dev/null 2>&1; then
  echo "the Codex test needs npm (Node.js 16 or later) to install @openai/codex@$codex_version" >&2
  exit 1
else
  echo "installing @openai/codex@$codex_version into $codex_dir (npm; about 150 MB, a minute or so)" >&2
  mkdir -p "$codex_dir"
  npm install --prefix "$codex_dir" --no-save --no-audit --no-fund --no-update-notifier \
    "@openai/codex@$codex_version" >&2
  echo "installed: $("$codex" --version)" >&2
fi

missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
# Debian keeps initdb and pg_ctl in /usr/lib/postgresql/<version>/bin, off the PATH.
postgres_bin() {
  local bin
  for bin in "$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/x)")" \
    $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$bin/initdb" ] && [ -x "$bin/pg_ctl" ]; then echo "$bin"; return 0; fi
  done
  return 1
}
postgres_bin >/dev/null || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ ${#missing[@]} -eq 0 ]; then
  echo "test tools present: promtool, chromium, chromedriver, PostgreSQL ($(postgres_bin)), redis-server" >&2
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
if ! bin=$(postgres_bin); then
  echo "PostgreSQL's initdb and pg_ctl are still missing after installing postgresql" >&2
  exit 1
fi
echo "PostgreSQL for the storage tests: $("$bin/pg_ctl" --version) ($bin)" >&2
