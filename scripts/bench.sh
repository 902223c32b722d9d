#!/usr/bin/env bash
# Runs one chat-bench workload against a fresh release server, the server pinned to
# core 0 and chat-bench to core 1, on loopback. Prints the bench's JSON line.
#
#   scripts/bench.sh throughput --members 100 --senders 10 --messages 2000 --size 100
#   scripts/bench.sh rate --members 100 --senders 10 --rate 990 --duration 10s
#   scripts/bench.sh idle --connections 10000
#   SERVER_FLAGS="--room-capacity 4096" scripts/bench.sh throughput --members 1000 --messages 200
#                                            (each run has a fresh store in a temporary
#                                            directory unless SERVER_FLAGS gives --db)
#   SERVER=/tmp/chat-server-old scripts/bench.sh idle --connections 10000   # another build
#   BENCH=/tmp/chat-bench-old scripts/bench.sh throughput --members 100   # another bench
#   BENCH_CPUS=0,1 BENCH_THREADS=2 scripts/bench.sh burst --connections 5000   # a bench
#                                            that competes with the server for its core
#   scripts/bench.sh throughput --transport ws --members 100 --messages 2000   # through
#                                            the web door's WebSocket instead of TCP
#   scripts/bench.sh throughput --protocol irc --members 100 --messages 2000   # in IRC,
#                                            through the IRC door (scripts/bench-ngircd.sh:
#                                            the same against ngIRCd)
#   BENCH_ROOM_MODE='+b nobody!*@*' scripts/bench.sh throughput --members 100   # a room
#                                            with modes (set by a holder that made it)
#
# With `--transport ws` among the bench's arguments the bench connects to the web door
# (`--http-addr`, the port after the server's), not to the native TCP port; with
# `--protocol irc`, to the IRC door (`--irc-addr`, two ports after the server's).
# Needs `cargo build --release -p chat-server -p chat-bench` first. Ports are taken
# below the ephemeral range, so that the bench's own client ports never collide.
set -euo pipefail
cd "$(dirname "$0")/.."
port=$((20000 + RANDOM % 5000))
server_bin="${SERVER:-./target/release/chat-server}"
# The web door listens on the next port (its default, 8080, would collide between runs);
# builds from before the web door have no such flag.
web=()
if "$server_bin" --help | grep -q -- '--http-addr'; then
  web=(--http-addr "127.0.0.1:$((port + 1))")
fi
# The IRC door on the one after (its default, 6667, would collide too); builds from
# before the IRC door have no such flag.
irc=()
if "$server_bin" --help | grep -q -- '--irc-addr'; then
  irc=(--irc-addr "127.0.0.1:$((port + 2))")
fi
# A fresh store for each run, unless SERVER_FLAGS names one: the default file
# (~/.local/share/chat-server/chat.db) carried one run's events into the next, and a
# newer build's schema made an older build refuse it.
db=()
dbdir=
if [[ ${SERVER_FLAGS:-} != *--db* ]] && "$server_bin" --help | grep -q -- '--db'; then
  dbdir=$(mktemp -d)
  db=(--db "$dbdir/chat.db")
fi
# shellcheck disable=SC2086
taskset -c 0 "$server_bin" --addr "127.0.0.1:$port" "${web[@]}" "${irc[@]}" "${db[@]}" --flood-rate 0 \
  ${SERVER_FLAGS:-} 2>/dev/null &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true; rm -rf "$dbdir"' EXIT
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
# With BENCH_ROOM_MODE set, a holder makes the bench's room first (so it is the room's
# operator), sets those modes on it and stays in it reading: BENCH_ROOM_MODE='+b
# nobody!*@*' measures a room whose every message asks the hub (a room with bans).
if [[ -n ${BENCH_ROOM_MODE:-} ]]; then
  ready=$(mktemp -u)
  taskset -c "${BENCH_CPUS:-1}" scripts/room-holder.py "$port" "${BENCH_ROOM:-#bench}" "$BENCH_ROOM_MODE" "$ready" &
  holder=$!
  trap 'kill $holder $server 2>/dev/null; wait $holder $server 2>/dev/null || true; rm -f "$ready"; rm -rf "$dbdir"' EXIT
  for _ in $(seq 100); do
    [[ -e $ready ]] && break
    sleep 0.1
  done
  [[ -e $ready ]] || { echo "bench.sh: the room holder did not get ready" >&2; exit 1; }
fi
mode=$1
shift
bench_port=$port
prev=
for arg in "$@"; do
  # chat-bench takes several --addr and would spread the members over this server and
  # another one.
  if [[ $arg == --addr || $arg == --addr=* ]]; then
    echo "bench.sh: the bench goes to the server started here; --addr is not taken" >&2
    exit 1
  fi
  if [[ $arg == --transport=ws || ($prev == --transport && $arg == ws) ]]; then
    if [[ ${#web[@]} -eq 0 ]]; then
      echo "bench.sh: $server_bin has no web door (--http-addr) for --transport ws" >&2
      exit 1
    fi
    bench_port=$((port + 1))
  fi
  if [[ $arg == --protocol=irc || ($prev == --protocol && $arg == irc) ]]; then
    if [[ ${#irc[@]} -eq 0 ]]; then
      echo "bench.sh: $server_bin has no IRC door (--irc-addr) for --protocol irc" >&2
      exit 1
    fi
    bench_port=$((port + 2))
  fi
  prev=$arg
done
if [[ $bench_port != "$port" ]]; then
  for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$bench_port") 2>/dev/null && break
    sleep 0.1
  done
fi
taskset -c "${BENCH_CPUS:-1}" "${BENCH:-./target/release/chat-bench}" --threads "${BENCH_THREADS:-1}" "$mode" --no-progress \
  --addr "127.0.0.1:$bench_port" --server-pid "$server" "$@" | tail -n 1
