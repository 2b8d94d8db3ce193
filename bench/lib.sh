# Sourced by the bench scripts. Every process a script starts is tracked and stopped when
# it ends, also on Ctrl-C or an error; a server's address comes from its `listening` line;
# a run that fails is said on stderr, counted, and shown as `-`, never as a zero.
#
# The tracking lives in files, so a process started inside $(...) is stopped too.

bench_dir=$(mktemp -d)
: >"$bench_dir/pids"
: >"$bench_dir/failed"

bench_cleanup() {
  local p
  while read -r p; do
    kill "$p" 2>/dev/null || true
  done <"$bench_dir/pids"
  while read -r p; do ended "$p"; done <"$bench_dir/pids"
  rm -rf "$bench_dir"
}

# ended PID: waits at most 5 s for a signalled PID to go (reaped when it is this shell's
# child, watched by pid otherwise), then kills it: a server that ignores SIGTERM never holds
# the script.
ended() {
  for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
}
trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# track PID: stopped when the script ends.
track() { echo "$1" >>"$bench_dir/pids"; }

# stop PID: stops it now and forgets it.
stop() {
  kill "$1" 2>/dev/null || true
  ended "$1"
  wait "$1" 2>/dev/null || true
  sed -i "/^$1\$/d" "$bench_dir/pids"
}

# failed WHAT [LOG]: says that a run failed, with what it printed; counted for the end.
failed() {
  echo "FAILED: $1" >&2
  if [ -n "${2:-}" ]; then sed 's/^/  | /' <<<"$2" | tail -n 20 >&2; fi
  echo "$1" >>"$bench_dir/failed"
}

# start_server CMD...: runs a server (its stderr to $bench_dir), waits at most 10 s for its
# `listening` line, and sets $pid and $addr; fails the script with the server's stderr if none.
start_server() { try_server "$@" || exit 1; }

# try_server CMD...: start_server's run, returning 1 instead (said and counted as a failed
# run, the server stopped) when no `listening` line came: for a run inside $(...), where an
# exit would end only the subshell and leave an empty row.
try_server() {
  local out err
  out=$(mktemp -p "$bench_dir")
  err=$(mktemp -p "$bench_dir")
  "$@" >"$out" 2>"$err" &
  pid=$!
  track "$pid"
  for _ in $(seq 200); do
    [ -s "$out" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  addr=$(awk 'NR==1 && $1 == "listening" {print $3}' "$out")
  if [ -z "$addr" ]; then
    stop "$pid"
    failed "server did not start: $*" "$(cat "$err")"
    return 1
  fi
}

# free_port: a free loopback port (bound and released), for a server that takes a number.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# bound PROTO PORT: waits until something is bound to 127.0.0.1:PORT (for a server that
# says nothing when it listens, as sockperf), 20 s at most (a server under valgrind starts
# slowly); 1 if nothing was.
bound() {
  local flags
  flags=$([ "$1" = tcp ] && echo -ltn || echo -lun)
  for _ in $(seq 1000); do
    ss -H "$flags" "sport = :$2" 2>/dev/null | grep -q . && return
    sleep 0.02
  done
  return 1
}

# The round-trip counts (bench/instructions.sh, bench/syscalls.sh) run one program under a
# TOOL (a function that execs its arguments under a counter: callgrind, strace) while
# another drives it, $size-byte messages, one in flight; the script sets $netecho (the build
# counted), $pingpong (bench/reference's) and $size. Each says a failed run (naming TOOL)
# and returns 1.

# sockperf_sr PROTO [TOOL ARGS...]: `sockperf sr` on a free loopback port, under TOOL if
# given; sets $pid, $port and $flag (--tcp or nothing, for sockperf pp too). 1 if it never
# binds.
sockperf_sr() {
  local proto=$1
  shift
  port=$(free_port)
  flag=$([ "$proto" = tcp ] && echo --tcp || true)
  "$@" sockperf sr $flag -i 127.0.0.1 -p "$port" >/dev/null 2>&1 &
  pid=$!
  track "$pid"
  bound "$proto" "$port" || { failed "sockperf sr $flag did not bind"; return 1; }
}

# pingpong_with PROTO SERVER COUNT STOP TOOL ARGS...: SERVER (`sockperf` for sockperf sr,
# else a model of `netecho serve --transform echo`) under TOOL while pingpong, outside it,
# makes COUNT round trips with it; then `STOP PID` ends the server (and TOOL writes its
# counts).
pingpong_with() {
  local proto=$1 server=$2 count=$3 end=$4 out to
  shift 4
  if [ "$server" = sockperf ]; then
    sockperf_sr "$proto" "$@" || return 1
    to=127.0.0.1:$port
  else
    try_server "$@" "$netecho" -q serve --model "$server" --proto "$proto" --transform echo \
      --addr 127.0.0.1:0 || return 1
    to=$addr
  fi
  if ! out=$("$pingpong" "$proto" "$to" "$size" 600 "$count" 2>&1) ||
    [[ $out != "round_trips=$count "* ]]; then
    "$end" "$pid"
    failed "pingpong $proto $count against $server under $1" "$out"
    return 1
  fi
  "$end" "$pid"
}

# bench_with PROTO COUNT TOOL ARGS...: `netecho bench --clients 1 --window 1` under TOOL,
# COUNT round trips with a `netecho serve --transform echo` outside it.
bench_with() {
  local proto=$1 count=$2 out
  shift 2
  try_server "$netecho" -q serve --proto "$proto" --transform echo --addr 127.0.0.1:0 || return 1
  if ! out=$("$@" "$netecho" -q bench --proto "$proto" --clients 1 --window 1 --size "$size" \
    --count "$count" --expect echo --timeout 20s --format csv "$addr" 2>&1); then
    stop "$pid"
    failed "netecho bench --proto $proto --count $count under $1" "$out"
    return 1
  fi
  stop "$pid"
}

# sockperf_pp_with PROTO SECS TOOL ARGS...: `sockperf pp` under TOOL for SECS against a
# `sockperf sr` outside it; prints the replies it counted ([Total Run] ReceivedMessages).
sockperf_pp_with() {
  local proto=$1 secs=$2 log got
  shift 2
  sockperf_sr "$proto" || return 1
  log=$("$@" sockperf pp $flag -i 127.0.0.1 -p "$port" -t "$secs" -m "$size" 2>&1 |
    sed 's/\x1b\[[0-9;]*m//g') || true
  stop "$pid"
  got=$(sed -n 's/.*\[Total Run\].*ReceivedMessages=\([0-9]*\).*/\1/p' <<<"$log")
  if [ -z "$got" ]; then
    failed "sockperf pp $flag -t $secs under $1" "$log"
    return 1
  fi
  echo "$got"
}

# numbers VALUES...: only the numeric ones (a failed run's `-` left out).
numbers() { printf '%s\n' "$@" | grep -E '^[0-9]+(\.[0-9]+)?$' || true; }

# median VALUES...: of the numeric values; `-` when there are none.
median() {
  numbers "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "-" }'
}

# ratio A B: A/B to two places; `-` when either is not a number or B is 0.
ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN {
    if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.2f", a / b; else print "-" }'
}

# callgrind_total FILE [PER]: the instructions a valgrind --tool=callgrind output file
# counted (its `totals:` line), over PER when given, in whole instructions; `-` if none.
callgrind_total() {
  awk -v n="${2:-1}" '$1 == "totals:" { t = $2 }
    END { if (t == "" || n <= 0) print "-"; else printf "%.0f\n", t / n }' "$1"
}

# bench_end: the failed runs, if any, and the exit status that says so.
bench_end() {
  local n
  n=$(wc -l <"$bench_dir/failed")
  if [ "$n" -gt 0 ]; then
    echo "# $n runs FAILED (shown as -, left out of medians):" >&2
    sed 's/^/#   /' "$bench_dir/failed" >&2
    return 1
  fi
}
