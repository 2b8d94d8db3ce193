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
