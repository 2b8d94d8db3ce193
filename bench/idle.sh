#!/usr/bin/env bash
# What an idle connection costs the event model: the server's resident memory (VmRSS)
# before and while N clients are connected and silent, per connection.
#
#   bench/idle.sh [CONNECTIONS] [MODEL]      default: 10000 event
set -euo pipefail
cd "$(dirname "$0")/.."
conns=${1:-10000}
model=${2:-event}
cargo build --release --quiet
netecho=target/release/netecho
ulimit -n "$(ulimit -Hn)"

out=$(mktemp)
"$netecho" serve -q --model "$model" --addr 127.0.0.1:0 --max-conns "$conns" >"$out" &
pid=$!
trap 'kill $pid 2>/dev/null; rm -f "$out"' EXIT
for _ in $(seq 100); do [ -s "$out" ] && break; sleep 0.05; done
addr=$(awk 'NR==1 {print $3}' "$out")
rss() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }

before=$(rss)
"$netecho" bench --clients "$conns" --idle --duration 8s "$addr" >/dev/null &
bench=$!
# Wait until the server holds them all (it logs nothing with -q; count its sockets).
for _ in $(seq 200); do
  held=$(ls "/proc/$pid/fd" | wc -l)
  [ "$held" -ge "$conns" ] && break
  sleep 0.05
done
sleep 1
during=$(rss)
held=$(( $(ls "/proc/$pid/fd" | wc -l) ))
wait "$bench" || true

echo "# idle connections held by the $model model, $(nproc) cores, $(uname -sr), $(date -u +%Y-%m-%d)"
printf '%-12s %14s %14s %18s\n' connections rss_before_KiB rss_held_KiB KiB_per_connection
awk -v c="$conns" -v b="$before" -v d="$during" \
  'BEGIN { printf "%-12s %14s %14s %18.2f\n", c, b, d, (d - b) / c }'
echo "# server file descriptors while held: $held"
