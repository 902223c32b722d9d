#!/usr/bin/env bash
# Runs chatload (../shared/bench) against rawfanout and chat-server builds, alternating
# them within each round, each server pinned to core 0 with a fresh store file and
# chatload pinned to core 1, on loopback; prints chatload's summary line per run.
#
#   scripts/yardstick.sh 3 "--mode throughput -n 100 -s 10 -m 2000" \
#       rawfanout /tmp/chat-server-old ./target/release/chat-server
#   scripts/yardstick.sh 2 "--mode fixed-rate -n 100 -s 10 --rate 990 --duration 10" \
#       rawfanout ./target/release/chat-server
#
# A server is `rawfanout` or the path of a chat-server binary. Needs the yardstick built
# into target/yardstick (see ../shared/bench/README.md). Every server started here is
# stopped by its PID.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=$1
args=$2
shift 2
yard=target/yardstick/release
db=$(mktemp -d)
pid=
cleanup() {
  [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$db"
}
trap cleanup EXIT
for _ in $(seq "$rounds"); do
  for server in "$@"; do
    port=$((17000 + RANDOM % 500))
    rm -f "$db"/chat.db*
    if [[ $server == rawfanout ]]; then
      taskset -c 0 "$yard/rawfanout" "127.0.0.1:$port" >/dev/null 2>&1 &
    else
      taskset -c 0 "$server" --addr "127.0.0.1:$port" --http-addr off --irc-addr off \
        --flood-rate 0 --db "$db/chat.db" 2>/dev/null &
    fi
    pid=$!
    for _ in $(seq 50); do
      (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
      sleep 0.1
    done
    # shellcheck disable=SC2086
    out=$(taskset -c 1 "$yard/chatload" --addr "127.0.0.1:$port" --server-pid "$pid" \
      --dialect prompt --payload 100 --drain-timeout 5 $args 2>&1)
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    pid=
    echo "$(basename "$server"): $(echo "$out" | grep -E '^(sent|wall|cpu|latency)' | tr '\n' ' ')"
  done
done
