#!/usr/bin/env bash
# The medians of several `make bench` runs: one line per run, then the median of each column.
# CPU time per request (from /proc/PID/stat) is the figure least disturbed by other work on the
# machine; every llmgate figure is next to nginx's from the same run.
#
#   bash benches/summary.sh target/bench/bench-*.json
#   make bench-summary            # the same over every bench JSON under target/bench
set -euo pipefail

if [ "$#" -eq 0 ]; then
    echo "usage: $0 BENCH_JSON..." >&2
    exit 2
fi
command -v jq >/dev/null || { echo "$0 needs jq (apt-get install jq)" >&2; exit 2; }

jq -rs '
  def phase($r; $via; $stream; $c):
    ($r.phases[] | select(.via == $via and .stream == $stream and .concurrency == $c));
  def r1: if . < 10 then (. * 100 | round / 100) else (. * 10 | round / 10) end;
  def median: sort | if length == 0 then null
    elif length % 2 == 1 then .[length / 2 | floor]
    else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  def cols: [
    "run", "commit",
    "cpu1_llm", "cpu1_ngx", "cpu64_llm", "cpu64_ngx", "cpu64_ratio", "rps64_ratio",
    "cpu256_llm", "cpu256_ngx", "p50_1_llm", "p50_1_ngx", "p99_1_llm", "p99_1_ngx",
    "scpu256_llm", "scpu256_ngx", "ttfb1_added", "rss_idle", "rss_peak", "rss_after",
    "cpu64_floor", "llm_floor_ratio", "llm_256_64", "rss_c256"
  ];
  [ .[] | . as $r | {
      run: $r.date, commit: $r.machine.commit,
      cpu1_llm: phase($r; "llmgate"; false; 1).server_cpu_us_per_request,
      cpu1_ngx: phase($r; "nginx"; false; 1).server_cpu_us_per_request,
      cpu64_llm: phase($r; "llmgate"; false; 64).server_cpu_us_per_request,
      cpu64_ngx: phase($r; "nginx"; false; 64).server_cpu_us_per_request,
      cpu256_llm: phase($r; "llmgate"; false; 256).server_cpu_us_per_request,
      cpu256_ngx: phase($r; "nginx"; false; 256).server_cpu_us_per_request,
      rps64_llm: phase($r; "llmgate"; false; 64).rps,
      rps64_ngx: phase($r; "nginx"; false; 64).rps,
      p50_1_llm: phase($r; "llmgate"; false; 1).p50_us,
      p50_1_ngx: phase($r; "nginx"; false; 1).p50_us,
      p99_1_llm: phase($r; "llmgate"; false; 1).p99_us,
      p99_1_ngx: phase($r; "nginx"; false; 1).p99_us,
      scpu256_llm: phase($r; "llmgate"; true; 256).server_cpu_us_per_request,
      scpu256_ngx: phase($r; "nginx"; true; 256).server_cpu_us_per_request,
      ttfb1_added: (phase($r; "llmgate"; true; 1).ttfb_p50_us - phase($r; "direct"; true; 1).ttfb_p50_us),
      rss_idle: $r.memory.idle_mib, rss_peak: $r.memory.peak_mib, rss_after: $r.memory.after_mib,
      # The axum + reqwest floor proxy (runs before 9da841b have none).
      cpu64_floor: (phase($r; "floor-axum-reqwest"; false; 64).server_cpu_us_per_request // null),
      rss_c256: $r.memory.peak_c256_mib
    } | . + { cpu64_ratio: (.cpu64_llm / .cpu64_ngx), rps64_ratio: (.rps64_llm / .rps64_ngx) }
      | . + { llm_floor_ratio: (if .cpu64_floor then .cpu64_llm / .cpu64_floor else null end) }
      # The growth line of the budget: CPU per request at c=256 over c=64.
      | . + { llm_256_64: (.cpu256_llm / .cpu64_llm) }
  ] as $runs
  | (cols | @tsv),
    ($runs[] | [ .[cols[]] ] | map(if type == "number" then r1 elif . == null then "-" else . end) | @tsv),
    ([ "median", "-" ] + [ cols[2:][] as $c | [ $runs[][$c] | numbers ] | median
                           | if . == null then "-" else r1 end ] | @tsv)
' "$@" | column -t -s $'\t'
