#!/usr/bin/env bash
# The SDK suite: the official openai and anthropic Python packages against llmgate, in a
# virtualenv under target/ (created once). Run by `make test` after `cargo test` built the binary.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=target/sdk-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/sdk/requirements.txt
fi
cargo build --quiet --locked --bin llmgate
LLMGATE_BIN=target/debug/llmgate "$venv/bin/python" tests/sdk/test_sdk.py
