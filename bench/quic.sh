#!/usr/bin/env bash
# QUIC beside tcp and TLS, and against a QUIC server that is not netecho's:
# - netecho serve over tcp, tcp with TLS 1.3 (--tls), quic (a stream per message), quic with
#   --framing line (one stream per connection) and quic datagrams (--quic-datagrams);
# - quinn_echo (bench/reference/src/bin/quinn_echo.rs): an upper-casing echo written as quinn's
#   own examples write a server, a stream per message, on a multi-purpose tokio runtime. It
#   is the anchor: the ratio netecho / quinn_echo compares the servers, since the same
#   netecho bench client (its QUIC thread and socket pair included) measures both.
# Two measurements per row, `netecho bench` as the client:
# - ping-pong: 64-byte messages, one client, one in flight: p50 and p99 round trip, us;
# - throughput: 1 KiB messages, 4 clients, 16 in flight each: messages/s.
# Each figure is the median of ROUNDS runs, the rows taking turns, so a slow minute of the
# machine hits all of them. Every server started is stopped, also on Ctrl-C; a failed run is
# said on stderr and shown as -.
#
#   bench/quic.sh [SECONDS] [ROUNDS]      default: 5 3
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
secs=${1:-5}
rounds=${2:-3}

cargo build --release --quiet
(cd bench/reference && cargo build --release --quiet --bin quinn_echo)
netecho=target/release/netecho
quinn_echo=bench/reference/target/release/quinn_echo

# secure_server CMD...: starts a server whose `listening` line may carry a certificate's
# fingerprint (listening PROTO ADDR tls sha256 FP); sets $pid, $addr and $pin.
secure_server() {
  local out
  out=$(mktemp -p "$bench_dir")
  "$@" >"$out" 2>/dev/null &
  pid=$!
  track "$pid"
  for _ in $(seq 200); do
    [ -s "$out" ] && break
    sleep 0.05
  done
  pin=
  read -r _ _ addr _ _ pin <"$out" || true
}

# run ROW MEASURE: bench's csv row for one row ("tcp", "tls", "quic", "quic-framed",
# "quic-datagrams", "quinn_echo") and one measurement ("rtt" or "load"); empty when it failed.
run() {
  local row=$1 serve=() client=() load=() out status=0
  case $row in
    tcp) serve=("$netecho" -q serve --proto tcp); client=(--proto tcp) ;;
    tls) serve=("$netecho" -q serve --proto tcp --tls); client=(--proto tcp --tls) ;;
    quic) serve=("$netecho" -q serve --proto quic); client=(--proto quic) ;;
    quic-framed)
      serve=("$netecho" -q serve --proto quic --framing line)
      client=(--proto quic --framing line) ;;
    quic-datagrams)
      serve=("$netecho" -q serve --proto quic --quic-datagrams)
      client=(--proto quic --quic-datagrams) ;;
    quinn_echo) serve=("$quinn_echo" 127.0.0.1:0); client=(--proto quic) ;;
  esac
  [ "$row" = quinn_echo ] || serve+=(--addr 127.0.0.1:0)
  case $2 in
    rtt) load=(--clients 1 --window 1 --size 64) ;;
    load) load=(--clients 4 --window 16 --size 1024) ;;
  esac
  secure_server "${serve[@]}"
  [ -n "$pin" ] && client+=(--pin "$pin")
  out=$("$netecho" -q bench "${client[@]}" "${load[@]}" --duration "${secs}s" --format csv "$addr" 2>&1 | tail -n 1) || status=$?
  stop "$pid"
  if [ "$status" != 0 ] || [ -z "$addr" ]; then
    failed "$row $2: exit $status" "$out"
    out=
  fi
  echo "$out"
}

rows=(tcp tls quic quic-framed quic-datagrams quinn_echo)
declare -A p50 p99 rate
for _ in $(seq "$rounds"); do
  for row in "${rows[@]}"; do
    # csv: ...,requests_per_s(6),mb_per_s(7),mean_us(8),p50_us(9),p99_us(10),...
    line=$(run "$row" rtt)
    p50[$row]+="$(awk -F, '{ print $9 }' <<<"${line:--}") "
    p99[$row]+="$(awk -F, '{ print $10 }' <<<"${line:--}") "
    line=$(run "$row" load)
    rate[$row]+="$(awk -F, '{ print $6 }' <<<"${line:--}") "
  done
done

echo "# QUIC beside tcp and TLS on loopback, ${secs} s per run, median of $rounds rounds"
echo "# $(nproc) cores, $(uname -sr), $(date -u +%Y-%m-%d); netecho bench is the client throughout"
printf '%-16s %10s %10s %12s %14s\n' server p50_us p99_us msg_per_s vs_quinn_echo
q_rate=$(median ${rate[quinn_echo]})
for row in "${rows[@]}"; do
  r=$(median ${rate[$row]})
  vs=-
  case $row in quic | quic-framed | quic-datagrams) vs=$(ratio "$r" "$q_rate") ;; esac
  printf '%-16s %10s %10s %12s %14s\n' "$row" "$(median ${p50[$row]})" "$(median ${p99[$row]})" "$r" "$vs"
done
echo "# msg_per_s: 1 KiB messages, 4 clients x 16 in flight; p50/p99: 64 B ping-pong round trips."
echo "# vs_quinn_echo: netecho's msg/s / quinn_echo's (bench/reference), the same client for both."
bench_end
