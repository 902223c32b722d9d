#!/usr/bin/env bash
# Runs one chat-bench workload against a fresh release server, the server pinned to
# core 0 and chat-bench to core 1, on loopback. Prints the bench's JSON line.
#
#   scripts/bench.sh throughput --members 100 --senders 10 --messages 2000 --size 100
#   scripts/bench.sh rate --members 100 --senders 10 --rate 990 --duration 10s
#   scripts/bench.sh idle --connections 10000
#   SERVER_FLAGS="--room-capacity 4096" scripts/bench.sh throughput --members 1000 --messages 200
#   SERVER=/tmp/chat-server-old scripts/bench.sh idle --connections 10000   # another build
#   BENCH_CPUS=0,1 BENCH_THREADS=2 scripts/bench.sh burst --connections 5000   # a bench
#                                            that competes with the server for its core
#
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
# shellcheck disable=SC2086
taskset -c 0 "$server_bin" --addr "127.0.0.1:$port" "${web[@]}" --flood-rate 0 ${SERVER_FLAGS:-} \
  2>/dev/null &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
mode=$1
shift
taskset -c "${BENCH_CPUS:-1}" ./target/release/chat-bench --threads "${BENCH_THREADS:-1}" "$mode" --no-progress \
  --addr "127.0.0.1:$port" --server-pid "$server" "$@" | tail -n 1
