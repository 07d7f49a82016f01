#!/usr/bin/env bash
# The web console in a real headless browser: Debian's Chromium (installed by tests/setup.sh)
# driven by Playwright from PyPI, in a virtualenv under target/ (created once; Playwright's own
# browser download is never used). Run by `make test` after the SDK suite. Screenshots go to
# target/ui-screenshots/ (docs/screenshots/ with `make screenshots`).
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=target/ui-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import playwright' 2>/dev/null; then
  echo "creating $venv with Playwright (once)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/ui/requirements.txt
fi
if [ ! -x /usr/bin/chromium ]; then
  echo "the browser test needs /usr/bin/chromium: run bash tests/setup.sh" >&2
  exit 1
fi
cargo build --quiet --locked --bin llmgate
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 LLMGATE_BIN=target/debug/llmgate "$venv/bin/python" tests/ui/test_ui.py
