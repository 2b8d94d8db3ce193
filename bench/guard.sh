#!/usr/bin/env bash
# What the datagram guard costs on the echo hot path: the server's own address, the loop
# ports, the per-source rate and the repeat check run for every datagram. UDP echo from
# 127.0.0.1 (so no default rate applies: a lab or bench on one machine sees none) under the
# event model (recvmmsg batches) and the threads model (one recvfrom per datagram), this
# build against a build of BEFORE, taking turns, the median of ROUNDS runs each.
#
# BEFORE is a commit (built once, from `git archive`, in target/guard-before) or, with
# NETECHO_BEFORE=path, a netecho binary built elsewhere.
#
# The server binds ADDR: 127.0.0.1 by default; 0.0.0.0 measures the wildcard bind, where each
# datagram is read with its destination (IP_PKTINFO) and answered from it, the client still
# sending to 127.0.0.1.
#
# Leaves out: loss (loopback has none), other protocols (the guard is for datagrams only).
#
#   bench/guard.sh BEFORE [SECONDS] [ROUNDS] [ADDR]   default 3, 3, 127.0.0.1
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
before_rev=${1:?usage: bench/guard.sh BEFORE [SECONDS] [ROUNDS]}
secs=${2:-3}
rounds=${3:-3}
bind=${4:-127.0.0.1}

cargo build --release --quiet
after=target/release/netecho
before=${NETECHO_BEFORE:-}
if [ -z "$before" ]; then
  src=target/guard-before/src-$(git rev-parse --short "$before_rev")
  if [ ! -x "$src/target/release/netecho" ]; then
    mkdir -p "$src"
    git archive "$before_rev" | tar -x -C "$src"
    (cd "$src" && cargo build --release --quiet)
  fi
  before=$src/target/release/netecho
fi

# rate_p50 NETECHO MODEL: "requests/s p50_us" of one bench run against a fresh server.
rate_p50() {
  local bin=$1 model=$2 csv err status=0
  start_server "$bin" -q serve --proto udp --addr "$bind:0" --model "$model"
  addr=127.0.0.1:${addr##*:}
  err=$(mktemp -p "$bench_dir")
  csv=$("$after" bench --proto udp --clients 4 --window 16 --size 64 --duration "${secs}s" \
    --format csv "$addr" 2>"$err") || status=$?
  stop "$pid"
  if [ "$status" != 0 ]; then
    failed "$bin --model $model: bench exit $status" "$(cat "$err")"
    echo "- -"
    return
  fi
  # Columns by name: the CSV's order is not this script's business.
  awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
           END { print $col["requests_per_s"], $col["p50_us"] }' <<<"$csv"
}

printf '# udp echo on loopback, server on %s, 4 clients x window 16, 64-byte messages, %ss per run, median of %s\n' \
  "$bind" "$secs" "$rounds"
printf '# before: %s (%s), after: %s\n' "$before_rev" "$before" "$(git rev-parse --short HEAD)"
printf '%-8s %14s %14s %6s %11s %11s\n' model before_req_s after_req_s ratio before_p50 after_p50
for model in event threads; do
  b_rate=() a_rate=() b_p50=() a_p50=()
  for _ in $(seq "$rounds"); do
    read -r r p < <(rate_p50 "$before" "$model")
    b_rate+=("$r") b_p50+=("$p")
    read -r r p < <(rate_p50 "$after" "$model")
    a_rate+=("$r") a_p50+=("$p")
  done
  br=$(median "${b_rate[@]}") ar=$(median "${a_rate[@]}")
  printf '%-8s %14s %14s %6s %11s %11s\n' "$model" "$br" "$ar" "$(ratio "$ar" "$br")" \
    "$(median "${b_p50[@]}")" "$(median "${a_p50[@]}")"
done
bench_end
