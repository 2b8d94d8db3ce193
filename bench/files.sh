#!/usr/bin/env bash
# File transfer throughput, netecho beside socat in the same run on the same machine:
# - a 1 GiB file over tcp and unix: `netecho get` from `netecho serve --files` (length-
#   prefixed chunks, SHA-256 on both sides, temporary file, rename), beside `socat -u` copying the
#   same file into a file over the same kind of socket (no hash: the bare cost).
# - a 64 MiB file over udp with window 1, 8 and 64, with no loss and with 5% of the server's
#   datagrams dropped on purpose (`serve --drop 0.05`): MB/s and blocks sent again.
# Each 1 GiB figure is the best of three runs, netecho and socat taking turns, each after
# sync(1), so neither pays for the other's dirty pages. Prints one table. Installs socat
# (Debian) when missing. Needs about 3 GiB in $TMPDIR.
#
#   bench/files.sh [SIZE_MIB]     default: 1024 (the udp rows use SIZE_MIB/16)
set -euo pipefail
cd "$(dirname "$0")/.."
big_mib=${1:-1024}
udp_mib=$((big_mib / 16))

if ! command -v socat >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq socat >/dev/null
fi
cargo build --release --quiet
netecho=$PWD/target/release/netecho

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
mkdir "$work/files" "$work/out"
head -c "$((big_mib << 20))" /dev/urandom >"$work/files/big"
head -c "$((udp_mib << 20))" /dev/urandom >"$work/files/mid"

now() { date +%s.%N; }
mbps() { awk -v b="$1" -v t0="$2" -v t1="$3" 'BEGIN { printf "%.0f", b / 1e6 / (t1 - t0) }'; }

# serve PROTO ADDR [ARGS...]: starts a file server, prints its address.
serve() {
  local proto=$1 addr=$2 out
  shift 2
  out=$(mktemp -p "$work")
  "$netecho" serve --proto "$proto" --addr "$addr" --files "$work/files" "$@" >"$out" 2>/dev/null &
  pids+=($!)
  for _ in $(seq 100); do [ -s "$out" ] && break; sleep 0.05; done
  awk 'NR==1 {print $3}' "$out"
}
stop_servers() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  pids=()
}

# netecho_get PROTO ADDR NAME [ARGS...]: "MB/s retransmitted" from get's summary line.
netecho_get() {
  local proto=$1 addr=$2 name=$3 log
  shift 3
  rm -f "$work/out/$name"
  sync
  log=$("$netecho" get --proto "$proto" "$@" "$addr" "$name" -o "$work/out/$name" 2>&1)
  cmp -s "$work/files/$name" "$work/out/$name" || { echo "netecho get: file differs" >&2; exit 1; }
  rm -f "$work/out/$name"
  sed -n 's/.*(\([0-9.]*\) MB\/s).*/\1/p' <<<"$log" | head -n 1 | tr '\n' ' '
  sed -n 's/.*retransmitted \([0-9]*\).*/\1/p' <<<"$log" | head -n 1
  echo
}

# socat_copy LISTEN CONNECT: MB/s of socat copying the big file into a file.
socat_copy() {
  local t0 t1 rx
  rm -f "$work/out/copy"
  sync
  socat -u "$1" "OPEN:$work/out/copy,creat,trunc" &
  rx=$!
  sleep 0.3
  t0=$(now)
  socat -u "FILE:$work/files/big" "$2"
  wait "$rx"
  t1=$(now)
  cmp -s "$work/files/big" "$work/out/copy" || { echo "socat: copy differs" >&2; exit 1; }
  rm -f "$work/out/copy"
  mbps "$((big_mib << 20))" "$t0" "$t1"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

max() { awk -v a="$1" -v b="$2" 'BEGIN { print (a > b ? a : b) }'; }

# big_row PROTO ADDR LISTEN CONNECT: the best of three for netecho and for socat, in turns.
big_row() {
  local ne=0 so=0 n s
  for _ in 1 2 3; do
    read -r n _ <<<"$(netecho_get "$1" "$2" big)"
    ne=$(max "$ne" "$n")
    s=$(socat_copy "$3" "$4")
    so=$(max "$so" "$s")
  done
  rows+=("$1|${big_mib} MiB|-|-|$ne|-|$so|$(awk -v a="$ne" -v b="$so" 'BEGIN { printf "%.2f", a / b }')")
}

rows=()
port=$(free_port)
big_row tcp "$(serve tcp 127.0.0.1:0)" "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr" "TCP:127.0.0.1:$port"
big_row unix "$(serve unix "$work/files.sock")" "UNIX-LISTEN:$work/socat.sock,unlink-early" "UNIX-CONNECT:$work/socat.sock"
stop_servers

for loss in 0 0.05; do
  addr=$(serve udp 127.0.0.1:0 --drop "$loss")
  for w in 1 8 64; do
    read -r ne re <<<"$(netecho_get udp "$addr" mid --window "$w")"
    rows+=("udp|${udp_mib} MiB|$w|$(awk -v l="$loss" 'BEGIN { printf "%g%%", l * 100 }')|$ne|$re|-|-")
  done
  stop_servers
done

printf '%-5s %9s %6s %5s %12s %14s %12s %8s\n' proto size window loss "netecho MB/s" retransmitted "socat MB/s" ratio
for r in "${rows[@]}"; do
  IFS='|' read -r p s w l n re so ra <<<"$r"
  printf '%-5s %9s %6s %5s %12s %14s %12s %8s\n' "$p" "$s" "$w" "$l" "$n" "$re" "$so" "$ra"
done
echo
echo "$(nproc) cores, $(uname -sr), $(date -u +%Y-%m-%d); bench/files.sh $big_mib"
