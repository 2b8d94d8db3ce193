#!/usr/bin/env bash
# The four server models side by side on loopback, against two reference servers built from
# bench/reference: tokio's echo server and a std thread-per-connection server. One table:
# requests/s, p99 latency, replies checked, and each figure's ratio to the references.
#
# Each figure is the median of ROUNDS runs (env, default 3), the servers taking turns: one
# run of thread-per-connection at 1,000 clients moves by a fifth from one to the next.
#
# A run that fails (bench's exit status, clients that failed) is said on stderr and left out
# of the medians; the `failed` column counts the failed clients of every run. Every server
# started is stopped, also on Ctrl-C.
#
#   bench/models.sh [DURATION] [CLIENT COUNTS...]      default: 5s 1 50 1000
#   ROUNDS=1 bench/models.sh 2s 50                     a quick look
#   BASE=/tmp/old/netecho bench/models.sh              also that build's models (rows NAME@base,
#                                                      its own client), in the same turns: a
#                                                      change measured against the build before it
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
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

# measure CLIENTS CMD... : one bench run with $client (netecho's own client unless a base
# build is measured); prints "rps p99 answered sent failed_clients", or
# "- - - - -" when the run failed (said on stderr, with bench's own words).
measure() {
  local clients=$1 row err status=0
  shift
  start_server "$@"
  err=$(mktemp -p "$bench_dir")
  row=$("${client:-$netecho}" bench --format csv --clients "$clients" --size "$size" --duration "$duration" "$addr" 2>"$err" | tail -n 1) || status=$?
  stop "$pid"
  # csv columns: proto,address,clients,size,window,requests_per_s(6),mb_per_s,mean_us,p50_us,
  # p99_us(10),p99_9_us,max_us,connect_p50_us,sent(14),answered(15),...,failed_clients(20)
  local failed_clients
  failed_clients=$(awk -F, '{ print $20 }' <<<"$row")
  if [ "$status" != 0 ] || [ -z "$row" ]; then
    failed "$* with $clients clients: bench exit $status" "$(cat "$err")"
    echo "- - - - -"
    return
  fi
  if [ "${failed_clients:-0}" != 0 ]; then
    failed "$* with $clients clients: $failed_clients clients failed" "$(cat "$err")"
  fi
  awk -F, '{ printf "%s %s %s %s %s\n", $6, $10, $15, $14, $20 }' <<<"$row"
}

# run_all CLIENTS: every server once, in turn; appends "name rps p99 answered sent" lines to $runs.
run_all() {
  local c=$1 model
  echo "tokio $(measure "$c" "$refs/tokio_echo" 127.0.0.1:0)" >>"$runs"
  echo "std $(measure "$c" "$refs/std_echo" 127.0.0.1:0)" >>"$runs"
  for model in iterative threads event fork; do
    # One client at a time: the others would wait for the whole run. Shown with 1 client only.
    if [ "$model" = iterative ] && [ "$c" -gt 1 ]; then continue; fi
    # --max-conns as high as the clients: fork serves 256 at once unless told.
    echo "$model $(measure "$c" "$netecho" serve --model "$model" --max-conns 16384 --addr 127.0.0.1:0)" >>"$runs"
    if [ -n "${BASE:-}" ]; then
      echo "$model@base $(client=$BASE measure "$c" "$BASE" serve --model "$model" --max-conns 16384 --addr 127.0.0.1:0)" >>"$runs"
    fi
  done
}

# figure NAME FIELD: the median of that server's runs (rps: 2, p99: 3), failed runs left out;
# answered/sent and failed clients summed over its runs (failed runs show as `-` runs).
figure() { median $(awk -v n="$1" -v f="$2" '$1 == n { print $f }' "$runs"); }
answered() { awk -v n="$1" '$1 == n && $4 != "-" { a += $4; s += $5 } END { printf "%d/%d", a, s }' "$runs"; }
failures() {
  awk -v n="$1" '$1 == n { if ($6 == "-") runs++; else c += $6 }
    END { printf "%d", c; if (runs) printf "+%d runs", runs }' "$runs"
}

echo "# netecho server models, tcp on loopback, ${size}-byte messages, ${duration} per run, median of $rounds rounds"
echo "# $(nproc) cores, $(uname -sr), $(date -u +%Y-%m-%d)"
printf '%-14s %8s %12s %10s %16s %8s %8s %8s\n' server clients requests/s p99_us answered/sent failed x_tokio x_std
runs=$bench_dir/runs
for c in "${counts[@]}"; do
  : >"$runs"
  for _ in $(seq "$rounds"); do run_all "$c"; done
  t_rps=$(figure tokio 2)
  s_rps=$(figure std 2)
  names="tokio std iterative threads event fork"
  [ -z "${BASE:-}" ] || names="$names iterative@base threads@base event@base fork@base"
  for name in $names; do
    if [ "${name%@base}" = iterative ] && [ "$c" -gt 1 ]; then
      printf '%-14s %8s %12s %10s %16s %8s %8s %8s\n' "$name" "$c" "-" "-" "(one at a time)" "-" "-" "-"
      continue
    fi
    rps=$(figure "$name" 2)
    printf '%-14s %8s %12s %10s %16s %8s %8s %8s\n' "$name" "$c" "$rps" "$(figure "$name" 3)" "$(answered "$name")" "$(failures "$name")" "$(ratio "$rps" "$t_rps")" "$(ratio "$rps" "$s_rps")"
  done
done
echo "# left out: iterative beyond 1 client (it serves one at a time), and failed runs from the"
echo "# medians (listed below when any)."
bench_end
