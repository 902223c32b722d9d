#!/usr/bin/env bash
# Fills one release server with idle connections from K chat-bench processes, so that
# the server, not the bench, reaches its connection limit. The server runs pinned to
# core 0 with a fresh database in /tmp; the K `chat-bench idle` processes all run on
# core 1, each with M connections from its own loopback source addresses
# (127.0.<i+1>.1-127.0.<i+1>.8) and `--allow-refused`, so that connections the full
# server refuses are counted rather than fatal. Once every process has said it is ready,
# it counts the connections from the server's side and reports the server's memory.
#
#   scripts/limit.sh                # K=3 processes × M=7000 connections
#   scripts/limit.sh 3 7000 --in-room
#   SERVER_FLAGS="--max-connections 10000" scripts/limit.sh 2 6000
#
# Arguments: K, M, then anything else goes to every `chat-bench idle` (e.g. --in-room).
# READY_WAIT (seconds, default 300) bounds the wait for the benches. CONNECT_CONCURRENCY
# is each bench's --connect-concurrency (default 256: all K together stay far below the
# server's listen backlog, the system's somaxconn). SERVER names another server binary.
# Needs `cargo build --release -p chat-server -p chat-bench` first. Every process it
# starts is stopped by its PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

k=${1:-3}
m=${2:-7000}
shift $(($# < 2 ? $# : 2))
[[ $k =~ ^[1-9][0-9]*$ && $k -le 200 && $m =~ ^[1-9][0-9]*$ ]] || {
  echo "usage: $0 [K processes (1-200)] [M connections each] [idle flags...]" >&2
  exit 2
}
ready_wait=${READY_WAIT:-300}
concurrency=${CONNECT_CONCURRENCY:-256}

tmp=$(mktemp -d /tmp/chat-limit.XXXXXX)
server=
benches=()
cleanup() {
  for pid in "${benches[@]}" $server; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${benches[@]}" $server; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
# Server-side sockets of established connections to the port.
established() { ss -Htn state established "( sport = :$1 )" | wc -l; }
# A number from a one-line JSON file (the last of that name: `params` come first).
json_field() { tail -n 1 "$1" | sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p"; }

# chat-bench takes several --addr and would spread the connections over the server
# started here and another one.
for arg in "$@"; do
  if [[ $arg == --addr || $arg == --addr=* ]]; then
    echo "limit.sh: the benches go to the server started here; --addr is not taken" >&2
    exit 1
  fi
done

# Below the ephemeral range, so that the benches' own ports never collide with it.
port=$((20000 + RANDOM % 5000))
# shellcheck disable=SC2086
taskset -c 0 "${SERVER:-./target/release/chat-server}" --addr "127.0.0.1:$port" --flood-rate 0 \
  --db "$tmp/chat.db" --log-format json ${SERVER_FLAGS:-} 2>"$tmp/server.log" &
server=$!
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
kill -0 "$server" 2>/dev/null || { cat "$tmp/server.log" >&2; exit 1; }
limit=$(sed -n 's/.*"max_connections":\([0-9]*\).*/\1/p' "$tmp/server.log" | head -n 1)
rss_before=$(rss_kib "$server")
fds_before=$(ls "/proc/$server/fd" | wc -l)

start=$(now)
for ((i = 0; i < k; i++)); do
  source="127.0.$((i + 1)).1-127.0.$((i + 1)).8"
  taskset -c 1 ./target/release/chat-bench --threads 1 idle --no-progress \
    --addr "127.0.0.1:$port" --connections "$m" --connect-concurrency "$concurrency" \
    --allow-refused --hold 1h \
    --ready-file "$tmp/ready.$i" --source "$source" "$@" \
    >"$tmp/idle.$i.out" 2>"$tmp/idle.$i.err" &
  benches+=($!)
done

# Until every bench has written its ready file; one that ends first has failed.
deadline=$(($(date +%s) + ready_wait))
while :; do
  ready=0
  for ((i = 0; i < k; i++)); do
    if [[ -e $tmp/ready.$i ]]; then
      ready=$((ready + 1))
    elif ! kill -0 "${benches[$i]}" 2>/dev/null; then
      echo "chat-bench $i ended before it was ready:" >&2
      cat "$tmp/idle.$i.err" "$tmp/idle.$i.out" >&2
      exit 1
    fi
  done
  ((ready == k)) && break
  if (($(date +%s) >= deadline)); then
    echo "only $ready of $k benches ready after ${ready_wait}s" >&2
    exit 1
  fi
  sleep 0.1
done
all_in=$(awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')

server_established=$(established "$port")
server_fds=$(ls "/proc/$server/fd" | wc -l)
rss_after=$(rss_kib "$server")
server_refusals=$(grep -c '"connection refused: server full"' "$tmp/server.log" || true)
held=0
refused=0
per_process=()
for ((i = 0; i < k; i++)); do
  h=$(json_field "$tmp/ready.$i" connections)
  r=$(json_field "$tmp/ready.$i" refused)
  c=$(json_field "$tmp/ready.$i" connect_s)
  held=$((held + h))
  refused=$((refused + r))
  per_process+=("$h held, $r refused in ${c}s")
done

# The benches end their hold on SIGTERM and print their reports.
for pid in "${benches[@]}"; do
  kill -TERM "$pid" 2>/dev/null || true
done
refused_full=0
refused_closed=0
for ((i = 0; i < k; i++)); do
  if wait "${benches[$i]}" 2>/dev/null; then
    refused_full=$((refused_full + $(json_field "$tmp/idle.$i.out" refused_server_full)))
    refused_closed=$((refused_closed + $(json_field "$tmp/idle.$i.out" refused_closed)))
  else
    echo "chat-bench $i: $(tail -n 3 "$tmp/idle.$i.err")" >&2
  fi
done
benches=()

per_conn=$(awk -v a="$rss_after" -v b="$rss_before" -v n="$server_established" \
  'BEGIN { printf "%d", (n > 0 ? (a - b) * 1024 / n : 0) }')
echo "limit: $k × $m idle connections${*:+ $*}, $concurrency connecting at once each, against 127.0.0.1:$port (server pid $server, limit ${limit:-?})"
for ((i = 0; i < k; i++)); do
  echo "  bench $i              ${per_process[$i]}"
done
echo "  held (benches)       $held"
echo "  refused (benches)    $refused: SERVER_FULL $refused_full, closed before NICK $refused_closed (server logged $server_refusals 'server full')"
echo "  server side          $server_established established, $server_fds fds ($fds_before before)"
echo "  all in after         ${all_in}s"
echo "  server RSS           $((rss_before / 1024)) MiB before, $((rss_after / 1024)) MiB after: $per_conn bytes per connection"
printf '{"mode":"limit","processes":%d,"connections_each":%d,"connect_concurrency":%d,"server_limit":%s,"held":%d,"refused":%d,"refused_server_full":%d,"refused_closed":%d,"server_refusals_logged":%d,"server_established":%d,"server_fds":%d,"server_fds_before":%d,"all_in_s":%s,"server_rss_before_bytes":%d,"server_rss_after_bytes":%d,"rss_per_conn_bytes":%d}\n' \
  "$k" "$m" "$concurrency" "${limit:-null}" "$held" "$refused" "$refused_full" "$refused_closed" "$server_refusals" "$server_established" \
  "$server_fds" "$fds_before" "$all_in" $((rss_before * 1024)) $((rss_after * 1024)) "$per_conn"
