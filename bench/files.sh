#!/usr/bin/env bash
# File transfer throughput, netecho beside socat in the same run on the same machine:
# - a 1 GiB file over tcp and unix: `netecho get` from `netecho serve --files` (length-
#   prefixed chunks, SHA-256 on both sides, temporary file, rename), beside `socat -u` copying the
#   same file into a file over the same kind of socket (no hash: the bare cost).
# - a 64 MiB file over udp with window 1, 8 and 64, with no loss and with 5% of the server's
#   datagrams dropped on purpose (`serve --drop 0.05`): MB/s and blocks sent again.
# Each 1 GiB figure is the best of ROUNDS runs (env, default 3), netecho and socat taking
# turns, each after sync(1), so neither pays for the other's dirty pages. Prints one table,
# then what it leaves out. Installs socat (Debian) when missing. Needs about 3 GiB in $TMPDIR.
# Stops every server it started, also on Ctrl-C; a failed run is said and shown as `-`.
#
#   bench/files.sh [SIZE_MIB]     default: 1024 (the udp rows use SIZE_MIB/16)
#   ROUNDS=1 bench/files.sh 16    a quick look
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
big_mib=${1:-1024}
udp_mib=$((big_mib / 16))
rounds=${ROUNDS:-3}

if ! command -v socat >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq socat >/dev/null
fi
cargo build --release --quiet
netecho=$PWD/target/release/netecho

work=$bench_dir/work
mkdir -p "$work/files" "$work/out"
head -c "$((big_mib << 20))" /dev/urandom >"$work/files/big"
head -c "$((udp_mib << 20))" /dev/urandom >"$work/files/mid"

now() { date +%s.%N; }
mbps() { awk -v b="$1" -v t0="$2" -v t1="$3" 'BEGIN { printf "%.0f", b / 1e6 / (t1 - t0) }'; }

# serve PROTO ADDR [ARGS...]: starts a file server; sets $pid and $addr (in this shell, so
# the script can stop it).
serve() {
  local proto=$1 at=$2
  shift 2
  start_server "$netecho" serve --proto "$proto" --addr "$at" --files "$work/files" "$@"
}

# netecho_get PROTO ADDR NAME [ARGS...]: "MB/s retransmitted" from get's summary line;
# "- -" when the transfer failed or the file differs.
netecho_get() {
  local proto=$1 addr=$2 name=$3 log
  shift 3
  rm -f "$work/out/$name"
  sync
  if ! log=$("$netecho" get --proto "$proto" "$@" "$addr" "$name" -o "$work/out/$name" 2>&1); then
    failed "netecho get --proto $proto $* $name" "$log"
    echo "- -"
    return
  fi
  if ! cmp -s "$work/files/$name" "$work/out/$name"; then
    failed "netecho get --proto $proto $* $name: the file differs" "$log"
    echo "- -"
    return
  fi
  rm -f "$work/out/$name"
  sed -n 's/.*(\([0-9.]*\) MB\/s).*/\1/p' <<<"$log" | head -n 1 | tr '\n' ' '
  sed -n 's/.*retransmitted \([0-9]*\).*/\1/p' <<<"$log" | head -n 1
  echo
}

# socat_copy LISTEN CONNECT: MB/s of socat copying the big file into a file; `-` if it failed.
socat_copy() {
  local t0 t1 rx
  rm -f "$work/out/copy"
  sync
  socat -u "$1" "OPEN:$work/out/copy,creat,trunc" 2>"$work/socat.err" &
  rx=$!
  track "$rx"
  # socat says nothing when it listens: a pause for it to bind.
  sleep 0.3
  t0=$(now)
  if ! socat -u "FILE:$work/files/big" "$2" 2>>"$work/socat.err" || ! wait "$rx"; then
    stop "$rx"
    failed "socat $1 <- $2" "$(cat "$work/socat.err")"
    echo -
    return
  fi
  t1=$(now)
  if ! cmp -s "$work/files/big" "$work/out/copy"; then
    failed "socat $1 <- $2: the copy differs"
    echo -
    return
  fi
  rm -f "$work/out/copy"
  mbps "$((big_mib << 20))" "$t0" "$t1"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# best VALUES...: the largest number; `-` when every run failed.
best() { numbers "$@" | sort -g | tail -n 1 | grep . || echo -; }

# big_row PROTO ADDR LISTEN CONNECT: the best of ROUNDS for netecho and for socat, in turns.
big_row() {
  local ne=() so=() n s
  for _ in $(seq "$rounds"); do
    read -r n _ <<<"$(netecho_get "$1" "$2" big)"
    ne+=("$n")
    so+=("$(socat_copy "$3" "$4")")
  done
  n=$(best "${ne[@]}")
  s=$(best "${so[@]}")
  rows+=("$1|${big_mib} MiB|-|-|$n|-|$s|$(ratio "$n" "$s")")
}

rows=()
port=$(free_port)
serve tcp 127.0.0.1:0
big_row tcp "$addr" "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr" "TCP:127.0.0.1:$port"
stop "$pid"
serve unix "$work/files.sock"
big_row unix "$addr" "UNIX-LISTEN:$work/socat.sock,unlink-early" "UNIX-CONNECT:$work/socat.sock"
stop "$pid"

for loss in 0 0.05; do
  serve udp 127.0.0.1:0 --drop "$loss"
  for w in 1 8 64; do
    read -r ne re <<<"$(netecho_get udp "$addr" mid --window "$w")"
    rows+=("udp|${udp_mib} MiB|$w|$(awk -v l="$loss" 'BEGIN { printf "%g%%", l * 100 }')|$ne|$re|-|-")
  done
  stop "$pid"
done

printf '%-5s %9s %6s %5s %12s %14s %12s %8s\n' proto size window loss "netecho MB/s" retransmitted "socat MB/s" ratio
for r in "${rows[@]}"; do
  IFS='|' read -r p s w l n re so ra <<<"$r"
  printf '%-5s %9s %6s %5s %12s %14s %12s %8s\n' "$p" "$s" "$w" "$l" "$n" "$re" "$so" "$ra"
done
echo
echo "$(nproc) cores, $(uname -sr), $(date -u +%Y-%m-%d); bench/files.sh $big_mib, best of $rounds"
echo "# left out: socat checks no hash and writes no temporary file (the bare copy); the udp rows"
echo "# have no socat figure (socat has no windowed datagram transfer); a run shown as - failed."
bench_end
