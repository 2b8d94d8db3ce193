#!/usr/bin/env bash
# The four server models side by side on loopback, against two reference servers built from
# bench/reference: tokio's echo server and a std thread-per-connection server. One table:
# requests/s, p99 latency, replies checked, and each figure's ratio to the references.
#
# Each figure is the median of ROUNDS runs (env, default 3), the servers taking turns: one
# run of thread-per-connection at 1,000 clients moves by a fifth from one to the next.
#
#   bench/models.sh [DURATION] [CLIENT COUNTS...]      default: 5s 1 50 1000
#   ROUNDS=1 bench/models.sh 2s 50                     a quick look
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-5s}
rounds=${ROUNDS:-3}
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

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# run_all CLIENTS: every server once, in turn; appends "name rps p99 answered sent" lines to $runs.
run_all() {
  local c=$1 model
  echo "tokio $(measure "$c" "$refs/tokio_echo" 127.0.0.1:0)" >>"$runs"
  echo "std $(measure "$c" "$refs/std_echo" 127.0.0.1:0)" >>"$runs"
  for model in iterative threads event fork; do
    # One client at a time: the others would wait for the whole run. Shown with 1 client only.
    if [ "$model" = iterative ] && [ "$c" -gt 1 ]; then continue; fi
    echo "$model $(measure "$c" "$netecho" serve --model "$model" --addr 127.0.0.1:0)" >>"$runs"
  done
}

# figure NAME FIELD: the median of that server's runs (rps: 2, p99: 3); answered/sent summed.
figure() { median $(awk -v n="$1" -v f="$2" '$1 == n { print $f }' "$runs"); }
answered() { awk -v n="$1" '$1 == n { a += $4; s += $5 } END { printf "%d/%d", a, s }' "$runs"; }

echo "# netecho server models, tcp on loopback, ${size}-byte messages, ${duration} per run, median of $rounds rounds"
echo "# $(nproc) cores, $(uname -sr), $(date -u +%Y-%m-%d)"
printf '%-10s %8s %12s %10s %16s %8s %8s\n' server clients requests/s p99_us answered/sent x_tokio x_std
runs=$(mktemp)
trap 'rm -f "$runs"' EXIT
for c in "${counts[@]}"; do
  : >"$runs"
  for _ in $(seq "$rounds"); do run_all "$c"; done
  t_rps=$(figure tokio 2)
  s_rps=$(figure std 2)
  for name in tokio std iterative threads event fork; do
    if [ "$name" = iterative ] && [ "$c" -gt 1 ]; then
      printf '%-10s %8s %12s %10s %16s %8s %8s\n' "$name" "$c" "-" "-" "(one at a time)" "-" "-"
      continue
    fi
    rps=$(figure "$name" 2)
    printf '%-10s %8s %12s %10s %16s %8s %8s\n' "$name" "$c" "$rps" "$(figure "$name" 3)" "$(answered "$name")" "$(ratio "$rps" "$t_rps")" "$(ratio "$rps" "$s_rps")"
  done
done
