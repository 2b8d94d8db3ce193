#!/usr/bin/env bash
# The server models (uring included) side by side on loopback, against two reference
# servers built from bench/reference: tokio's echo server and a std thread-per-connection
# server. Each server is measured by two load clients: netecho's own `bench`, and
# bench/reference's tokio_load (not netecho's: a task per connection, each reply checked
# byte for byte), so no server is judged only by the client written with it. One table:
# requests/s, p99 latency, replies answered, failed or refused clients, and each figure's
# ratio to tokio and to std measured by the same client.
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
#   MODELS="event uring" bench/models.sh               only these netecho models
#   MODELS="uring uring-1" bench/models.sh             NAME-N: that model with --threads N
#                                                      (event loops or rings), a row of its own
#   MODELS="uring uring+batch" bench/models.sh         NAME+POLICY: with --sched POLICY
#   BASE=/tmp/old/netecho bench/models.sh              also that build's models (rows NAME@base,
#                                                      its own client and tokio_load), in the same
#                                                      turns: a change measured against the build
#                                                      before it
#   LOADS=tokio_load bench/models.sh 2s 50             only these load clients (bench,
#                                                      tokio_load): one cell, in half the time
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
duration=${1:-5s}
rounds=${ROUNDS:-3}
shift || true
counts=("${@:-1 50 1000}")
read -r -a counts <<<"${counts[*]}"
size=512
models=${MODELS:-iterative threads event fork uring}
loads=${LOADS:-bench tokio_load}
for by in $loads; do
  case $by in bench | tokio_load) ;; *)
    echo "bench/models.sh: LOADS takes bench and tokio_load, not '$by'" >&2
    exit 2
    ;;
  esac
done
# tokio_load takes seconds: 5s -> 5, 500ms -> 0.5.
seconds=$(awk -v d="$duration" 'BEGIN { if (d ~ /ms$/) print substr(d, 1, length(d) - 2) / 1000; else { sub(/s$/, "", d); print d } }')

cargo build --release --quiet
cargo build --release --quiet --manifest-path bench/reference/Cargo.toml
netecho=target/release/netecho
refs=bench/reference/target/release
ulimit -n "$(ulimit -Hn)"

# measure CLIENTS CMD... : one bench run with $client (netecho's own client unless a base
# build is measured); prints "rps p99 answered sent failed_clients", or
# "- - - - -" when the run failed (said on stderr, with bench's own words, or the server's
# when it did not start).
measure() {
  local clients=$1 row err status=0
  shift
  if ! try_server "$@"; then
    echo "- - - - -"
    return
  fi
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

# measure_ref CLIENTS CMD...: the same with bench/reference's tokio_load; a wrong, missing
# or late reply and a refused connection count as failed.
measure_ref() {
  local clients=$1 row err status=0
  shift
  if ! try_server "$@"; then
    echo "- - - - -"
    return
  fi
  err=$(mktemp -p "$bench_dir")
  row=$("$refs/tokio_load" "$addr" "$clients" "$size" "$seconds" 2>"$err") || status=$?
  stop "$pid"
  if [ "$status" != 0 ] || [ -z "$row" ]; then
    failed "$* with $clients clients (tokio_load): exit $status" "$(cat "$err")"
    echo "- - - - -"
    return
  fi
  # requests=N rps=R p50_us=A p99_us=B errors=E refused=F
  local failures
  failures=$(awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } }
    END { print v["errors"] + v["refused"] }' <<<"$row")
  if [ "$failures" != 0 ]; then
    failed "$* with $clients clients (tokio_load): $row" "$(cat "$err")"
  fi
  awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } }
    END { printf "%s %s %s %s %s\n", v["rps"], v["p99_us"], v["requests"], v["requests"] + v["errors"], v["errors"] + v["refused"] }' <<<"$row"
}

# has CLIENT: whether LOADS names that load client.
has() { [[ " $loads " == *" $1 "* ]]; }

# both NAME CLIENTS CMD...: the server measured by each client of LOADS in turn, one line each.
both() {
  local name=$1 c=$2
  shift 2
  if has bench; then echo "$name bench $(measure "$c" "$@")" >>"$runs"; fi
  if has tokio_load; then echo "$name tokio_load $(measure_ref "$c" "$@")" >>"$runs"; fi
}

# serve_args MODEL: the serve command line of a MODELS entry (NAME, NAME-N for N threads,
# either with +POLICY for --sched POLICY).
serve_args() {
  local spec=${1%+*} name
  name=${spec%-*}
  echo serve --model "$name" --max-conns 16384 --addr 127.0.0.1:0
  [ "$name" = "$spec" ] || echo --threads "${spec##*-}"
  [ "$spec" = "$1" ] || echo --sched "${1##*+}"
}

# run_all CLIENTS: every server once by each client, in turn; appends
# "name client rps p99 answered sent failed" lines to $runs.
run_all() {
  local c=$1 model
  both tokio "$c" "$refs/tokio_echo" 127.0.0.1:0
  both std "$c" "$refs/std_echo" 127.0.0.1:0
  for model in $models; do
    # One client at a time: the others would wait for the whole run. Shown with 1 client only.
    if [ "$model" = iterative ] && [ "$c" -gt 1 ]; then continue; fi
    # --max-conns as high as the clients: fork serves 256 at once unless told.
    # shellcheck disable=SC2046 # serve_args prints words, none with spaces
    both "$model" "$c" "$netecho" $(serve_args "$model")
    # A base build may not know --sched: its rows are the model as it serves by default.
    if [ -n "${BASE:-}" ] && [ "${model%+*}" = "$model" ]; then
      if has bench; then
        # shellcheck disable=SC2046
        echo "$model@base bench $(client=$BASE measure "$c" "$BASE" $(serve_args "$model"))" >>"$runs"
      fi
      if has tokio_load; then
        # shellcheck disable=SC2046
        echo "$model@base tokio_load $(measure_ref "$c" "$BASE" $(serve_args "$model"))" >>"$runs"
      fi
    fi
  done
}

# figure NAME CLIENT FIELD: the median of that server's runs by that client (rps: 3, p99: 4),
# failed runs left out; answered/sent and failed clients summed over its runs (failed runs
# show as `-` runs).
figure() { median $(awk -v n="$1" -v c="$2" -v f="$3" '$1 == n && $2 == c { print $f }' "$runs"); }
answered() {
  awk -v n="$1" -v c="$2" '$1 == n && $2 == c && $5 != "-" { a += $5; s += $6 }
    END { printf "%d/%d", a, s }' "$runs"
}
failures() {
  awk -v n="$1" -v c="$2" '$1 == n && $2 == c { if ($7 == "-") runs++; else f += $7 }
    END { printf "%d", f; if (runs) printf "+%d runs", runs }' "$runs"
}

echo "# netecho server models, tcp on loopback, ${size}-byte messages, ${duration} per run, median of $rounds rounds"
echo "# $(nproc) cores, $(uname -sr), $(date -u +%Y-%m-%d); load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# client: bench = netecho bench, tokio_load = bench/reference (a task per connection, replies checked)"
row() { printf '%-12s %-10s %7s %11s %8s %18s %8s %7s %7s\n' "$@"; }
row server client clients requests/s p99_us answered/sent failed x_tokio x_std
runs=$bench_dir/runs
for c in "${counts[@]}"; do
  : >"$runs"
  for _ in $(seq "$rounds"); do run_all "$c"; done
  names="tokio std $models"
  if [ -n "${BASE:-}" ]; then
    for model in $models; do
      if [ "${model%+*}" = "$model" ]; then names="$names $model@base"; fi
    done
  fi
  for name in $names; do
    # `by`, not `client`: measure's $client names the load client of a base build.
    for by in $loads; do
      if [ "${name%@base}" = iterative ] && [ "$c" -gt 1 ]; then
        [ "$by" = bench ] && row "$name" - "$c" - - "(one at a time)" - - -
        continue
      fi
      rps=$(figure "$name" "$by" 3)
      row "$name" "$by" "$c" "$rps" "$(figure "$name" "$by" 4)" "$(answered "$name" "$by")" \
        "$(failures "$name" "$by")" "$(ratio "$rps" "$(figure tokio "$by" 3)")" "$(ratio "$rps" "$(figure std "$by" 3)")"
    done
  done
done
echo "# left out: iterative beyond 1 client (it serves one at a time), and failed runs from the"
echo "# medians (listed below when any). failed: clients that failed (bench), or replies wrong,"
echo "# missing or late and connections refused (tokio_load); x_tokio and x_std compare with the"
echo "# reference measured by the same client."
bench_end
