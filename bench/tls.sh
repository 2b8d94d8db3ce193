#!/usr/bin/env bash
# TLS echo over tcp on loopback: netecho's server (rustls) against an anchor that is not
# netecho, socat with OpenSSL echoing (OPENSSL-LISTEN ... PIPE), in the same run:
# - throughput: `netecho bench --tls` (1 client, 16 KiB messages, 4 in flight) against
#   `netecho serve --tls --transform echo` and against socat; both servers echo unchanged,
#   both are measured by the same client, so the ratio compares the two servers' TLS.
# - handshakes per second: `openssl s_time -new` (a full TLS 1.3 handshake per connection,
#   no data) against both servers. socat forks a process per connection (as --model fork
#   would), netecho serves every connection in its event loops.
# Both servers run with TCP_NODELAY (socat also reads 64 KiB at a time): each at its best.
# Why socat and not openssl s_server: s_server cannot echo bytes (-rev reverses lines of
# text and answers with a banner), and s_time alone measures only handshakes or HTTP GETs.
# socat is the TLS echo server a lab already uses, with OpenSSL inside.
#
# Each figure is the median of ROUNDS runs, netecho and socat taking turns. Prints one table.
#
#   bench/tls.sh [SECONDS] [ROUNDS]      default: 5 3
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
secs=${1:-5}
rounds=${2:-3}

for tool in socat openssl; do
  command -v "$tool" >/dev/null || {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq socat openssl >/dev/null
  }
done
cargo build --release --quiet
netecho=target/release/netecho

# One certificate for both servers, so both do the same signature per handshake (P-256).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 \
  -keyout "$bench_dir/key.pem" -out "$bench_dir/cert.pem" 2>/dev/null
# Pinned: a self-signed certificate is its own CA, which --ca refuses as a server's.
pin=$(openssl x509 -in "$bench_dir/cert.pem" -noout -fingerprint -sha256 | cut -d= -f2)
tls=(--tls --pin "$pin")

# start_netecho: a TLS echo server; sets $pid and $addr.
start_netecho() {
  start_server "$netecho" -q serve --tls --transform echo --nodelay --addr 127.0.0.1:0 \
    --cert "$bench_dir/cert.pem" --key "$bench_dir/key.pem"
}

# start_socat: socat's TLS echo server; sets $pid and $addr.
start_socat() {
  local port
  port=$(free_port)
  # nodelay and 64 KiB reads: without them socat writes 8 KiB pieces that Nagle holds back
  # for the peer's delayed ACK, and moves a fiftieth of this.
  socat -b 65536 "OPENSSL-LISTEN:$port,reuseaddr,fork,nodelay,cert=$bench_dir/cert.pem,key=$bench_dir/key.pem,verify=0" \
    PIPE 2>/dev/null &
  pid=$!
  track "$pid"
  addr=127.0.0.1:$port
  for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return
    sleep 0.1
  done
  failed "socat did not listen on $port"
}

# mbps SERVER: MB/s of replies through TLS from one client, or `-`.
mbps() {
  local row err status=0
  "start_$1"
  err=$(mktemp -p "$bench_dir")
  row=$("$netecho" bench "${tls[@]}" --expect echo --clients 1 --window 4 --size 16k \
    --duration "${secs}s" --format csv "$addr" 2>"$err" | tail -n 1) || status=$?
  stop "$pid"
  if [ "$status" != 0 ] || [ -z "$row" ]; then
    failed "netecho bench --tls against $1: exit $status" "$(cat "$err")"
    echo -
    return
  fi
  awk -F, '{ print $7 }' <<<"$row"
}

# handshakes SERVER: TLS 1.3 handshakes per second by openssl s_time, or `-`.
handshakes() {
  local log
  "start_$1"
  log=$(openssl s_time -connect "$addr" -new -tls1_3 -time "$secs" 2>&1) || true
  stop "$pid"
  # "N connections in S real seconds" (whole seconds).
  if ! grep -q 'connections in [0-9]* real seconds' <<<"$log"; then
    failed "openssl s_time against $1" "$log"
    echo -
    return
  fi
  awk '/connections in [0-9]+ real seconds/ && $4 > 0 { printf "%.0f\n", $1 / $4 }' <<<"$log"
}

echo "# TLS echo over tcp on loopback: netecho serve --tls (rustls) against socat + OpenSSL,"
echo "# ${secs} s per run, median of $rounds rounds; $(nproc) cores, $(uname -sr), $(date -u +%Y-%m-%d),"
echo "# $(socat -V | sed -n 2p | cut -d' ' -f1-3), $(openssl version | cut -d' ' -f1-2)"
nt=(); st=(); nh=(); sh=()
for _ in $(seq "$rounds"); do
  nt+=("$(mbps netecho)"); st+=("$(mbps socat)")
  nh+=("$(handshakes netecho)"); sh+=("$(handshakes socat)")
done
n=$(median "${nt[@]}"); s=$(median "${st[@]}")
a=$(median "${nh[@]}"); b=$(median "${sh[@]}")
printf '%-30s %10s %10s %7s\n' measurement netecho socat ratio
printf '%-30s %10s %10s %7s\n' "TLS echo MB/s (16 KiB, w 4)" "$n" "$s" "$(ratio "$n" "$s")"
printf '%-30s %10s %10s %7s\n' "TLS 1.3 handshakes/s" "$a" "$b" "$(ratio "$a" "$b")"
echo "# ratio: netecho / socat. Target: throughput ratio >= 0.80. Same client (netecho bench)"
echo "# for both servers; handshakes by openssl s_time; failed runs left out of the medians."
bench_end
