# Sourced by scripts/bench-cluster.sh and scripts/cluster-idle.sh: the binaries, a
# temporary directory, every process started recorded in `pids` and stopped by its PID
# on exit, waiting for a port, and a fresh `nats-server -js` on loopback.
# shellcheck shell=bash disable=SC2034
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
# Ports below the ephemeral range, so that the bench's own client ports never collide.
base=$((20000 + RANDOM % 5000))

wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "$(basename "$0"): nothing listens on port $1" >&2
  exit 1
}

# Starts NATS on port $base with its store in $dir; sets nats (its PID) and nats_url.
start_nats() {
  "$nats_bin" -js -sd "$dir/nats" -a 127.0.0.1 -p "$base" 2>"$dir/nats.log" &
  nats=$!
  pids+=("$nats")
  wait_port "$base"
  nats_url="nats://127.0.0.1:$base"
}
