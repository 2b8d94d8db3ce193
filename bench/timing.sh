#!/usr/bin/env bash
# The speed figures the tests leave out, as the tests must pass on a loaded machine: how near
# its target a relay's --rate holds throughput, how much a relay's --delay adds to the median
# round trip, and the order of `lab --quick`'s rows by p50 from run to run.
# Stops every server and relay it started, also on Ctrl-C; says when a run failed.
#
#   bench/timing.sh [RUNS] [SECONDS]      default: 3 runs, 3 s each
#   NETECHO=target/debug/netecho bench/timing.sh 1 1   # another binary, no release build
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
runs=${1:-3}
secs=${2:-3}
netecho=${NETECHO:-}
if [ -z "$netecho" ]; then
  cargo build --release --quiet
  netecho=target/release/netecho
fi

# field JSON PATH: one number from a bench run's JSON (`-` when absent).
field() { jq -r "$2 // \"-\"" <<<"$1" 2>/dev/null || echo -; }

# bench_json ARGS...: the first run of `netecho bench ARGS --format json`; empty on failure.
bench_json() {
  local out
  if out=$("$netecho" bench "$@" --format json 2>"$bench_dir/bench.err"); then
    jq -c '.runs[0]' <<<"$out"
  else
    failed "bench $*" "$(cat "$bench_dir/bench.err")"
  fi
}

echo "# netecho relay and lab timing, $runs runs; $(nproc) cores, $(uname -sr), $(date -u +%F)"
echo "# load: $(cut -d' ' -f1-3 /proc/loadavg)"

start_server "$netecho" serve -q --addr 127.0.0.1:0 --transform echo
tcp_server=$addr
start_server "$netecho" relay --rate up:8mbit tcp://127.0.0.1:0 "tcp://$tcp_server"
rate_relay=$addr
start_server "$netecho" serve -q --proto udp --addr 127.0.0.1:0
udp_server=$addr
start_server "$netecho" relay --delay up:50ms udp://127.0.0.1:0 "udp://$udp_server"
delay_relay=$addr

rates=() plain=() delayed=()
for _ in $(seq "$runs"); do
  run=$(bench_json -P 1 -s 16384 -w 8 -d "${secs}s" --expect echo "$rate_relay")
  rates+=("$(field "$run" .mb_per_s)")
  run=$(bench_json --proto udp -n 40 -w 1 "$udp_server")
  plain+=("$(awk -v v="$(field "$run" .latency_us.p50)" 'BEGIN { if (v ~ /^[0-9.]+$/) printf "%.2f", v / 1000; else print "-" }')")
  run=$(bench_json --proto udp -n 40 -w 1 "$delay_relay")
  delayed+=("$(awk -v v="$(field "$run" .latency_us.p50)" 'BEGIN { if (v ~ /^[0-9.]+$/) printf "%.2f", v / 1000; else print "-" }')")
done
printf '%-34s %-10s %s\n' "what" "median" "runs"
printf '%-34s %-10s %s\n' "relay --rate up:8mbit, MB/s (1.00)" "$(median "${rates[@]}")" "${rates[*]}"
printf '%-34s %-10s %s\n' "udp p50 direct, ms" "$(median "${plain[@]}")" "${plain[*]}"
printf '%-34s %-10s %s\n' "udp p50 via --delay up:50ms, ms" "$(median "${delayed[@]}")" "${delayed[*]}"

echo
echo "# lab --quick: each row's p50 (us) per run, and its place by p50 in that run (1 = fastest)"
for i in $(seq "$runs"); do
  if "$netecho" lab --quick --format json >"$bench_dir/lab$i.json" 2>"$bench_dir/lab.err"; then
    :
  else
    failed "lab --quick, run $i" "$(cat "$bench_dir/lab.err")"
    echo '{"rows": []}' >"$bench_dir/lab$i.json"
  fi
done
jq -r -s '
  [.[] | [.rows[] | {name: "\(.proto) \(.family)", p50: .latency_us.p50}]
       | (sort_by(.p50) | map(.name)) as $order
       | map(.name as $n | . + {place: (($order | index($n)) + 1)})]
  | (.[0] | map(.name)) as $names
  | $names[] as $n
  | [$n] + [.[] | (map(select(.name == $n))[0] // {p50: "-", place: "-"}) | "\(.p50) (\(.place))"]
  | @tsv' "$bench_dir"/lab*.json | column -t -s $'\t'
bench_end
