#!/usr/bin/env bash
# Runs one chat-bench workload in IRC against ngIRCd, the yardstick of the IRC door
# (issue 15), as scripts/bench.sh runs it against our server: ngIRCd pinned to core 0
# and chat-bench to core 1, on loopback. Prints the bench's JSON line.
#
#   scripts/bench-ngircd.sh throughput --members 100 --senders 10 --messages 2000 --size 100
#   scripts/bench-ngircd.sh rate --members 100 --senders 10 --rate 990 --duration 10s
#   scripts/bench-ngircd.sh idle --connections 10000
#   BENCH=/tmp/chat-bench-old scripts/bench-ngircd.sh throughput --members 100   # another bench
#
# `--protocol irc` is added (ngIRCd speaks nothing else). ngIRCd runs in the foreground
# from a configuration in a temporary folder, its limits lifted so that it measures its
# fan-out, not its flood control: no penalties (`MaxPenaltyTime = 0`), user mode F
# (relaxed flood protection) by default, no connection limits, no DNS, ident or PAM
# lookups, nicknames up to 30 characters (the bench's are longer than RFC 2812's 9).
# NGIRCD_CONF_EXTRA adds lines to its [Limits] section. ngIRCd listens with a backlog
# of 10: the bench's default of 256 connections set up at once overflows it (connections
# reset, or stuck until --timeout), so `--connect-concurrency 8` is added unless the
# arguments say otherwise. NGIRCD_KEEP=1 keeps the temporary folder (the configuration
# and ngIRCd's log). Needs ngIRCd
# (`apt-get install -y ngircd`) and `cargo build --release -p chat-bench`.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v ngircd >/dev/null || {
  echo "bench-ngircd.sh: no ngircd; apt-get install -y ngircd" >&2
  exit 1
}
port=$((20000 + RANDOM % 5000))
dir=$(mktemp -d)
cat >"$dir/ngircd.conf" <<EOF
[Global]
Name = ngircd.bench
Info = chat-bench comparison
Listen = 127.0.0.1
Ports = $port
MotdPhrase = bench
[Limits]
MaxConnections = 0
MaxConnectionsIP = 0
MaxNickLength = 30
MaxPenaltyTime = 0
${NGIRCD_CONF_EXTRA:-}
[Options]
DNS = no
Ident = no
PAM = no
DefaultUserModes = F
EOF
taskset -c 0 ngircd --nodaemon --config "$dir/ngircd.conf" >"$dir/ngircd.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true; [[ -n ${NGIRCD_KEEP:-} ]] || rm -rf "$dir"' EXIT
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
kill -0 "$server" 2>/dev/null || {
  echo "bench-ngircd.sh: ngIRCd did not start:" >&2
  cat "$dir/ngircd.log" >&2
  exit 1
}
mode=$1
shift
protocol=(--protocol irc)
concurrency=(--connect-concurrency 8)
for arg in "$@"; do
  case $arg in
  # chat-bench takes several --addr and would spread the members over ngIRCd and another
  # server.
  --addr | --addr=*)
    echo "bench-ngircd.sh: the bench goes to the ngIRCd started here; --addr is not taken" >&2
    exit 1
    ;;
  --protocol | --protocol=*) protocol=() ;;
  --connect-concurrency | --connect-concurrency=*) concurrency=() ;;
  esac
done
taskset -c "${BENCH_CPUS:-1}" "${BENCH:-./target/release/chat-bench}" --threads "${BENCH_THREADS:-1}" "$mode" --no-progress \
  --addr "127.0.0.1:$port" --server-pid "$server" "${protocol[@]}" "${concurrency[@]}" "$@" | tail -n 1
