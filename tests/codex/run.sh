#!/usr/bin/env bash
# The Codex CLI end to end: the real `codex exec` (npm @openai/codex, installed under target/ by
# tests/setup.sh) against llmgate (the debug binary) and `llmgate mock-upstream`, with every
# outside call blocked. Codex speaks only the Responses API; llmgate serves it
#   - translated to chat for an openai provider,
#   - translated to Messages for an anthropic provider,
#   - forwarded as is to an openai provider declared with `responses = true`,
# and each once more with a tool round trip: the prompt carries mock knobs (`mock: {"call": …}`)
# that make the mock ask for Codex's own `exec_command` tool; Codex runs the command and sends
# its output back, and the mock's next answer echoes it. The script checks the answers Codex
# prints and what llmgate recorded (request log, usage). Run by `make test`.
set -euo pipefail
cd "$(dirname "$0")/../.."

codex="$PWD/target/codex/node_modules/.bin/codex"
if [ ! -x "$codex" ]; then
  echo "the Codex test needs the Codex CLI under target/codex: run bash tests/setup.sh" >&2
  exit 1
fi
cargo build --quiet --locked --bin llmgate
llmgate="$PWD/target/debug/llmgate"

# Not under /tmp: Codex refuses to set up its helper commands below a temporary directory.
mkdir -p target
work="$(mktemp -d "$PWD/target/codex-run.XXXXXX")"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "${KEEP_CODEX_RUN:-0}" = 1 ] || [ "${failed:-0}" = 1 ]; then
    echo "codex test files kept in $work" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
failed=0
fail() { failed=1; echo "FAIL: $*" >&2; exit 1; }
step() { echo "== $*" >&2; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
wait_for() { # url, what
  for _ in $(seq 1 100); do
    curl --silent --fail --noproxy '*' --output /dev/null "$1" && return 0
    sleep 0.1
  done
  fail "$2 did not come up ($1)"
}

mock_port="$(free_port)"
gate_port="$(free_port)"
proxy_port="$(free_port)"
client_key="sk-lg-codex-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
admin_password="codex-e2e-$(python3 -c 'import secrets; print(secrets.token_hex(8))')"

# Every outside call goes to this proxy, which refuses it and writes down where it was going.
cat > "$work/proxy.py" <<'EOF'
import http.server, sys
class Refuse(http.server.BaseHTTPRequestHandler):
    def refuse(self):
        with open(sys.argv[2], "a") as log:
            log.write(f"{self.command} {self.path}\n")
        self.send_response(403)
        self.send_header("content-length", "0")
        self.end_headers()
    do_CONNECT = do_GET = do_POST = do_PUT = do_HEAD = refuse
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Refuse).serve_forever()
EOF
: > "$work/outside-calls.log"
python3 "$work/proxy.py" "$proxy_port" "$work/outside-calls.log" &
pids+=($!)

step "mock upstream on 127.0.0.1:$mock_port, llmgate on 127.0.0.1:$gate_port"
"$llmgate" mock-upstream --listen "127.0.0.1:$mock_port" > "$work/mock.log" 2>&1 &
pids+=($!)
cat > "$work/llmgate.toml" <<EOF
[[providers]]
name = "chat-upstream"
kind = "openai"
base_url = "http://127.0.0.1:$mock_port/v1"
  [[providers.accounts]]
  name = "a1"
  api_key = "sk-upstream-chat-0001"

[[providers]]
name = "claude-upstream"
kind = "anthropic"
base_url = "http://127.0.0.1:$mock_port/v1"
  [[providers.accounts]]
  name = "a1"
  api_key = "sk-ant-upstream-0002"

[[providers]]
name = "responses-upstream"
kind = "openai"
base_url = "http://127.0.0.1:$mock_port/v1"
responses = true
  [[providers.accounts]]
  name = "a1"
  api_key = "sk-upstream-responses-0003"

[[models]]
name = "coder-chat"
  [[models.routes]]
  provider = "chat-upstream"
  model = "mock-chat"

[[models]]
name = "coder-claude"
  [[models.routes]]
  provider = "claude-upstream"
  model = "mock-claude"

[[models]]
name = "coder-forwarded"
  [[models.routes]]
  provider = "responses-upstream"
  model = "mock-responses"

[[keys]]
name = "codex"
key = "$client_key"
EOF
LLMGATE_ADMIN_PASSWORD="$admin_password" LLMGATE_USAGE_FLUSH_INTERVAL=100ms \
  "$llmgate" serve --config "$work/llmgate.toml" --listen "127.0.0.1:$gate_port" \
  --database "sqlite://$work/llmgate.db" > "$work/llmgate.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$mock_port/v1/models" "the mock upstream"
wait_for "http://127.0.0.1:$gate_port/readyz" "llmgate"

# Codex's home: one custom provider, llmgate, and nothing that calls out.
mkdir -p "$work/home" "$work/project"
cat > "$work/home/config.toml" <<EOF
model = "coder-chat"
model_provider = "llmgate"
check_for_update_on_startup = false

[analytics]
enabled = false

[feedback]
enabled = false

# Without these, every start syncs OpenAI's curated plugins (github.com, api.github.com) and
# apps (chatgpt.com).
[features]
plugins = false
remote_plugin = false
apps = false
in_app_updates = false
api_key_model_discovery = false

[model_providers.llmgate]
name = "llmgate"
base_url = "http://127.0.0.1:$gate_port/v1"
wire_api = "responses"
env_key = "LLMGATE_KEY"
request_max_retries = 0
stream_max_retries = 0
EOF

# One `codex exec`; its JSONL events in $work/<name>.jsonl, its last message in
# $work/<name>.txt.
run_codex() { # name, model, prompt
  local name="$1" model="$2" prompt="$3"
  step "codex exec -m $model: $name"
  if ! (cd "$work/project" && env -u OPENAI_API_KEY -u OPENAI_BASE_URL \
      CODEX_HOME="$work/home" LLMGATE_KEY="$client_key" \
      HTTPS_PROXY="http://127.0.0.1:$proxy_port" HTTP_PROXY="http://127.0.0.1:$proxy_port" \
      ALL_PROXY="http://127.0.0.1:$proxy_port" NO_PROXY="127.0.0.1,localhost" \
      https_proxy="http://127.0.0.1:$proxy_port" http_proxy="http://127.0.0.1:$proxy_port" \
      no_proxy="127.0.0.1,localhost" \
      timeout 120 "$codex" exec --skip-git-repo-check --ephemeral --color never --json \
        --sandbox read-only -m "$model" -o "$work/$name.txt" "$prompt" \
        < /dev/null > "$work/$name.jsonl" 2> "$work/$name.err"); then
    tail -n 20 "$work/$name.err" >&2
    fail "codex exec ($name) failed"
  fi
  echo "   codex said: $(head -c 300 "$work/$name.txt" | tr '\n' ' ')" >&2
}
expect_in() { # file, text
  grep -qF -- "$2" "$1" || { tail -n 20 "$1" >&2; fail "'$2' not in $1"; }
}

tool_prompt='mock: {"call": {"name": "exec_command", "arguments": {"cmd": "echo llmgate-tool-$((6 * 7))"}}}'
for target in chat claude forwarded; do
  run_codex "answer-$target" "coder-$target" "Say hello to llmgate ($target)"
  expect_in "$work/answer-$target.txt" "echo: "
  expect_in "$work/answer-$target.txt" "Say hello to llmgate ($target)"

  run_codex "tool-$target" "coder-$target" "$tool_prompt"
  # Codex ran the command the mock asked for…
  expect_in "$work/tool-$target.jsonl" '"type":"command_execution"'
  expect_in "$work/tool-$target.jsonl" 'llmgate-tool-42'
  # …and the mock's next answer, its echo of the command's output, is Codex's last message.
  expect_in "$work/tool-$target.txt" "echo: "
  expect_in "$work/tool-$target.txt" "llmgate-tool-42"
done

step "what llmgate recorded"
sleep 0.3
token="$(curl --silent --fail --noproxy '*' -H 'content-type: application/json' \
  -d "{\"password\": \"$admin_password\"}" "http://127.0.0.1:$gate_port/admin/login" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')"
curl --silent --fail --noproxy '*' -H "authorization: Bearer $token" \
  "http://127.0.0.1:$gate_port/admin/logs?limit=100" > "$work/logs.json"
curl --silent --fail --noproxy '*' -H "authorization: Bearer $token" \
  "http://127.0.0.1:$gate_port/admin/usage?group_by=model" > "$work/usage.json"
python3 - "$work/logs.json" "$work/usage.json" <<'EOF' || fail "llmgate's records"
import json, sys
logs = json.load(open(sys.argv[1]))["data"]
usage = {row["model"]: row for row in json.load(open(sys.argv[2]))["data"]}
expected = {"coder-chat": "chat-upstream", "coder-claude": "claude-upstream",
            "coder-forwarded": "responses-upstream"}
for model, provider in expected.items():
    rows = [row for row in logs if row["model"] == model]
    # One request for the answer, two for the tool round trip (the call, then its output).
    assert len(rows) >= 3, (model, len(rows))
    for row in rows:
        assert row["endpoint"] == "responses" and row["status"] == 200, row
        assert row["provider"] == provider and row["key"] == "codex", row
        assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0, row
        assert row["stream"] is True, row
    # The mock reports usage on every answer: nothing was estimated.
    assert not any(row["estimated"] for row in rows), model
    total = usage[model]
    assert total["requests"] == len(rows) and total["errors"] == 0, total
    print(f"   {model}: {len(rows)} requests through {provider}, "
          f"{total['prompt_tokens']} prompt + {total['completion_tokens']} completion tokens",
          file=sys.stderr)
EOF

if [ -s "$work/outside-calls.log" ]; then
  echo "   outside calls Codex tried (all refused by the test's proxy):" >&2
  sort "$work/outside-calls.log" | uniq -c | sed 's/^/     /' >&2
  fail "Codex tried to reach outside: its config above should turn that off"
fi
echo "   no outside call was attempted" >&2
step "codex $("$codex" --version 2>/dev/null | awk '{print $NF}'): every run passed"
