#!/bin/bash
# Samples the soak's llmgate gateway: status RSS split, DB file sizes, metrics flush counters.
out=${1:-/tmp/soakmon/samples.txt}
pid=""
while [ -z "$pid" ]; do
  for p in $(pgrep -x llmgate); do
    if tr '\0' ' ' < /proc/$p/cmdline 2>/dev/null | grep -q "serve.*llmgate-soak-streams-"; then pid=$p; fi
  done
  sleep 1
done
cmd=$(tr '\0' ' ' < /proc/$pid/cmdline); echo "pid $pid: $cmd" >> $out
db=$(echo "$cmd" | sed -n 's/.*sqlite:\/\/\([^ ]*\).*/\1/p')
listen=$(echo "$cmd" | sed -n 's/.*--listen \([^ ]*\).*/\1/p')
start=$(date +%s); n=0
while kill -0 $pid 2>/dev/null; do
  t=$(( $(date +%s) - start ))
  st=$(grep -E "VmRSS|RssAnon|RssFile|RssShmem|Threads" /proc/$pid/status | awk '{printf "%s%s ", $1, $2}')
  sizes=$(ls -l $db $db-wal $db-shm 2>/dev/null | awk '{printf "%s=%d ", substr($9,length($9)-5), $5}')
  m=$(curl -s -m 2 http://$listen/metrics | grep -E "^llmgate_usage_flush_rows_(sum|count)|^llmgate_usage_flush_duration_seconds_sum" | awk '{printf "%s=%s ", $1, $2}')
  echo "$t s $st $sizes $m" >> $out
  if [ $((n % 8)) -eq 0 ]; then cp /proc/$pid/smaps /tmp/soakmon/smaps-$t.txt 2>/dev/null; fi
  n=$((n+1)); sleep 15
done
echo end >> $out
