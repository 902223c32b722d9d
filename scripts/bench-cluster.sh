#!/usr/bin/env bash
# Runs one chat-bench workload against a cluster of NODES fresh release servers on one
# fresh `nats-server -js`, all on loopback, the bench's members and senders spread
# round-robin over the nodes (chat-bench's several --addr). Prints the bench's JSON line.
# NODES=0 runs one server standing alone (no NATS), for the same workload beside it.
#
#   scripts/bench-cluster.sh 3 throughput --members 99 --senders 9 --messages 500 --size 100
#   scripts/bench-cluster.sh 2 rate --members 100 --senders 10 --rate 1000 --duration 10s
#   SERVER=/tmp/chat-server-old scripts/bench-cluster.sh 0 throughput --members 100
#
# Nothing is pinned: NATS, the nodes and the bench share the machine's cores, as they
# would share a small machine. Every process started here is stopped by its PID. Needs
# `cargo build --release -p chat-server -p chat-bench` and `nats-server` 2.9 or newer.
set -euo pipefail
cd "$(dirname "$0")/.."
nodes=$1
shift
server_bin="${SERVER:-./target/release/chat-server}"
bench_bin="${BENCH:-./target/release/chat-bench}"
nats_bin="$(command -v nats-server || echo /usr/sbin/nats-server)"
dir=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "bench-cluster.sh: nothing listens on port $1" >&2
  exit 1
}
base=$((20000 + RANDOM % 5000))
cluster=()
if [[ $nodes -gt 0 ]]; then
  nats_port=$base
  "$nats_bin" -js -sd "$dir/nats" -a 127.0.0.1 -p "$nats_port" 2>"$dir/nats.log" &
  pids+=($!)
  wait_port "$nats_port"
  cluster=(--cluster "nats://127.0.0.1:$nats_port")
fi
addrs=()
for i in $(seq 1 "$((nodes > 0 ? nodes : 1))"); do
  port=$((base + 10 * i))
  node_id=()
  if [[ $nodes -gt 0 ]]; then
    node_id=(--node-id "n$i")
  fi
  # shellcheck disable=SC2086
  "$server_bin" --addr "127.0.0.1:$port" --http-addr off --irc-addr off --flood-rate 0 \
    --db "$dir/n$i.db" "${cluster[@]}" "${node_id[@]}" ${SERVER_FLAGS:-} 2>"$dir/n$i.log" &
  pids+=($!)
  wait_port "$port"
  addrs+=(--addr "127.0.0.1:$port")
done
mode=$1
shift
"$bench_bin" "$mode" "${addrs[@]}" --no-progress "$@"
