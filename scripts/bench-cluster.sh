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
# shellcheck source=scripts/lib/cluster.sh
. scripts/lib/cluster.sh
cluster=()
if [[ $nodes -gt 0 ]]; then
  start_nats
  cluster=(--cluster "$nats_url")
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
