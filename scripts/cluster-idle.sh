#!/usr/bin/env bash
# Holds CONNECTIONS idle connections spread over NODES chat servers of one cluster on one
# `nats-server -js`, all on loopback (issue 16): one chat-bench per node (a process may
# hold at most 20,000 files here, the bench's as the server's), then, while they are
# held, times a `/ping` on every node. Prints one JSON line per bench, then a summary:
# connect time, memory per connection per node and in NATS, and the pings.
#
#   scripts/cluster-idle.sh 6 100000
#
# Every process started here is stopped by its PID. Needs `cargo build --release -p
# chat-server -p chat-bench`, `nats-server` 2.9 or newer and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
nodes=$1
connections=$2
per_node=$(((connections + nodes - 1) / nodes))
# shellcheck source=scripts/lib/cluster.sh
. scripts/lib/cluster.sh
rss() { awk '/^VmRSS/ {print $2 * 1024}' "/proc/$1/status"; }
start_nats
servers=()
ports=()
for i in $(seq 1 "$nodes"); do
  port=$((base + 10 * i))
  "$server_bin" --addr "127.0.0.1:$port" --http-addr off --irc-addr off --flood-rate 0 \
    --db "$dir/n$i.db" --cluster "$nats_url" --node-id "n$i" \
    2>"$dir/n$i.log" &
  servers+=($!)
  pids+=($!)
  ports+=("$port")
  wait_port "$port"
done
nats_before=$(rss "$nats")
benches=()
started=$(date +%s.%N)
for i in $(seq 0 $((nodes - 1))); do
  "$bench_bin" idle --addr "127.0.0.1:${ports[$i]}" --server-pid "${servers[$i]}" \
    --connections "$per_node" --hold "${HOLD:-30s}" --ready-file "$dir/ready$i" \
    --timeout 600s --no-progress >"$dir/bench$i.json" 2>"$dir/bench$i.log" &
  benches+=($!)
  pids+=($!)
done
for i in $(seq 0 $((nodes - 1))); do
  for _ in $(seq 6000); do
    [[ -e $dir/ready$i ]] && break
    sleep 0.1
  done
  [[ -e $dir/ready$i ]] || { echo "cluster-idle.sh: bench $i never got ready" >&2; cat "$dir/bench$i.log" >&2; exit 1; }
done
ready=$(date +%s.%N)
nats_after=$(rss "$nats")
# Every node answers a ping while the connections are held: 20 each, the slowest kept.
python3 - "${ports[@]}" >"$dir/pings.json" <<'EOF'
import json, socket, sys, time
worst = {}
for n, port in enumerate(sys.argv[1:]):
    s = socket.create_connection(("127.0.0.1", int(port)), timeout=10)
    f = s.makefile("rw", newline="\n")
    assert f.readline().strip() == "NICK"
    f.write(f"probe{n}\n"); f.flush()
    while not f.readline().startswith("CURRENT"):
        pass
    times = []
    for i in range(20):
        t = time.perf_counter()
        f.write(f"/ping p{i}\n"); f.flush()
        while f.readline().strip() != f"PONG :p{i}":
            pass
        times.append((time.perf_counter() - t) * 1000)
    worst[port] = round(max(times), 2)
    s.close()
print(json.dumps(worst))
EOF
for i in $(seq 0 $((nodes - 1))); do wait "${benches[$i]}" || true; done
for i in $(seq 0 $((nodes - 1))); do
  echo "node n$((i + 1)) ready: $(cat "$dir/ready$i")"
  tail -1 "$dir/bench$i.json"
done
python3 - "$dir" "$nodes" "$started" "$ready" "$nats_before" "$nats_after" "$connections" <<'EOF'
import json, sys
d, nodes, started, ready, nb, na, conns = sys.argv[1:]
nodes, conns = int(nodes), int(conns)
per = [json.loads(open(f"{d}/bench{i}.json").read().strip().splitlines()[-1]) for i in range(nodes)]
ready_s = [json.loads(open(f"{d}/ready{i}").read())["connect_s"] for i in range(nodes)]
print(json.dumps({
    "connections": sum(p["connections"] for p in per),
    "all_in_s": round(float(ready) - float(started), 1),
    "connect_s_per_bench": ready_s,
    "rss_per_conn_bytes_per_node": [p["rss_per_conn_bytes"] for p in per],
    "nats_rss_before": int(nb), "nats_rss_after": int(na),
    "nats_bytes_per_conn": round((int(na) - int(nb)) / conns),
    "ping_worst_ms": json.loads(open(f"{d}/pings.json").read()),
}))
EOF
