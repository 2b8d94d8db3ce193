#!/usr/bin/env bash
# The four server models side by side on loopback, against two reference servers built from
# bench/reference: tokio's echo server and a std thread-per-connection server. One table:
# requests/s, p99 latency, replies checked, and each figure's ratio to the references.
#
#   bench/models.sh [DURATION] [CLIENT COUNTS...]      default: 5s 1 50 1000
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-5s}
shift || true
counts=("${@:-1 50 1000}")
read -r -a counts <<<"${counts[*]}"
size=512

cargo build --release --quiet
cargo build --release --quiet --manifest-path bench/reference/Cargo.toml
netecho=target/release/netecho
refs=bench/reference/target/release
ulimit -n "$(ulimit -Hn)"

# start_server CMD... : runs a server, sets $pid and $addr from its `listening` line.
start_server() {
  local out
  out=$(mktemp)
  "$@" >"$out" 2>/dev/null &
  pid=$!
  for _ in $(seq 100); do
    [ -s "$out" ] && break
    sleep 0.05
  done
  addr=$(awk 'NR==1 {print $3}' "$out")
  rm -f "$out"
  [ -n "$addr" ] || { echo "server did not start: $*" >&2; exit 1; }
}

stop_server() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# measure NAME CLIENTS CMD... : one bench run; prints "rps p99 answered sent failed".
measure() {
  local clients=$1
  shift
  start_server "$@"
  local row
  row=$("$netecho" bench --format csv --clients "$clients" --size "$size" --duration "$duration" "$addr" 2>/dev/null | tail -n 1 || true)
  stop_server
  # csv columns: proto,address,clients,size,window,requests_per_s(6),mb_per_s,mean_us,p50_us,
  # p99_us(10),p99_9_us,max_us,connect_p50_us,sent(14),answered(15),...,failed_clients(20)
  awk -F, '{ printf "%s %s %s %s %s\n", $6, $10, $15, $14, $20 }' <<<"${row:-0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,?}"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

echo "# netecho server models, tcp on loopback, ${size}-byte messages, ${duration} per run"
echo "# $(nproc) cores, $(uname -sr), $(date -u +%Y-%m-%d)"
printf '%-10s %8s %12s %10s %12s %8s %8s\n' server clients requests/s p99_us answered/sent x_tokio x_std
for c in "${counts[@]}"; do
  read -r t_rps t_p99 t_ans t_sent _ < <(measure "$c" "$refs/tokio_echo" 127.0.0.1:0)
  read -r s_rps s_p99 s_ans s_sent _ < <(measure "$c" "$refs/std_echo" 127.0.0.1:0)
  printf '%-10s %8s %12s %10s %12s %8s %8s\n' tokio "$c" "$t_rps" "$t_p99" "$t_ans/$t_sent" 1.00 "$(ratio "$t_rps" "$s_rps")"
  printf '%-10s %8s %12s %10s %12s %8s %8s\n' std "$c" "$s_rps" "$s_p99" "$s_ans/$s_sent" "$(ratio "$s_rps" "$t_rps")" 1.00
  for model in iterative threads event fork; do
    if [ "$model" = iterative ] && [ "$c" -gt 1 ]; then
      # One client at a time: the others wait for the whole run. Shown with 1 client only.
      printf '%-10s %8s %12s %10s %12s %8s %8s\n' "$model" "$c" "-" "-" "(serves one client at a time)" "-" "-"
      continue
    fi
    read -r rps p99 ans sent _ < <(measure "$c" "$netecho" serve --model "$model" --addr 127.0.0.1:0)
    printf '%-10s %8s %12s %10s %12s %8s %8s\n' "$model" "$c" "$rps" "$p99" "$ans/$sent" "$(ratio "$rps" "$t_rps")" "$(ratio "$rps" "$s_rps")"
  done
done
