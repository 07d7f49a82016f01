#!/usr/bin/env bash
# Work per chat request that a busy machine does not disturb: user-space instructions counted by
# valgrind's callgrind, and system calls and context switches counted by `perf stat` (software
# events and tracepoints, which work in VMs without hardware counters).
#
#   benches/instructions.sh [--floor BENCH_BIN] BIN [REQUESTS]     (or: make bench-instructions)
#
# Starts `BIN mock-upstream` and `BIN serve` (the bench's chat model with two routes, a key with
# limits, the request log on) on loopback ports, warms up with WARMUP requests (default 2000:
# long enough for the request log's writer to have prepared its batch statements, a cost paid
# once, which a shorter warm-up left inside the counted requests), then sends REQUESTS
# (default 2000) chat requests over 4 keep-alive connections twice: once under callgrind, once
# under `perf stat`. The proxy runs on one core (`taskset -c 0`), as the load bench runs it, so
# llmgate picks its current-thread runtime as the floor proxies do.
#
# With `--floor BENCH_BIN` (the load bench's executable, `cargo build --release --bench load`),
# the same is then counted for the bench's bare axum + reqwest floor proxy
# (`BENCH_BIN --floor-proxy axum-reqwest …`, benches/load/floor.rs; FLOOR_KIND=axum-hyper or
# hyper for the others, contract for the floor doing the least work the contract asks) in front
# of the same mock, and llmgate's counts are divided by the floor's. INSTRUCTIONS_DATABASE
# counts llmgate on another database (e.g. a replica's
# `postgres://…/llmgate_{n}`, with LLMGATE_REDIS_URL and LLMGATE_ENCRYPTION_KEY in the
# environment): `{n}` becomes 1 for the callgrind run and 2 for the perf run, two fresh databases
# the caller made. Compare two commits by building each one's release binary and running this on both,
# alternately. Needs valgrind and perf (Debian packages valgrind, linux-perf), taskset and python3.
#
# STREAM_FRAMES=N counts streams instead (e.g. STREAM_FRAMES=60 WARMUP=200 … BIN 400): each request
# asks for a stream, the mock sends N content frames STREAM_FRAME_DELAY apart (default 2ms, so
# that each frame arrives in a read of its own, as a paced stream's do), and the figures are also
# given per content frame: the relay's cost, which the streams phase of `make bench` measures in CPU
# time on a machine that must be quiet.
set -euo pipefail

usage="usage: benches/instructions.sh [--floor BENCH_BIN] BIN [REQUESTS]"
floor_bin=
if [ "${1:-}" = --floor ]; then
  floor_bin=$(realpath "${2:?$usage}")
  shift 2
fi
floor_kind=${FLOOR_KIND:-axum-reqwest}
bin=$(realpath "${1:?$usage}")
requests=${2:-2000}
warmup=${WARMUP:-2000}
frames=${STREAM_FRAMES:-}
frame_delay=${STREAM_FRAME_DELAY:-2ms}
if [ -n "$frames" ]; then stream=True; else stream=False; fi
for tool in valgrind callgrind_annotate callgrind_control perf python3 curl taskset; do
  command -v "$tool" >/dev/null || { echo "benches/instructions.sh needs $tool" >&2; exit 2; }
done

dir=$(mktemp -d /tmp/llmgate-instructions-XXXXXX)
key="sk-bench-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
mock_port=$(free_port)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

cat >"$dir/llmgate.toml" <<EOF
[[providers]]
name = "mock"
kind = "openai"
base_url = "http://127.0.0.1:$mock_port/v1"
  [[providers.accounts]]
  name = "a1"
  api_key = "sk-upstream-instructions"

[[models]]
name = "bench-model"
  [[models.routes]]
  provider = "mock"
  model = "mock-a"
  [[models.routes]]
  provider = "mock"
  model = "mock-b"

[[keys]]
name = "bench"
key = "$key"
rpm = 4000000000
tpm = 4000000000
EOF

# The client: REQUESTS chat requests (or streams) over 4 keep-alive connections; any non-200 stops
# the run.
echo "STREAM = $stream" >"$dir/client.py"
cat >>"$dir/client.py" <<'EOF'
import http.client, json, sys, threading
port, total, key = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
body = json.dumps({"model": "bench-model", "stream": STREAM, "messages": [
    {"role": "system", "content": "You are a concise assistant."},
    {"role": "user", "content": "Summarise the benchmark in one short sentence, please."}],
    "temperature": 0.2, "max_tokens": 64})
headers = {"Authorization": "Bearer " + key, "Content-Type": "application/json"}
failed = []
def connection(count):
    conn = http.client.HTTPConnection("127.0.0.1", port)
    for _ in range(count):
        conn.request("POST", "/v1/chat/completions", body, headers)
        answer = conn.getresponse()
        answer.read()
        if answer.status != 200:
            failed.append(answer.status)
            return
threads = [threading.Thread(target=connection, args=(total // 4,)) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
sys.exit(f"non-200 answers: {failed}" if failed else 0)
EOF

mock_args=()
if [ -n "$frames" ]; then mock_args=(--chunks "$frames" --chunk-delay "$frame_delay"); fi
"$bin" mock-upstream --listen "127.0.0.1:$mock_port" "${mock_args[@]}" >"$dir/mock.log" 2>&1 &
pids+=($!)

# Starts the proxy under test (under the given wrapper command, if any), pinned to core 0, and
# waits until it answers: llmgate on /healthz, a floor (which forwards every path to the mock)
# with any HTTP answer.
starts=0
start_proxy() {
  local port=$1; shift
  if [ "$proxy" = llmgate ]; then
    starts=$((starts + 1))
    local database=${INSTRUCTIONS_DATABASE:-sqlite://$dir/llmgate-$port.db}
    LLMGATE_LOG=${INSTRUCTIONS_LOG:-warn} taskset -c 0 "$@" "$bin" serve --config "$dir/llmgate.toml" \
      --listen "127.0.0.1:$port" --database "${database//\{n\}/$starts}" \
      >"$dir/$proxy-$port.log" 2>&1 &
  else
    # The floor keeps idle upstream connections as long as llmgate does by default (90 s);
    # the contract floor accepts llmgate's key and keeps its request log beside llmgate's.
    BENCH_FLOOR_KEY=$key taskset -c 0 "$@" "$floor_bin" --floor-proxy "$floor_kind" \
      "127.0.0.1:$port" "127.0.0.1:$mock_port" 90000 "$dir/floor-$port.db" \
      >"$dir/$proxy-$port.log" 2>&1 &
  fi
  gateway=$!
  pids+=("$gateway")
  for _ in $(seq 1 600); do
    if [ "$proxy" = llmgate ]; then
      curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && return 0
    else
      curl -s -o /dev/null "http://127.0.0.1:$port/" && return 0
    fi
    kill -0 "$gateway" 2>/dev/null || { cat "$dir/$proxy-$port.log" >&2; exit 1; }
    sleep 0.2
  done
  echo "$proxy did not answer" >&2
  exit 1
}
# llmgate drains on SIGINT; a floor has no handler, and a background job of a script ignores
# SIGINT, so it gets SIGTERM.
stop_proxy() {
  if [ "$proxy" = llmgate ]; then kill -INT "$gateway"; else kill -TERM "$gateway"; fi
  wait "$gateway" 2>/dev/null || true
}

# Counts one proxy ($proxy: llmgate or floor); sets $instructions, $syscalls, $switches and
# prints them per request.
count() {
  # 1. Instructions, under callgrind: counting starts after the warm-up.
  local port profile label
  port=$(free_port)
  start_proxy "$port" valgrind --tool=callgrind --callgrind-out-file="$dir/$proxy.callgrind.out" \
    --collect-atstart=yes --dump-instr=no
  python3 "$dir/client.py" "$port" "$warmup" "$key"
  callgrind_control --zero "$gateway" >/dev/null
  python3 "$dir/client.py" "$port" "$requests" "$key"
  callgrind_control --dump "$gateway" >/dev/null
  stop_proxy
  profile=$(ls -S "$dir/$proxy".callgrind.out* | head -n 1)
  instructions=$(callgrind_annotate "$profile" 2>/dev/null \
    | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }')

  # 2. System calls and context switches, under perf stat, after the same warm-up.
  port=$(free_port)
  start_proxy "$port"
  python3 "$dir/client.py" "$port" "$warmup" "$key"
  local calls=(writev recvfrom epoll_wait futex write pwrite64)
  local events
  events=raw_syscalls:sys_enter,context-switches$(printf ',syscalls:sys_enter_%s' "${calls[@]}")
  perf stat -x, -e "$events" -p "$gateway" -o "$dir/$proxy.perf.stat" &
  local perf_pid=$!
  sleep 0.5
  python3 "$dir/client.py" "$port" "$requests" "$key"
  kill -INT "$perf_pid"
  wait "$perf_pid" || true
  stop_proxy
  syscalls=$(awk -F, '/sys_enter/ { print $1 }' "$dir/$proxy.perf.stat")
  switches=$(awk -F, '/context-switches/ { print $1 }' "$dir/$proxy.perf.stat")

  if [ "$proxy" = llmgate ]; then label=$bin; else label="floor $floor_kind ($floor_bin)"; fi
  awk -v n="$requests" -v i="$instructions" -v s="$syscalls" -v c="$switches" -v b="$label" 'BEGIN {
    printf "%s: %d requests: %.0f instructions, %.2f system calls, %.2f context switches per request\n",
      b, n, i / n, s / n, c / n }'
  if [ -n "$frames" ]; then
    awk -v n="$requests" -v f="$frames" -v i="$instructions" -v s="$syscalls" -v c="$switches" 'BEGIN {
      printf "  per content frame (%d a stream): %.0f instructions, %.2f system calls, %.2f context switches\n",
        f, i / n / f, s / n / f, c / n / f }'
  fi
  awk -F, -v n="$requests" '/syscalls:sys_enter_/ {
    sub("syscalls:sys_enter_", "", $3); printf "  %-12s %.2f per request\n", $3, $1 / n }' \
    "$dir/$proxy.perf.stat"
  # The part that serves the connections (axum::serve's connection tasks: the request path)
  # does the same work every run; the rest (the request log's writer, its SQLite thread, the
  # runtime's timers) depends on how the requests fall into the writer's batches, which moves
  # with the machine's speed: several thousand instructions per request from one run to the
  # next. A change to the request path is judged on the first figure.
  serving=$(python3 "$(dirname "$0")/callgrind-by-function.py" "$profile" "$requests" \
    '^axum::serve::handle_connection::\{\{closure\}\}::\{\{closure\}\}$' 2>/dev/null \
    | awk 'NR == 2 { print $1 }')
  if [ -n "$serving" ]; then
    awk -v n="$requests" -v i="$instructions" -v s="$serving" 'BEGIN {
      printf "  of which serving the connections: %d per request; the writer, threads and timers: %.0f\n",
        s, i / n - s }'
  fi
  echo "  callgrind profile kept in $profile (callgrind_annotate --inclusive=yes it)"
}

proxy=llmgate
count
if [ -n "$floor_bin" ]; then
  gate_instructions=$instructions gate_syscalls=$syscalls gate_serving=${serving:-}
  proxy=floor
  count
  awk -v gi="$gate_instructions" -v fi="$instructions" -v gs="$gate_syscalls" -v fs="$syscalls" 'BEGIN {
    printf "llmgate / floor: %.3fx instructions, %.3fx system calls per request\n", gi / fi, gs / fs }'
  if [ -n "$gate_serving" ] && [ -n "$serving" ]; then
    awk -v g="$gate_serving" -v f="$serving" 'BEGIN {
      printf "llmgate / floor serving the connections: %.3fx instructions\n", g / f }'
  fi
fi
