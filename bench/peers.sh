#!/usr/bin/env bash
# netecho measured against the peers a lab trusts, in the same run on the same machine:
# - ping-pong latency, 64-byte messages: `netecho bench` against `netecho serve`, beside
#   `sockperf pp` against `sockperf sr`, for TCP and UDP. sockperf reports half the round
#   trip as "latency"; it is doubled here so both columns are round trips. Then the servers
#   alone, with one client for both ("same client" rows): bench/reference's pingpong, which
#   measures as sockperf pp does (one message in flight, send, blocking recv) and speaks
#   sockperf's header, against `netecho serve --transform echo` and against `sockperf sr`.
#   sockperf pp itself cannot measure an echo: it drops a reply whose header still says a
#   client sent it (sockperf sr clears that flag), and an echo returns the flag unchanged.
# - TCP throughput, 64 KiB messages: `netecho bench` against `netecho serve` (an echo moves
#   every byte twice), beside iperf3's single-stream loopback figure.
# - UDP throughput, 1400-byte datagrams: `netecho bench --proto udp` (window 64; requests
#   sent many per sendmsg with UDP_SEGMENT, replies read glued with UDP_GRO, each checked as
#   its own datagram) against `netecho serve`, beside `iperf3 -u -b 0 -l 1400` (as fast as
#   it can send, with 64-bit counters and socket buffers of -w as large as the kernel allows,
#   so its own receiver drops as little as it can); both count what arrived: netecho its
#   replies, iperf3 what its receiver got (half of it is parity). iperf3's loss is shown.
# Prints one table. Installs sockperf and iperf3 (Debian) when missing; builds pingpong.
#
# Each throughput figure is the median of ROUNDS runs, netecho and the peer taking turns.
# The ping-pong rows take more, shorter turns (PP_ROUNDS rounds of PP_SECONDS each, default 9
# of 1 s: netecho, sockperf, netecho, sockperf...): a round trip's time drifts by a fifth
# over minutes on a 2-core VM, for sockperf as for netecho, so each round's ratio compares
# two runs a few seconds apart; a row's ratio is the median of its rounds' ratios, and the
# range columns give the lowest and highest round's ratio, the noise a reader should allow.
#
# Placement: a ping-pong round trip is about 7 us with both ends on one core and 15 us with
# one end on each, and an unpinned run is a mixture that changes from run to run, so every
# ping-pong pair runs with the same placement for both netecho and sockperf (taskset, as
# sockperf's own documentation advises for latency), each placement in rows of its own:
# "2 cores" (servers on the first cpu the script may run on, clients on the second) and
# "1 core" (both on the first). PLACES picks them (default "2 1", "1" with one cpu; "free"
# adds unpinned rows). The throughput rows run unpinned: there
# the kernel's own work for each byte moves between the cores, and both sides get the same.
#
# The build comes first, at the lowest priority, before anything is timed: under a shared
# benchmark lock, build first (`nice -n 19 cargo build --release`) and the script's build is
# then a check that finds nothing to do.
#
# Every server started is stopped, also on Ctrl-C; a failed run is said on stderr and left out
# of the medians (shown as - when every run failed).
#
#   bench/peers.sh [SECONDS] [ROUNDS]      the throughput runs and rounds, default: 5 3
#   BASE=/tmp/old/netecho bench/peers.sh   also that build (rows marked "base"), in the same
#                                          turns: a change measured against the build before it
#   ROWS=pingpong bench/peers.sh           only the ping-pong rows (about 7 minutes with BASE)
#   ROWS=tcp bench/peers.sh                only the tcp throughput row
#   PLACES="2 1 free" bench/peers.sh       ping-pong placements: 2 cores, 1 core, unpinned
#   PP_ROUNDS=15 PP_SECONDS=1 bench/peers.sh   ping-pong rounds and their length
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
secs=${1:-5}
rounds=${2:-3}
pp_rounds=${PP_ROUNDS:-9}
pp_secs=${PP_SECONDS:-1}

# The cpus this script may run on (its affinity mask, which a container may narrow): the
# pinned rows use the first two.
read -r -a cpus < <(python3 -c 'import os; print(*sorted(os.sched_getaffinity(0)))')
if [ "${#cpus[@]}" -ge 2 ]; then places=${PLACES:-2 1}; else places=${PLACES:-1}; fi

# Where the servers and the clients run (taskset prefixes), the same for netecho and its
# peers; unpinned (empty) outside the ping-pong rows.
srv_pin=(); cli_pin=()

# place WHERE: sets the prefixes for "2" (servers on the first cpu, clients on the second),
# "1" (both on the first) or "free" (no pinning); fails for anything else.
place() {
  case $1 in
    2) srv_pin=(taskset -c "${cpus[0]}"); cli_pin=(taskset -c "${cpus[1]:-${cpus[0]}}") ;;
    1) srv_pin=(taskset -c "${cpus[0]}"); cli_pin=(taskset -c "${cpus[0]}") ;;
    free) srv_pin=(); cli_pin=() ;;
    *) echo "PLACES: '$1' is not a placement (2, 1 or free)" >&2; exit 2 ;;
  esac
}

# place_name WHERE: how a row names its placement.
place_name() {
  case $1 in 2) echo "2 cores" ;; 1) echo "1 core" ;; *) echo unpinned ;; esac
}

for p in $places; do place "$p"; done
if [ "${#cpus[@]}" -lt 2 ] && [[ " $places " == *" 2 "* ]]; then
  echo "PLACES: placement 2 needs two cpus; this script may run on ${#cpus[@]}" >&2
  exit 2
fi
if [[ " $places " != " free " ]] && ! command -v taskset >/dev/null; then
  echo "PLACES: the pinned rows need taskset (Debian: util-linux); or PLACES=free" >&2
  exit 2
fi
srv_pin=(); cli_pin=()

if ! command -v sockperf >/dev/null || ! command -v iperf3 >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sockperf iperf3 >/dev/null
fi
nice -n 19 cargo build --release --quiet
netecho=target/release/netecho
# The ping-pong rows' second client, the same for netecho's server and sockperf's.
if [ "${ROWS:-}" != tcp ]; then
  nice -n 19 cargo build --release --quiet --manifest-path bench/reference/Cargo.toml --bin pingpong
fi
pingpong=bench/reference/target/release/pingpong

# netecho_bench ARGS...: bench's csv row against a fresh netecho server ($1 is the protocol),
# empty (and said on stderr) when the run failed.
netecho_bench() {
  local proto=$1 row err status=0
  shift
  start_server "${srv_pin[@]}" "$netecho" -q serve --proto "$proto" --addr 127.0.0.1:0
  err=$(mktemp -p "$bench_dir")
  row=$("${cli_pin[@]}" "$netecho" bench --proto "$proto" "$@" --format csv "$addr" 2>"$err" | tail -n 1) || status=$?
  stop "$pid"
  if [ "$status" != 0 ]; then
    failed "netecho bench --proto $proto $*: exit $status" "$(cat "$err")"
    row=
  fi
  echo "$row"
}

# netecho_rtt PROTO: "mean p50 p99" of netecho's round trips, microseconds.
netecho_rtt() {
  local row
  row=$(netecho_bench "$1" --clients 1 --window 1 --size 64 --duration "${pp_secs}s")
  # csv: ...,mean_us(8),p50_us(9),p99_us(10),...
  if [ -z "$row" ]; then echo "- - -"; return; fi
  awk -F, '{ print $8, $9, $10 }' <<<"$row"
}

# sockperf_server PROTO: starts `sockperf sr` on a free port; sets $pid, $port and $flag
# (--tcp or nothing, for sockperf's client too).
sockperf_server() {
  port=$(free_port)
  flag=$([ "$1" = tcp ] && echo --tcp || true)
  "${srv_pin[@]}" sockperf sr $flag -i 127.0.0.1 -p "$port" >/dev/null 2>&1 &
  pid=$!
  track "$pid"
  # sockperf says nothing when it listens; one that never binds fails its run.
  bound "$1" "$port" || true
}

# sockperf_rtt PROTO: "mean p50 p99" of sockperf's round trips (twice its latency).
sockperf_rtt() {
  local port flag pid log
  sockperf_server "$1"
  log=$("${cli_pin[@]}" sockperf pp $flag -i 127.0.0.1 -p "$port" -t "$pp_secs" -m 64 2>&1 | sed 's/\x1b\[[0-9;]*m//g') || true
  stop "$pid"
  if ! grep -q 'avg-latency=' <<<"$log"; then
    failed "sockperf pp $flag" "$log"
    echo "- - -"
    return
  fi
  awk '/avg-latency=/ { sub(/.*avg-latency=/, ""); mean = $1 }
       /percentile 50.000 =/ { p50 = $NF }
       /percentile 99.000 =/ { p99 = $NF }
       END { printf "%.1f %.1f %.1f\n", 2 * mean, 2 * p50, 2 * p99 }' <<<"$log"
}

# same_client_rtt PROTO SERVER: "mean p50 p99" of bench/reference's pingpong client (one
# client for both servers) against SERVER: netecho (`serve --transform echo`: the client
# wants its bytes back) or sockperf (`sockperf sr`).
same_client_rtt() {
  local proto=$1 port flag pid to out status=0
  if [ "$2" = sockperf ]; then
    sockperf_server "$proto"
    to=127.0.0.1:$port
  elif try_server "${srv_pin[@]}" "$netecho" -q serve --proto "$proto" --transform echo --addr 127.0.0.1:0; then
    to=$addr
  else
    echo "- - -"
    return
  fi
  out=$("${cli_pin[@]}" "$pingpong" "$proto" "$to" 64 "$pp_secs" 2>&1) || status=$?
  stop "$pid"
  if [ "$status" != 0 ]; then
    failed "pingpong $proto against $2 ($netecho)" "$out"
    echo "- - -"
    return
  fi
  # round_trips=N mean_us=A p50_us=B p99_us=C
  awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
         print v["mean_us"], v["p50_us"], v["p99_us"] }' <<<"$out"
}

# MB/s (10^6 bytes) of reply bytes for netecho, and of iperf3's single stream.
netecho_mbps() {
  local row
  row=$(netecho_bench tcp --clients 1 --window 4 --size 65536 --duration "${secs}s")
  if [ -z "$row" ]; then echo -; return; fi
  awk -F, '{ print $7 }' <<<"$row"
}

# netecho_udp_mbps: MB/s of udp replies, 1400-byte datagrams, window 64.
netecho_udp_mbps() {
  local row
  row=$(netecho_bench udp --clients 1 --window 64 --size "$udp_size" --duration "${secs}s")
  if [ -z "$row" ]; then echo -; return; fi
  awk -F, '{ print $7 }' <<<"$row"
}

udp_size=1400
# iperf3's -w: SO_SNDBUF and SO_RCVBUF of both ends, within what the kernel grants (iperf3
# fails when the kernel gives less than asked).
iperf3_buf=$(( $(sysctl -n net.core.wmem_max) < $(sysctl -n net.core.rmem_max) ? $(sysctl -n net.core.wmem_max) : $(sysctl -n net.core.rmem_max) ))
iperf3_buf=$(( iperf3_buf < 4194304 ? iperf3_buf : 4194304 ))

# iperf3_mbps [ARGS...]: MB/s that iperf3's receiver got (udp: what arrived, not what was sent).
iperf3_mbps() {
  local port pid json
  port=$(free_port)
  iperf3 -s -1 -p "$port" >/dev/null 2>&1 &
  pid=$!
  track "$pid"
  # iperf3 says nothing when it listens: a pause for it to bind.
  sleep 0.5
  if ! json=$(iperf3 -c 127.0.0.1 -p "$port" -t "$secs" -J "$@" 2>&1); then
    stop "$pid"
    failed "iperf3 -c" "$json"
    echo -
    return
  fi
  stop "$pid"
  python3 -c 'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 8e6, 1))' <<<"$json"
  # What iperf3's receiver lost, udp only, for the note under the table.
  python3 -c 'import json,sys; s=json.load(sys.stdin)["end"]["sum"]; print(round(s.get("lost_percent", 0), 1))' <<<"$json" >>"$bench_dir/iperf3_lost" 2>/dev/null || true
}

# row CELLS...: one line of the table.
row() { printf '%-26s %12s %12s %12s %10s %10s %9s %11s %11s\n' "$@"; }

# spread VALUES...: "lowest-highest" of the numeric values; `-` when there are none.
spread() {
  numbers "$@" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { if (NR) print lo "-" hi; else print "-" }'
}

# pingpong_row PROTO LABEL: the rounds of one ping-pong row in turns (netecho bench against
# netecho, sockperf against itself, the base build; then the pingpong client against netecho,
# sockperf sr and the base build), printed as its rows: medians of the round trips, and the
# median and range of the rounds' ratios (a round whose runs failed is left out).
pingpong_row() {
  local proto=$1 label=$2 a b c d e f g h
  : >"$bench_dir/pp"
  for _ in $(seq "$pp_rounds"); do
    read -r a b _ < <(netecho_rtt "$proto")
    read -r c d _ < <(sockperf_rtt "$proto")
    echo "own $a $b $c $d" >>"$bench_dir/pp"
    if [ -n "${BASE:-}" ]; then
      read -r a b _ < <(netecho=$BASE netecho_rtt "$proto")
      echo "base $a $b $c $d" >>"$bench_dir/pp"
    fi
    read -r e f _ < <(same_client_rtt "$proto" netecho)
    read -r g h _ < <(same_client_rtt "$proto" sockperf)
    echo "same $e $f $g $h" >>"$bench_dir/pp"
    if [ -n "${BASE:-}" ]; then
      read -r e f _ < <(netecho=$BASE same_client_rtt "$proto" netecho)
      echo "same_base $e $f $g $h" >>"$bench_dir/pp"
    fi
  done
  pingpong_cells own "$label"
  [ -z "${BASE:-}" ] || pingpong_cells base "  base build"
  pingpong_cells same "  same client: pingpong"
  [ -z "${BASE:-}" ] || pingpong_cells same_base "  same client, base build"
}

# pingpong_cells KEY LABEL: one row from the rounds kept under KEY (netecho's mean and p50,
# the peer's): the medians of each column, and the median and range of the rounds' ratios.
pingpong_cells() {
  local nm=() np=() sm=() sp=() rm=() rp=() a b c d
  while read -r a b c d; do
    nm+=("$a"); np+=("$b"); sm+=("$c"); sp+=("$d")
    rm+=("$(ratio "$a" "$c")"); rp+=("$(ratio "$b" "$d")")
  done < <(awk -v k="$1" '$1 == k { print $2, $3, $4, $5 }' "$bench_dir/pp")
  row "$2" "$(median "${nm[@]}")" "$(median "${np[@]}")" "$(median "${sm[@]}")" "$(median "${sp[@]}")" \
    "$(median "${rm[@]}")" "$(median "${rp[@]}")" "$(spread "${rm[@]}")" "$(spread "${rp[@]}")"
}

if [ "${ROWS:-}" = pingpong ]; then
  echo "# netecho against sockperf on loopback"
else
  echo "# netecho against sockperf and iperf3 on loopback, throughput: ${secs} s per run, median of $rounds rounds"
fi
[ "${ROWS:-}" = tcp ] || echo "# ping-pong: $pp_rounds rounds of $pp_secs s in turns, ratio = median of the rounds' ratios"
echo "# $(nproc) cores, $(uname -sr), $(date -u +%Y-%m-%d), sockperf $(sockperf --version 2>&1 | grep -io 'version [^ ,]*' | head -1 | cut -d' ' -f2), $(iperf3 --version | head -1 | cut -d' ' -f1-2)"
row measurement netecho_mean netecho_p50 peer_mean peer_p50 ratio_mean ratio_p50 range_mean range_p50
# ROWS=tcp: no ping-pong rows (an empty list of placements).
[ "${ROWS:-}" != tcp ] || places=
for proto in tcp udp; do for where in $places; do
  place "$where"
  pingpong_row "$proto" "$proto RTT us (64 B) $(place_name "$where")"
done; done
srv_pin=(); cli_pin=()
range_note="# ping-pong ratios: the median of $pp_rounds rounds' ratios (netecho / sockperf, runs seconds apart);
# range: the lowest and highest round's ratio. A placement's first row: netecho bench against
# netecho serve beside sockperf pp against sockperf sr; \"same client\": bench/reference's pingpong
# (as sockperf pp) against netecho serve --transform echo beside it against sockperf sr."
placement_note="# ping-pong placement, the same for netecho and sockperf: 2 cores = servers on cpu ${cpus[0]} and
# clients on cpu ${cpus[1]:-${cpus[0]}}, 1 core = both on cpu ${cpus[0]} (taskset), unpinned = where the scheduler puts them."
if [ "${ROWS:-}" = pingpong ]; then
  echo "# ratio: netecho / peer. Targets: udp latency ratio <= 1.05, tcp <= 1.00."
  echo "$range_note"
  echo "$placement_note"
  echo "# load average $(cut -d' ' -f1-3 /proc/loadavg) at the end: other work on the machine moves every figure."
  bench_end
  exit
fi
nt=(); it=(); bt=()
for _ in $(seq "$rounds"); do
  nt+=("$(netecho_mbps)"); it+=("$(iperf3_mbps)")
  [ -z "${BASE:-}" ] || bt+=("$(netecho=$BASE netecho_mbps)")
done
n=$(median "${nt[@]}"); i=$(median "${it[@]}")
row "tcp MB/s (64 KiB)" "$n" - "$i" - "$(ratio "$n" "$i")" - - -
if [ -n "${BASE:-}" ]; then
  b=$(median "${bt[@]}")
  row "  base build" "$b" - "$i" - "$(ratio "$b" "$i")" - - -
fi
if [ "${ROWS:-}" = tcp ]; then
  echo "# ratio: netecho / peer. Target: tcp throughput ratio >= 0.60; unpinned, netecho and iperf3 alike."
  echo "# load average $(cut -d' ' -f1-3 /proc/loadavg) at the end: other work on the machine moves every figure."
  bench_end
  exit
fi
nt=(); it=(); bt=()
for _ in $(seq "$rounds"); do
  nt+=("$(netecho_udp_mbps)"); it+=("$(iperf3_mbps -u -b 0 -l "$udp_size" --udp-counters-64bit -w "$iperf3_buf")")
  [ -z "${BASE:-}" ] || bt+=("$(netecho=$BASE netecho_udp_mbps)")
done
n=$(median "${nt[@]}"); i=$(median "${it[@]}")
row "udp MB/s ($udp_size B)" "$n" - "$i" - "$(ratio "$n" "$i")" - - -
if [ -n "${BASE:-}" ]; then
  b=$(median "${bt[@]}")
  row "  base build" "$b" - "$i" - "$(ratio "$b" "$i")" - - -
fi
echo "# ratio: netecho / peer. Targets: udp latency ratio <= 1.05, tcp <= 1.00; throughput ratio:"
echo "# tcp >= 0.60, udp >= 0.50. iperf3 -u -w $iperf3_buf lost $(tr '\n' ' ' <"$bench_dir/iperf3_lost" 2>/dev/null)% at its receiver."
echo "$range_note"
echo "$placement_note"
echo "# The throughput rows run unpinned, netecho and iperf3 alike."
echo "# load average $(cut -d' ' -f1-3 /proc/loadavg) at the end: other work on the machine moves every figure."
echo "# left out: the p99 both sides measure (not shown); netecho's MB/s counts"
echo "# reply bytes only, though an echo moves each byte both ways; failed runs, from the medians."
bench_end
