#!/usr/bin/env bash
# User-space instructions per ping-pong round trip, netecho beside sockperf, counted by
# valgrind's callgrind: a figure that stays put on a loaded machine, where every timed one
# (bench/peers.sh) moves by more than the few percent a change to the hot path is worth.
# It counts the instructions a process runs in user space and nothing else: not the kernel's
# work in each system call, not cache misses, not the time a wake-up takes. Fewer instructions
# is a server that does less per message; whether that is faster is peers.sh's to show.
# - server rows: `netecho serve` (the event model, --transform echo, as peers.sh's "same
#   client" rows) beside `sockperf sr`, each under callgrind, both driven by the same client
#   outside valgrind: bench/reference's pingpong, 64-byte messages, one in flight.
# - client rows: `netecho bench --clients 1 --window 1` beside `sockperf pp`, each under
#   callgrind against a server outside it: bench against `netecho serve --transform echo`
#   (bench checks every byte of an echo), sockperf pp against `sockperf sr` (it drops an
#   echo's replies, whose header still says a client sent them).
# The warm-up (start, connect, the first round trips, and the exit) is taken out by counting
# two runs of each, WARM and WARM+N round trips, and dividing the difference by N. sockperf
# pp runs by time, not by count: its runs last 1 and 3 s, and its own count of replies
# ([Total Run] ReceivedMessages) divides. Installs sockperf and valgrind (Debian) when missing;
# builds netecho and pingpong at the lowest priority.
#
#   bench/instructions.sh [N] [WARM]    round trips counted, default 20000 after 2000
#   BIN=/tmp/old/netecho bench/instructions.sh   another build of netecho (one before a change)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
n=${1:-20000}
warm=${2:-2000}
size=64

if ! command -v sockperf >/dev/null || ! command -v valgrind >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sockperf valgrind >/dev/null
fi
nice -n 19 cargo build --release --quiet
nice -n 19 cargo build --release --quiet --manifest-path bench/reference/Cargo.toml --bin pingpong
netecho=${BIN:-target/release/netecho}
pingpong=bench/reference/target/release/pingpong

# new_cg: a fresh file in $bench_dir for the next callgrind's counts, named in $cg (set
# here, not inside the $(...) or the background job that runs callgrind).
new_cg() { cg=$(mktemp -p "$bench_dir" cg.XXXXXX); }

# callgrind CMD...: becomes the command under callgrind (exec: the pid a job started with it
# is valgrind's, for stop), its counts written to $cg. Only in a subshell or a job.
callgrind() { exec valgrind --tool=callgrind -q --callgrind-out-file="$cg" "$@"; }

# server_count PROTO SERVER COUNT: the instructions of SERVER (netecho or sockperf) under
# callgrind while pingpong makes COUNT round trips with it; `-` when the run failed.
server_count() {
  local model=$2
  [ "$model" = netecho ] && model=event
  new_cg
  pingpong_with "$1" "$model" "$3" stop callgrind || { echo -; return; }
  callgrind_total "$cg"
}

# netecho_client_count PROTO COUNT: netecho bench's instructions for COUNT round trips.
netecho_client_count() {
  new_cg
  bench_with "$1" "$2" callgrind || { echo -; return; }
  callgrind_total "$cg"
}

# sockperf_client_count PROTO SECS: "instructions replies" of sockperf pp for SECS.
sockperf_client_count() {
  local got
  new_cg
  got=$(sockperf_pp_with "$1" "$2" callgrind) || { echo "- -"; return; }
  echo "$(callgrind_total "$cg") $got"
}

# per_trip A B TRIPS: (B - A) / TRIPS, whole instructions; `-` unless both are numbers.
per_trip() {
  awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN {
    if (a ~ /^[0-9]+$/ && b ~ /^[0-9]+$/ && n > 0) printf "%.0f", (b - a) / n; else print "-" }'
}

# row CELLS...: one line of the table.
row() { printf '%-8s %-6s %-34s %10s %10s %7s\n' "$@"; }

echo "# user-space instructions per round trip (valgrind --tool=callgrind), 64-byte ping-pong on loopback"
echo "# $(nproc) cores, $(uname -sr), $(date -u +%Y-%m-%d), sockperf $(sockperf --version 2>&1 | grep -io 'version [^ ,]*' | head -1 | cut -d' ' -f2), $(valgrind --version)"
row side proto "netecho / peer" netecho peer ratio
for proto in tcp udp; do
  a=$(server_count "$proto" netecho "$warm"); b=$(server_count "$proto" netecho $((warm + n)))
  c=$(server_count "$proto" sockperf "$warm"); d=$(server_count "$proto" sockperf $((warm + n)))
  ne=$(per_trip "$a" "$b" "$n"); sp=$(per_trip "$c" "$d" "$n")
  row server "$proto" "serve (event) / sockperf sr" "$ne" "$sp" "$(ratio "$ne" "$sp")"
done
for proto in tcp udp; do
  a=$(netecho_client_count "$proto" "$warm"); b=$(netecho_client_count "$proto" $((warm + n)))
  read -r c c_n < <(sockperf_client_count "$proto" 1)
  read -r d d_n < <(sockperf_client_count "$proto" 3)
  ne=$(per_trip "$a" "$b" "$n")
  sp=$([ "$c_n" = - ] || [ "$d_n" = - ] && echo - || per_trip "$c" "$d" $((d_n - c_n)))
  row client "$proto" "bench / sockperf pp" "$ne" "$sp" "$(ratio "$ne" "$sp")"
done
echo "# server: pingpong (not counted) makes $warm and $((warm + n)) round trips; the difference / $n."
echo "# client: netecho bench --count $warm and $((warm + n)); sockperf pp -t 1 and -t 3, / the replies between."
echo "# ratio: netecho / peer. User space only: no kernel work, no cache misses, no waiting."
bench_end
