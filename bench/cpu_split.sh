#!/usr/bin/env bash
# Where the CPU goes per request, read from /proc rather than timed: on 2 cores the load
# client and the kernel's TCP work share the CPU with the server, so a server's requests/s
# are bounded by all three. Each server (bench/reference's tokio echo server, netecho's
# event and uring models) runs under the same load from each load client in turn: netecho
# `bench --count REQUESTS` (CLIENTS clients, ping-pong, 512 bytes) and bench/reference's
# tokio_load for SECONDS (it runs by time; its CPU is divided by the requests it counted).
# Per run: the server's utime and stime (/proc/PID/stat, every thread) before and after the
# load, the client's (the cutime and cstime its waiting shell reads from /proc once it is
# reaped), and the machine's softirq time (/proc/stat) over the run, each in microseconds
# per request. CPU time is steadier than wall time on a shared machine; each figure is the
# median of ROUNDS runs (default 3), the servers taking turns.
#
# The ceiling is what a server costing nothing would reach, all else equal (the client's and
# the kernel's work per request unchanged): tokio's total over its total less its server.
# On a kernel with tick accounting and no CONFIG_IRQ_TIME_ACCOUNTING (see the footer), a
# softirq tick that lands on the server or the client is counted in its system time as well
# as in softirq: the total over-counts by at most the softirq column, and the ceiling is
# given with softirq and without (all of it already in the processes).
#
#   bench/cpu_split.sh [CLIENTS] [REQUESTS] [SECONDS]     default: 50 5000 3
#   ROUNDS=1 SERVERS="tokio uring" bench/cpu_split.sh     a quick look (x_tokio needs tokio)
#   BIN=/tmp/old/netecho bench/cpu_split.sh               another build of netecho (one before
#                                                         a change)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
clients=${1:-50}
requests=${2:-5000}
seconds=${3:-3}
rounds=${ROUNDS:-3}
servers=${SERVERS:-tokio event uring}
size=512
[ -n "${BIN:-}" ] || cargo build --release --quiet
cargo build --release --quiet --manifest-path bench/reference/Cargo.toml
netecho=${BIN:-$PWD/target/release/netecho}
refs=$PWD/bench/reference/target/release
ulimit -n "$(ulimit -Hn)"
tick_us=$((1000000 / $(getconf CLK_TCK)))

# proc_times PID: "utime stime cutime cstime" in ticks (fields 14-17, after the comm field,
# which may hold spaces).
proc_times() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12, $13, $14, $15 }'; }
# softirq: the machine's softirq ticks, all CPUs.
softirq() { awk '$1 == "cpu" { print $8; exit }' /proc/stat; }

# client_run BY OUTFILE: runs load client BY against $addr, its output to OUTFILE; prints
# its user+system ticks (read by the shell that reaped it) and its exit status.
client_run() {
  local status=0 me=$BASHPID
  case $1 in
    bench) "$netecho" bench --format csv --timeout 20s --clients "$clients" --count "$requests" \
      --size "$size" "$addr" >"$2" 2>&1 || status=$? ;;
    tokio_load) "$refs/tokio_load" "$addr" "$clients" "$size" "$seconds" >"$2" 2>&1 || status=$? ;;
  esac
  echo "$(proc_times "$me" | awk '{ print $3 + $4 }') $status"
}

# answered BY OUTFILE: the requests answered, or nothing when any went unanswered.
answered() {
  case $1 in
    # csv columns: sent(14), answered(15), failed_clients(20)
    bench) tail -n 1 "$2" | awk -F, '$14 == $15 && $20 == 0 && $15 > 0 { print $15 }' ;;
    # requests=N rps=R p50_us=A p99_us=B errors=E refused=F
    tokio_load) awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } }
      END { if (v["errors"] == 0 && v["refused"] == 0 && v["requests"] > 0) print v["requests"] }' "$2" ;;
  esac
}

# measure NAME BY CMD...: one run; appends "NAME BY srv_user srv_sys client softirq" in
# microseconds per request to $runs, or says the run failed.
measure() {
  local name=$1 by=$2 out s0 s1 irq0 irq1 client status n
  shift 2
  try_server "$@" || return 0
  out=$(mktemp -p "$bench_dir")
  s0=$(proc_times "$pid") irq0=$(softirq)
  read -r client status <<<"$(client_run "$by" "$out")"
  s1=$(proc_times "$pid") irq1=$(softirq)
  stop "$pid"
  n=$(answered "$by" "$out")
  if [ "$status" != 0 ] || [ -z "$n" ]; then
    failed "$name with $clients clients ($by): exit $status, not every request answered" "$(cat "$out")"
    return 0
  fi
  awk -v n="$n" -v t="$tick_us" -v a="$s0" -v b="$s1" -v c="$client" -v i="$((irq1 - irq0))" -v name="$name" -v by="$by" 'BEGIN {
    split(a, x, " "); split(b, y, " ")
    printf "%s %s %.2f %.2f %.2f %.2f\n", name, by, (y[1] - x[1]) * t / n, (y[2] - x[2]) * t / n, c * t / n, i * t / n }' >>"$runs"
}

# col NAME BY FIELD: the median of that column over the rounds (3 server user, 4 server
# system, 5 client, 6 softirq, 7 total).
col() {
  median $(awk -v n="$1" -v b="$2" -v f="$3" '$1 == n && $2 == b { $7 = $3 + $4 + $5 + $6; print $f }' "$runs")
}

echo "# CPU microseconds per request, tcp on loopback: $clients clients ping-pong, ${size}-byte messages,"
echo "# bench: $requests requests a client, tokio_load: ${seconds}s; median of $rounds rounds"
echo "# $(nproc) cores, $(uname -sr), $(date -u +%Y-%m-%d); load: $(cut -d' ' -f1-3 /proc/loadavg)"
row() { printf '%-7s %-10s %9s %9s %9s %9s %9s %8s %8s\n' "$@"; }
row server client srv_user srv_sys client softirq total x_tokio server%
runs=$bench_dir/runs
: >"$runs"
for _ in $(seq "$rounds"); do
  for name in $servers; do
    case $name in
      tokio) cmd=("$refs/tokio_echo" 127.0.0.1:0) ;;
      *) cmd=("$netecho" serve --max-conns 16384 --addr 127.0.0.1:0 --model "$name") ;;
    esac
    for by in bench tokio_load; do measure "$name" "$by" "${cmd[@]}"; done
  done
done
for by in bench tokio_load; do
  for name in $servers; do
    total=$(awk -v v="$(col "$name" "$by" 7)" 'BEGIN { if (v ~ /^[0-9.]+$/) printf "%.2f", v; else print "-" }') server=$(awk -v u="$(col "$name" "$by" 3)" -v s="$(col "$name" "$by" 4)" 'BEGIN { print u + s }')
    row "$name" "$by" "$(col "$name" "$by" 3)" "$(col "$name" "$by" 4)" "$(col "$name" "$by" 5)" \
      "$(col "$name" "$by" 6)" "$total" "$(ratio "$total" "$(col tokio "$by" 7)")" \
      "$(awk -v s="$server" -v t="$total" 'BEGIN { if (t > 0) printf "%.0f", 100 * s / t; else print "-" }')"
  done
done
echo "# ceiling (a server costing nothing, tokio's total / (its total - its server)):"
for by in bench tokio_load; do
  awk -v by="$by" -v u="$(col tokio "$by" 3)" -v s="$(col tokio "$by" 4)" -v c="$(col tokio "$by" 5)" -v i="$(col tokio "$by" 6)" 'BEGIN {
    if (c > 0) printf "#   %-10s %.2fx tokio with softirq, %.2fx without\n", by, (u + s + c + i) / (c + i), (u + s + c) / c }'
done
echo "# srv_user, srv_sys: the server's user and system time; client: the load client's user +"
echo "# system; softirq: the whole machine's over the run (other processes' too); total: their"
echo "# sum, medians taken column by column. server%: the server's share of the total."
echo "# kernel: $( (zcat /proc/config.gz 2>/dev/null || true) | grep -E '^(# )?CONFIG_IRQ_TIME_ACCOUNTING' | sed 's/^# //' || true)"
bench_end
