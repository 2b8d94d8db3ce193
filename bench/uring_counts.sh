#!/usr/bin/env bash
# What one request costs the server, counted rather than timed: system calls per request
# (`strace -c -f`) and user-space instructions per request (valgrind's callgrind) of the
# uring and event models beside bench/reference's tokio echo server, each under the same
# fixed load from netecho's own `bench` (CLIENTS clients, REQUESTS each, 512 bytes,
# ping-pong; the load client is never traced). On a shared machine times are noise, counts
# are not; strace and valgrind slow the server, so it finds more requests per wake-up than
# at full speed: compare the rows with each other, not with bench/models.sh.
#
# Instructions are counted while the load runs (callgrind_control turns the count on and
# dumps it): the server's start is left out, the clients' connections and closing lines are
# in. Under valgrind the uring model runs one ring (--threads 1): valgrind keeps its
# one-thread-at-a-time lock while a ring waits in io_uring_enter, so a second ring never
# runs and its connections stall.
#
#   bench/uring_counts.sh [CLIENTS] [REQUESTS]     default: 50 2000
#   SERVERS=uring bench/uring_counts.sh            only these (tokio event uring); x_tokio
#                                                  needs tokio among them
#   BIN=/tmp/old/netecho bench/uring_counts.sh      another build of netecho (one before a change)
#   KEEP=/tmp/counts bench/uring_counts.sh         keeps each callgrind profile there
#                                                  (callgrind_annotate KEEP/callgrind.NAME)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
clients=${1:-50}
requests=${2:-2000}
size=512
[ -n "${BIN:-}" ] || cargo build --release --quiet
cargo build --release --quiet --manifest-path bench/reference/Cargo.toml
netecho=${BIN:-$PWD/target/release/netecho}
refs=$PWD/bench/reference/target/release

# load N: N requests from each client; a run where any went unanswered is said and fails.
load() {
  local row
  row=$("$netecho" bench --format csv --timeout 20s --clients "$clients" --count "$1" \
    --size "$size" "$addr" | tail -n 1)
  # csv columns: sent(14), answered(15)
  if [ "$(awk -F, '{ print $14 "/" $15 }' <<<"$row")" != "$(($1 * clients))/$(($1 * clients))" ]; then
    failed "$name: not every request answered: $row"
    return 1
  fi
}

# calls NAME CMD...: "total main" system calls per request of the server under strace; main
# is the call that waits (io_uring_enter, epoll_wait) with the receives and sends.
calls() {
  local name=$1 out=$bench_dir/strace server
  shift
  start_server strace -c -f -o "$out" "$@"
  server=$(pgrep -P "$pid")
  local ok=0
  load "$requests" || ok=1
  kill "$server"
  ended "$pid"
  wait "$pid" 2>/dev/null || true
  if [ "$ok" != 0 ]; then
    echo "- -"
    return
  fi
  awk -v n=$((requests * clients)) '
    $NF == "total" { total = $4 }
    $NF ~ /^(io_uring_enter|epoll_wait|recvfrom|sendto)$/ { main += $4 }
    END { printf "%.3f %.3f\n", total / n, main / n }' "$out"
}

# instructions NAME CMD...: user-space instructions per request of the server under callgrind.
instructions() {
  local name=$1 out=$bench_dir/callgrind
  shift
  start_server valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" "$@"
  callgrind_control -i on "$pid" >/dev/null 2>&1
  if ! load "$requests"; then
    stop "$pid"
    echo -
    return
  fi
  callgrind_control -d "$pid" >/dev/null 2>&1
  stop "$pid"
  callgrind_total "$out".1 $((requests * clients))
  if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP" && cp "$out".1 "$KEEP/callgrind.$name"; fi
  rm -f "$out" "$out".*
}

serve=(serve --max-conns 16384 --addr 127.0.0.1:0)
echo "# server cost per request, tcp on loopback: $clients clients ping-pong, ${size}-byte messages,"
echo "# $requests requests each, under strace and under callgrind in turn"
echo "# $(nproc) cores, $(uname -sr), $(date -u +%Y-%m-%d)"
row() { printf '%-8s %14s %12s %8s %14s %8s\n' "$@"; }
row server calls/request io+wait/req x_tokio instr/request x_tokio
declare -A syscalls instr
for name in ${SERVERS:-tokio event uring}; do
  case $name in
    tokio) cmd=("$refs/tokio_echo" 127.0.0.1:0) one=("${cmd[@]}") ;;
    *) cmd=("$netecho" "${serve[@]}" --model "$name") one=("${cmd[@]}") ;;
  esac
  [ "$name" = uring ] && one+=(--threads 1)
  read -r total main <<<"$(calls "$name" "${cmd[@]}")"
  syscalls[$name]=$total
  instr[$name]=$(instructions "$name" "${one[@]}")
  row "$name" "$total" "$main" "$(ratio "$total" "${syscalls[tokio]:-}")" \
    "${instr[$name]}" "$(ratio "${instr[$name]}" "${instr[tokio]:-}")"
done
echo "# calls/request: every system call of the server during the run (its start and stop"
echo "# included) over the requests; io+wait: io_uring_enter, or epoll_wait, recvfrom and"
echo "# sendto. x_tokio: the count over tokio's (lower is less work)."
bench_end
