#!/usr/bin/env bash
# Installs what `make bench` needs beyond Rust, once: nginx (from Debian's packages), the plain
# reverse proxy the gateway is compared with. The load generator is our own (benches/load.rs).
set -euo pipefail

command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  echo "the benchmark needs nginx (Debian package nginx-light or nginx): install it, or run as root" >&2
  exit 1
fi
echo "installing the benchmark's reference proxy: nginx" >&2
"${sudo[@]}" apt-get update -qq
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get install -y -qq --no-install-recommends nginx-light >/dev/null 2>&1 \
  || "${sudo[@]}" apt-get install -y -qq --no-install-recommends nginx >/dev/null
# The package's own service is not wanted here; the benchmark runs its own instance.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet nginx 2>/dev/null; then
  "${sudo[@]}" systemctl stop nginx || true
fi
