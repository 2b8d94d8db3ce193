#!/usr/bin/env bash
# System calls per ping-pong round trip, netecho beside sockperf, counted by `strace -c -f`:
# most of a loopback round trip's CPU is kernel work (bench/cpu_split.sh), so a call netecho
# makes that sockperf does not is a kernel round trip to look at. Counts, not times: strace
# slows every call, and the counts hold on a loaded machine.
# - server rows: `netecho serve --model MODEL --transform echo` (event and uring) beside
#   `sockperf sr`, each under strace, driven by bench/reference's pingpong outside it (64-byte messages, one in
#   flight), as bench/instructions.sh drives them.
# - client rows: `netecho bench --clients 1 --window 1` against `netecho serve`, beside
#   `sockperf pp` against `sockperf sr`, the client under strace.
# Start-up and exit are taken out by counting two runs of each, WARM and WARM+N round trips,
# and dividing the difference by N; sockperf pp runs by time (1 and 3 s) and its own count
# of replies ([Total Run] ReceivedMessages) divides.
#
#   bench/syscalls.sh [N] [WARM]      round trips counted, default 20000 after 2000
#   BIN=/tmp/old/netecho bench/syscalls.sh   another build of netecho (one before a change)
#   MODELS=event bench/syscalls.sh            only these server models (event uring)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
n=${1:-20000}
warm=${2:-2000}
size=64

command -v strace >/dev/null || { echo "strace is needed: apt-get install strace" >&2; exit 1; }
command -v sockperf >/dev/null || { echo "sockperf is needed: apt-get install sockperf" >&2; exit 1; }
[ -n "${BIN:-}" ] || nice -n 19 cargo build --release --quiet
nice -n 19 cargo build --release --quiet --manifest-path bench/reference/Cargo.toml --bin pingpong
netecho=${BIN:-target/release/netecho}
pingpong=bench/reference/target/release/pingpong

# strace_c OUT CMD...: CMD under `strace -c -f`, its table written to OUT.
strace_c() {
  local out=$1
  shift
  exec strace -c -f -o "$out" "$@"
}

# end_traced PID: stops the program strace PID traces (strace then writes its table).
end_traced() {
  local child
  child=$(pgrep -P "$1" || true)
  [ -n "$child" ] && kill "$child" 2>/dev/null
  ended "$1"
  wait "$1" 2>/dev/null || true
  sed -i "/^$1\$/d" "$bench_dir/pids"
}

# server_calls PROTO SERVER COUNT: the strace table's file of SERVER (a model, or sockperf)
# while pingpong makes COUNT round trips with it; `-` when the run failed.
server_calls() {
  local table
  table=$(mktemp -p "$bench_dir")
  pingpong_with "$1" "$2" "$3" end_traced strace_c "$table" || { echo -; return; }
  echo "$table"
}

# bench_calls PROTO COUNT: the strace table's file of netecho bench making COUNT round trips.
bench_calls() {
  local table
  table=$(mktemp -p "$bench_dir")
  bench_with "$1" "$2" strace_c "$table" || { echo -; return; }
  echo "$table"
}

# sockperf_pp_calls PROTO SECS: "table replies" of sockperf pp for SECS under strace.
sockperf_pp_calls() {
  local table got
  table=$(mktemp -p "$bench_dir")
  got=$(sockperf_pp_with "$1" "$2" strace_c "$table") || { echo "- -"; return; }
  echo "$table $got"
}

# per_trip A B TRIPS: "total call=n call=n ..." per round trip from strace tables A and B
# (B's count minus A's, over TRIPS), calls made less than once in 100 round trips left out;
# `-` unless both tables are there.
per_trip() {
  if [ ! -s "$1" ] || [ ! -s "$2" ] || [ "$3" -le 0 ]; then
    echo -
    return
  fi
  awk -v n="$3" '
    # strace -c rows: % seconds usecs/call calls [errors] syscall
    FNR == 1 { file++ }
    $1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" { calls[$NF] += (file == 1 ? -$4 : $4) }
    END { for (c in calls) if (calls[c] / n >= 0.01) printf "%s %.2f\n", c, calls[c] / n }' "$1" "$2" |
    sort | awk '{ total += $2; list = list " " $1 "=" $2 } END { printf "%.2f%s\n", total, list }'
}

# row CELLS...: one line of the table.
row() { printf '%-8s %-6s %-14s %7s  %s\n' "$@"; }

echo "# system calls per round trip (strace -c -f), 64-byte ping-pong on loopback, one in flight"
echo "# $(nproc) cores, $(uname -sr), $(date -u +%Y-%m-%d), sockperf $(sockperf --version 2>&1 | grep -io 'version [^ ,]*' | head -1 | cut -d' ' -f2), $(strace -V | head -1)"
row side proto program total "calls per round trip"
for proto in tcp udp; do
  for server in ${MODELS:-event uring} sockperf; do
    a=$(server_calls "$proto" "$server" "$warm"); b=$(server_calls "$proto" "$server" $((warm + n)))
    read -r total list <<<"$(per_trip "$a" "$b" "$n")"
    name=$([ "$server" = sockperf ] && echo "sockperf sr" || echo "serve ($server)")
    row server "$proto" "$name" "$total" "${list:-}"
  done
done
for proto in tcp udp; do
  a=$(bench_calls "$proto" "$warm"); b=$(bench_calls "$proto" $((warm + n)))
  read -r total list <<<"$(per_trip "$a" "$b" "$n")"
  row client "$proto" bench "$total" "${list:-}"
  read -r c c_n < <(sockperf_pp_calls "$proto" 1)
  read -r d d_n < <(sockperf_pp_calls "$proto" 3)
  trips=$([ "$c_n" = - ] || [ "$d_n" = - ] && echo 0 || echo $((d_n - c_n)))
  read -r total list <<<"$(per_trip "$c" "$d" "$trips")"
  row client "$proto" "sockperf pp" "$total" "${list:-}"
done
echo "# server: pingpong (not traced) makes $warm and $((warm + n)) round trips; the difference / $n."
echo "# client: netecho bench --count $warm and $((warm + n)); sockperf pp -t 1 and -t 3, / the replies between."
echo "# Calls made less than once in 100 round trips are left out (idle ticks, start, exit)."
bench_end
