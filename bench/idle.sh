#!/usr/bin/env bash
# What an idle connection costs the event model: the server's resident memory (VmRSS) before
# and while N clients are connected and silent, per connection; and the kernel's side, which
# VmRSS never shows: the socket buffer pages of /proc/net/sockstat ("TCP ... mem") and the
# socket structures themselves (the TCP, sock_inode_cache, dentry and filp slabs of
# /proc/slabinfo, readable as root). The kernel figures are the whole machine's, so they count
# both ends of each connection (the clients run here too) and anything else that ran meanwhile.
# Stops the server and the clients it started, also on Ctrl-C; says when a run failed.
#
#   bench/idle.sh [CONNECTIONS] [MODEL]      default: 10000 event
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
conns=${1:-10000}
model=${2:-event}
cargo build --release --quiet
netecho=target/release/netecho
ulimit -n "$(ulimit -Hn)"

start_server "$netecho" serve -q --model "$model" --addr 127.0.0.1:0 --max-conns "$conns"
rss() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }
# Socket buffer memory of all TCP sockets, KiB (sockstat counts pages).
sock_kib() { awk -v page="$(getconf PAGESIZE)" '$1 == "TCP:" { for (i = 2; i < NF; i++) if ($i == "mem") print $(i + 1) * page / 1024 }' /proc/net/sockstat; }
# Memory of the slabs a socket lives in, KiB; `-` when /proc/slabinfo cannot be read.
slab_kib() {
  if [ -r /proc/slabinfo ]; then
    awk '$1 == "TCP" || $1 == "sock_inode_cache" || $1 == "dentry" || $1 == "filp" { kib += $3 * $4 / 1024 }
      END { printf "%d\n", kib }' /proc/slabinfo
  else
    echo -
  fi
}
per_conn() { awk -v b="$1" -v d="$2" -v c="$conns" 'BEGIN { if (b ~ /^[0-9.]+$/ && d ~ /^[0-9.]+$/) printf "%.2f", (d - b) / c; else print "-" }'; }

before=$(rss)
sock_before=$(sock_kib)
slab_before=$(slab_kib)
clients_log=$bench_dir/clients.log
"$netecho" bench --clients "$conns" --idle --duration 8s "$addr" >/dev/null 2>"$clients_log" &
bench=$!
track "$bench"
# Wait until the server holds them all (it logs nothing with -q; count its sockets).
held=0
for _ in $(seq 200); do
  held=$(ls "/proc/$pid/fd" | wc -l)
  [ "$held" -ge "$conns" ] && break
  sleep 0.05
done
if [ "$held" -lt "$conns" ]; then
  failed "the server holds $held descriptors, not the $conns connections asked for"
fi
# A moment for the memory to settle once every connection is in.
sleep 1
during=$(rss)
sock_during=$(sock_kib)
slab_during=$(slab_kib)
held=$(ls "/proc/$pid/fd" | wc -l)
if ! wait "$bench"; then
  failed "bench --clients $conns --idle" "$(cat "$clients_log")"
fi
sed -i "/^$bench\$/d" "$bench_dir/pids"

echo "# idle connections held by the $model model, $(nproc) cores, $(uname -sr), $(date -u +%Y-%m-%d)"
printf '%-26s %12s %12s %18s\n' what before_KiB held_KiB KiB_per_connection
printf '%-26s %12s %12s %18s\n' "server VmRSS" "$before" "$during" "$(per_conn "$before" "$during")"
printf '%-26s %12s %12s %18s\n' "kernel TCP buffers" "$sock_before" "$sock_during" "$(per_conn "$sock_before" "$sock_during")"
printf '%-26s %12s %12s %18s\n' "kernel socket slabs" "$slab_before" "$slab_during" "$(per_conn "$slab_before" "$slab_during")"
echo "# server file descriptors while held: $held"
echo "# left out: kernel figures are machine-wide, both ends of each connection and whatever else ran;"
echo "# the slabs need root (- without); page tables and the listen queue are in none of them."
bench_end
