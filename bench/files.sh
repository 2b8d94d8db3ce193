#!/usr/bin/env bash
# File transfer throughput, netecho beside its anchors in the same run on the same machine:
# - a 1 GiB file over tcp and unix: `netecho get` from `netecho serve --files` (length-
#   prefixed chunks, BLAKE3 on both sides, temporary file, rename), beside `socat -u` copying
#   the same file into a file over the same kind of socket (no hash: the bare cost).
# - a 64 MiB file under 5% loss in both directions, real loss in flight: two network
#   namespaces joined by a veth pair, an nftables rule in each dropping 5% of what arrives
#   (as `lab --netns --loss` does); `get` over udp (window 64) beside `get` over tcp. The
#   veth ends carry no segmentation offload (gso_max_segs 1): a packet is one wire packet,
#   not a 64 KB TCP or UDP_SEGMENT burst that one drop would take whole.
# - the same 64 MiB over udp on loopback with window 1, 8 and 64, with no loss and with 5% of
#   the server's datagrams dropped on purpose (`serve --drop 0.05`): MB/s and blocks sent
#   again (one run each, no anchor: socat has no windowed datagram transfer).
# Each anchored figure is the median of ROUNDS runs (env, default 3), netecho and its anchor
# taking turns, each after sync(1), so neither pays for the other's dirty pages. Prints one
# table. Installs socat (Debian) when missing. Needs about 3 GiB in $TMPDIR. The loss rows
# need root (network namespaces); without it they are said and shown as `-`.
# Stops every server it started and deletes its namespaces, also on Ctrl-C; a failed run is
# said and shown as `-`.
#
#   bench/files.sh [SIZE_MIB]     default: 1024 (the udp rows use SIZE_MIB/16)
#   ROUNDS=1 bench/files.sh 16    a quick look
#   BASE=/tmp/old/netecho bench/files.sh   also that build's get (rows marked "base"), in turns;
#                                          in the loss row its server too (the udp sender)
#   ONLY=loss ROUNDS=3 bench/files.sh 256  the loss row alone (16 MiB)
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
[ "${ONLY:-}" = loss ] || head -c "$((big_mib << 20))" /dev/urandom >"$work/files/big"
head -c "$((udp_mib << 20))" /dev/urandom >"$work/files/mid"

now() { date +%s.%N; }
mbps() { awk -v b="$1" -v t0="$2" -v t1="$3" 'BEGIN { printf "%.0f", b / 1e6 / (t1 - t0) }'; }

# serve PROTO ADDR [ARGS...]: starts a file server; sets $pid and $addr (in this shell, so
# the script can stop it). $in_srv, when set, is the command prefix that runs it elsewhere.
serve() {
  local proto=$1 at=$2
  shift 2
  start_server ${in_srv:-} "$netecho" serve --proto "$proto" --addr "$at" --files "$work/files" "$@"
}

# netecho_get PROTO ADDR NAME [ARGS...]: "MB/s retransmitted" from get's summary line;
# "- -" when the transfer failed or the file differs. $in_cli runs it elsewhere.
netecho_get() {
  local proto=$1 addr=$2 name=$3 log
  shift 3
  rm -f "$work/out/$name"
  sync
  if ! log=$(${in_cli:-} "$netecho" get --proto "$proto" "$@" "$addr" "$name" -o "$work/out/$name" 2>&1); then
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

rows=()
# row MEASUREMENT NETECHO ANCHOR_NAME ANCHOR TARGET [RETRANSMITTED]
row() { rows+=("$1|$2|$3|$4|$(ratio "$2" "$4")|$5|${6:--}"); }

# big_row PROTO ADDR LISTEN CONNECT: the median of ROUNDS for netecho and socat, in turns.
big_row() {
  local ne=() so=() ba=() n
  for _ in $(seq "$rounds"); do
    read -r n _ <<<"$(netecho_get "$1" "$2" big)"
    ne+=("$n")
    so+=("$(socat_copy "$3" "$4")")
    if [ -n "${BASE:-}" ]; then
      read -r n _ <<<"$(netecho=$BASE netecho_get "$1" "$2" big)"
      ba+=("$n")
    fi
  done
  row "get ${big_mib} MiB $1" "$(median "${ne[@]}")" "socat -u $1" "$(median "${so[@]}")" ">= 0.90"
  [ -z "${BASE:-}" ] || row "  base build" "$(median "${ba[@]}")" "socat -u $1" "$(median "${so[@]}")" ""
}

# The loss rows' namespaces: servers in $ns-s (10.233.9.1), clients in $ns-c (10.233.9.2),
# each dropping 5% of the packets arriving on its end of the veth pair, packet by packet.
ns=nebf$$
netns_down() { ip netns del "$ns-s" 2>/dev/null || true; ip netns del "$ns-c" 2>/dev/null || true; }
netns_up() {
  [ "$(id -u)" = 0 ] || return 1
  trap 'netns_down; bench_cleanup' EXIT
  ip netns add "$ns-s" && ip netns add "$ns-c" || return 1
  ip link add "${ns}s" netns "$ns-s" type veth peer name "${ns}c" netns "$ns-c" || return 1
  local side ip
  for side in s c; do
    ip=$([ $side = s ] && echo 10.233.9.1 || echo 10.233.9.2)
    ip -n "$ns-$side" addr add "$ip/30" dev "$ns$side"
    ip -n "$ns-$side" link set "$ns$side" gso_max_segs 1 gso_max_size 1500 || return 1
    ip -d -n "$ns-$side" link show "$ns$side" | grep -qw 'gso_max_segs 1' || return 1
    ip -n "$ns-$side" link set "$ns$side" up
    ip -n "$ns-$side" link set lo up
    printf 'table inet netecho {\n chain in {\n  type filter hook input priority 0; policy accept;\n  iifname "%s" numgen random mod 10000 < 500 drop\n }\n}\n' "$ns$side" |
      ip netns exec "$ns-$side" nft -f - || return 1
  done
}

# loss_row: get of the mid file over udp (window 64) and over tcp, 5% loss each way, in turns.
loss_row() {
  local u=() t=() ba=() re=() n r
  in_srv="ip netns exec $ns-s" serve udp 10.233.9.1:0
  local udp_addr=$addr udp_pid=$pid
  in_srv="ip netns exec $ns-s" serve tcp 10.233.9.1:0
  local tcp_addr=$addr tcp_pid=$pid base_addr= base_pid=
  if [ -n "${BASE:-}" ]; then
    netecho=$BASE in_srv="ip netns exec $ns-s" serve udp 10.233.9.1:0
    base_addr=$addr base_pid=$pid
  fi
  for _ in $(seq "$rounds"); do
    read -r n r <<<"$(in_cli="ip netns exec $ns-c" netecho_get udp "$udp_addr" mid --window 64)"
    u+=("$n"); re+=("$r")
    read -r n _ <<<"$(in_cli="ip netns exec $ns-c" netecho_get tcp "$tcp_addr" mid)"
    t+=("$n")
    if [ -n "${BASE:-}" ]; then
      read -r n _ <<<"$(netecho=$BASE in_cli="ip netns exec $ns-c" netecho_get udp "$base_addr" mid --window 64)"
      ba+=("$n")
    fi
  done
  stop "$udp_pid"
  stop "$tcp_pid"
  [ -z "$base_pid" ] || stop "$base_pid"
  row "get ${udp_mib} MiB udp, 5% loss" "$(median "${u[@]}")" "get tcp, 5% loss" "$(median "${t[@]}")" ">= 1.00" "$(median "${re[@]}")"
  [ -z "${BASE:-}" ] || row "  base build" "$(median "${ba[@]}")" "get tcp, 5% loss" "$(median "${t[@]}")" ""
}

if [ "${ONLY:-}" != loss ]; then
  port=$(free_port)
  serve tcp 127.0.0.1:0
  big_row tcp "$addr" "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr" "TCP:127.0.0.1:$port"
  stop "$pid"
  serve unix "$work/files.sock"
  big_row unix "$addr" "UNIX-LISTEN:$work/socat.sock,unlink-early" "UNIX-CONNECT:$work/socat.sock"
  stop "$pid"
fi

if netns_up; then
  loss_row
else
  failed "the loss rows need root, iproute2 that sets gso_max_segs, and nftables (network namespaces, a veth pair; see the lines above)"
  row "get ${udp_mib} MiB udp, 5% loss" - "get tcp, 5% loss" - ">= 1.00"
fi
netns_down

for loss in 0 0.05; do
  [ "${ONLY:-}" != loss ] || break
  serve udp 127.0.0.1:0 --drop "$loss"
  for w in 1 8 64; do
    read -r ne re <<<"$(netecho_get udp "$addr" mid --window "$w")"
    row "get ${udp_mib} MiB udp, window $w, $(awk -v l="$loss" 'BEGIN { printf "%g%%", l * 100 }') dropped" "$ne" - - "" "$re"
  done
  stop "$pid"
done

echo "# netecho get against its anchors, MB/s; median of $rounds rounds in turns (the udp window rows: one run)"
echo "# $(nproc) cores, $(uname -sr), $(date -u +%Y-%m-%d), load average $(cut -d' ' -f1-3 /proc/loadavg); bench/files.sh $big_mib"
printf '%-36s %9s  %-18s %9s %6s %8s %8s\n' measurement netecho anchor anchor_MB/s ratio target resent
for r in "${rows[@]}"; do
  IFS='|' read -r m n a av ra t re <<<"$r"
  printf '%-36s %9s  %-18s %9s %6s %8s %8s\n' "$m" "$n" "$a" "$av" "$ra" "$t" "$re"
done
echo "# left out: socat checks no hash and writes no temporary file (the bare copy); resent: udp"
echo "# blocks sent again; a run shown as - failed."
bench_end
