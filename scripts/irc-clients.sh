#!/usr/bin/env bash
# Real IRC clients against the server's IRC door: irssi (in a detached tmux session),
# WeeChat (weechat-headless, driven through its FIFO) and a native client (bash's
# /dev/tcp) meet in #mixed, and each check waits, with a deadline, until every client
# has shown what it should: lines every way, /me, private messages, a topic, a kick and a
# quit. Each check is printed as it passes; on a failure, what each client saw is printed
# and the script exits 1.
#
#   scripts/irc-clients.sh [path/to/chat-server]   # default: cargo build, target/debug
#   IRC_CLIENTS_KEEP=1 scripts/irc-clients.sh ...   # keep the work directory
#   IRC_CLIENTS_WAIT=20 IRC_CLIENTS_TOTAL=90 ...     # the deadlines (s), as by default
#
# Needs irssi, weechat-headless, weechat-plugins (its FIFO plugin) and tmux. Nothing
# sleeps to synchronise: the clients' own files (irssi's autolog and rawlog, WeeChat's
# logger, its raw IRC buffer included) and the native transcript are polled every 0.2 s,
# for up to IRC_CLIENTS_WAIT seconds per check and IRC_CLIENTS_TOTAL seconds in all.
set -euo pipefail
cd "$(dirname "$0")/.."

WAIT=${IRC_CLIENTS_WAIT:-20}
TOTAL=${IRC_CLIENTS_TOTAL:-90}
ROOM='#mixed'
export LC_NUMERIC=C # $EPOCHREALTIME with a decimal point

for tool in irssi weechat-headless tmux; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "irc-clients.sh: $tool is missing" \
      "(apt-get install irssi weechat-headless weechat-plugins tmux)" >&2
    exit 1
  }
done
compgen -G '/usr/lib/*/weechat/plugins/fifo.so' >/dev/null ||
  compgen -G '/usr/lib/weechat/plugins/fifo.so' >/dev/null || {
  echo "irc-clients.sh: WeeChat's FIFO plugin is missing (apt-get install weechat-plugins)" >&2
  exit 1
}

server_bin=${1:-}
if [[ -z $server_bin ]]; then
  cargo build -q -p chat-server
  server_bin="${CARGO_TARGET_DIR:-target}/debug/chat-server"
fi
[[ -x $server_bin ]] || { echo "irc-clients.sh: no server binary at $server_bin" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/irc-clients.XXXXXX")
tmux_sock="$work/tmux.sock"
irssi_home="$work/irssi"
wee_home="$work/weechat"
native_log="$work/native.log"
irssi_room="$irssi_home/logs/$ROOM.log"
irssi_query="$irssi_home/logs/native.log"
irssi_raw="$irssi_home/raw.log"
wee_room="$wee_home/logs/irc.chat.$ROOM.weechatlog"
wee_query="$wee_home/logs/irc.chat.native.weechatlog"
wee_raw="$wee_home/logs/irc.irc_raw.weechatlog"
start=${EPOCHREALTIME/./}

server_pid='' reader_pid='' wee_pid='' tmux_pid='' irssi_pid=''

# Stops one process this script started: TERM, up to 2 s to go, then KILL. Our children
# are reaped with `wait`; irssi and the tmux server are not our children.
stop() {
  local pid=$1
  [[ -n $pid ]] || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 20); do
    running "$pid" || break
    sleep 0.1
  done
  if running "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  wait "$pid" 2>/dev/null || true
}
# Whether PID is alive: there, and not a zombie.
running() {
  local state
  state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [[ $state != Z* ]]
}

cleanup() {
  set +e # stop everything, whatever fails on the way
  exec 7>&-
  stop "$irssi_pid"
  stop "$tmux_pid"
  stop "$wee_pid"
  stop "$reader_pid"
  stop "$server_pid"
  if [[ -n ${IRC_CLIENTS_KEEP:-} ]]; then
    echo "irc-clients.sh: work directory kept: $work"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

elapsed() { # seconds since the start, one decimal
  local us=$((${EPOCHREALTIME/./} - start))
  printf '%d.%d' $((us / 1000000)) $((us / 100000 % 10))
}

section() { # section TITLE FILE [TAIL]: a file in the failure report
  echo "----- $1 ($2)"
  if [[ ! -e $2 ]]; then
    echo "(no such file)"
  elif [[ -n ${3:-} ]]; then
    tail -n "$3" "$2"
  else
    cat "$2"
  fi
}

# What each client saw, then exit 1.
fail() {
  echo "FAIL: $*" >&2
  {
    echo "===== what each client saw ====="
    section "native transcript" "$native_log"
    echo "----- irssi's window (tmux capture-pane)"
    tmux -S "$tmux_sock" capture-pane -p -J -S -100 -t irssi 2>/dev/null | sed 's/ *$//; /^$/d' ||
      echo "(irssi's tmux session is gone)"
    section "irssi's log of $ROOM" "$irssi_room"
    section "irssi's log of its query with native" "$irssi_query"
    section "irssi's raw IRC log (last 60 lines)" "$irssi_raw" 60
    section "WeeChat's log of $ROOM" "$wee_room"
    section "WeeChat's log of its query with native" "$wee_query"
    section "WeeChat's server buffer" "$wee_home/logs/irc.server.chat.weechatlog" 40
    section "WeeChat's raw IRC log (last 60 lines)" "$wee_raw" 60
    section "WeeChat's own log" "$wee_home/weechat.log" 20
    section "server log (last 30 lines)" "$work/server.log" 30
  } >&2
  exit 1
}

# Waits until FILE exists, or fails saying WHAT.
await_file() {
  local file=$1 what=$2 deadline
  deadline=$(deadline)
  until [[ -e $file ]]; do
    ((${EPOCHREALTIME/./} < deadline)) || fail "$what: $file did not appear"
    sleep 0.2
  done
}

# The end of the wait that starts now: WAIT seconds, but not past TOTAL.
deadline() {
  local now=${EPOCHREALTIME/./} d
  d=$((now + WAIT * 1000000))
  ((d < start + TOTAL * 1000000)) || d=$((start + TOTAL * 1000000))
  echo "$d"
}

# Where each watched file ended when a check began: a check looks only at what came
# after, so that an earlier, alike line cannot satisfy it.
declare -A mark
watched=("$native_log" "$irssi_room" "$irssi_query" "$irssi_raw" "$wee_room" "$wee_query" "$wee_raw")
begin() {
  local f
  for f in "${watched[@]}"; do
    mark[$f]=$(stat -c %s "$f" 2>/dev/null || echo 0)
  done
  check_start=${EPOCHREALTIME/./}
}

# expect N WHAT [WHO FILE REGEX]...: waits until, for each WHO, FILE has a line matching
# the extended REGEX after the mark of `begin`, then prints `ok N - WHAT`; otherwise
# fails naming the clients that did not see it.
expect() {
  local n=$1 what=$2 deadline missing
  shift 2
  deadline=$(deadline)
  while :; do
    missing=()
    local args=("$@")
    while ((${#args[@]})); do
      local who=${args[0]} file=${args[1]} re=${args[2]}
      args=("${args[@]:3}")
      tail -c "+$((${mark[$file]:-0} + 1))" "$file" 2>/dev/null | grep -Eq -- "$re" ||
        missing+=("$who (wanted /$re/ in $(basename "$file"))")
    done
    ((${#missing[@]} == 0)) && break
    ((${EPOCHREALTIME/./} < deadline)) ||
      fail "check $n, $what: not seen by"$'\n'"$(printf '  %s\n' "${missing[@]}")"
    sleep 0.2
  done
  local us=$((${EPOCHREALTIME/./} - check_start))
  printf 'ok %s - %s (%d.%d s)\n' "$n" "$what" $((us / 1000000)) $((us / 100000 % 10))
}

native() { printf '%s\n' "$1" >&7; }
irssi_types() {
  tmux -S "$tmux_sock" send-keys -t irssi -l -- "$1"
  tmux -S "$tmux_sock" send-keys -t irssi Enter
}
# weechat BUFFER TEXT: TEXT (a line or a /command) as if typed in BUFFER. A FIFO with no
# reader would block the writer forever: a WeeChat that died is caught by the timeout.
weechat() {
  local fifo="$wee_home/weechat_fifo_$wee_pid"
  [[ -p $fifo ]] || fail "WeeChat's FIFO is gone"
  printf '%s *%s\n' "$1" "$2" | timeout 5 tee -a "$fifo" >/dev/null ||
    fail "could not write to WeeChat's FIFO ($fifo)"
}

# A native text line as the server sends it: VERB ARGS... TIME ID :TEXT.
ts='[^ ]+ [^ ]+'

echo "irc-clients.sh: server $server_bin, work directory $work"

# --- The server, on ports the kernel chose (its log says which).
"$server_bin" --db :memory: --http-addr off --addr 127.0.0.1:0 --irc-addr 127.0.0.1:0 \
  --log-format json >"$work/server.log" 2>&1 </dev/null &
server_pid=$!
# The port of the server's log line `{"message":"<what>","addr":"127.0.0.1:<port>"}`.
listening() {
  sed -n "s/.*\"message\":\"$1\",\"addr\":\"127\.0\.0\.1:\([0-9]*\)\".*/\1/p" "$work/server.log"
}
port='' irc_port='' deadline=$(deadline)
until [[ -n $port && -n $irc_port ]]; do
  running "$server_pid" || fail "the server exited"
  ((${EPOCHREALTIME/./} < deadline)) || fail "the server did not say where it listens"
  sleep 0.1
  port=$(listening 'listening')
  irc_port=$(listening 'listening for IRC')
done
echo "irc-clients.sh: native door on 127.0.0.1:$port, IRC door on 127.0.0.1:$irc_port"

# --- The native client makes #mixed first, so that it is the room's operator. Its socket
# is fd 7 of this shell, closed in every other process started from here on.
begin
exec 7<>"/dev/tcp/127.0.0.1/$port"
cat <&7 >"$native_log" &
reader_pid=$!
native native
native "/join $ROOM"
expect 0a "the native client made $ROOM" native "$native_log" "^CURRENT $ROOM\$"

# --- irssi: a throwaway home whose config connects to the door and joins #mixed, logs
# every window to a file; irssi's own queue (5 lines at once, then one every 2.2 s) is
# left as it is.
begin
mkdir -p "$irssi_home/logs"
cat >"$irssi_home/config" <<EOF
servers = (
  { address = "127.0.0.1"; port = "$irc_port"; chatnet = "chat";
    use_tls = "no"; autoconnect = "yes"; }
);
chatnets = { chat = { type = "IRC"; }; };
channels = ( { name = "$ROOM"; chatnet = "chat"; autojoin = "yes"; } );
settings = {
  core = { nick = "irssiuser"; user_name = "irssiuser"; real_name = "irssi in tmux"; };
  "fe-common/core" = { autolog = "yes"; autolog_path = "$irssi_home/logs/\$0.log"; };
};
EOF
# A tmux of our own: its own socket, no user configuration, and a pane that stays when
# irssi ends, so that a failure can still show what irssi said last.
echo 'set -g remain-on-exit on' >"$work/tmux.conf"
tmux -f "$work/tmux.conf" -S "$tmux_sock" new-session -d -s irssi -x 200 -y 50 \
  "exec irssi --home='$irssi_home'" 7>&- || fail "tmux could not start irssi"
tmux_pid=$(tmux -S "$tmux_sock" display-message -p -t irssi '#{pid}') || fail "no tmux server"
irssi_pid=$(tmux -S "$tmux_sock" display-message -p -t irssi '#{pane_pid}') || fail "no irssi"

# --- WeeChat: a throwaway home; logs flushed at once, the raw IRC buffer logged too
# (it is marked no_log), a server that autojoins #mixed.
mkdir -p "$wee_home"
wee_run="/set logger.file.flush_delay 0;/fifo enable"
wee_run+=";/server raw;/command -buffer irc.irc_raw * /buffer set localvar_del_no_log"
wee_run+=";/command -buffer irc.irc_raw * /logger set 9"
wee_run+=";/server add chat 127.0.0.1/$irc_port -notls -nicks=weeuser -username=weeuser"
wee_run+=" -realname=weechat-headless -autojoin=$ROOM;/connect chat"
weechat-headless --dir "$wee_home" --run "$wee_run" >"$work/weechat.out" 2>&1 </dev/null 7>&- &
wee_pid=$!

expect 0b "irssi and WeeChat registered and joined $ROOM" \
  native "$native_log" "^JOIN $ROOM irssiuser " \
  native "$native_log" "^JOIN $ROOM weeuser " \
  irssi "$irssi_room" "irssiuser .*has joined $ROOM" \
  weechat "$wee_room" "weeuser .*has joined $ROOM"
await_file "$wee_home/weechat_fifo_$wee_pid" "WeeChat's FIFO"
# irssi keeps its last 200 raw lines: opening the raw log writes them, then follows.
irssi_types "/rawlog open $irssi_raw"
irssi_types "/window goto $ROOM"
await_file "$irssi_raw" "irssi's raw log"

# --- 1. Lines every way.
begin
irssi_types "irssi says hello"
expect 1a "irssi's line reached native and WeeChat" \
  native "$native_log" "^MSG $ROOM irssiuser $ts :irssi says hello\$" \
  weechat "$wee_room" $'irssiuser\tirssi says hello$'

begin
weechat "irc.chat.$ROOM" "weechat says hello"
expect 1b "WeeChat's line reached native and irssi" \
  native "$native_log" "^MSG $ROOM weeuser $ts :weechat says hello\$" \
  irssi "$irssi_room" "<.weeuser> weechat says hello\$"

begin
native "native says hello"
expect 1c "native's line reached irssi and WeeChat, both showing native as operator" \
  irssi "$irssi_room" "<@native> native says hello\$" \
  weechat "$wee_room" $'@native\tnative says hello$'

# --- 2. /me, as a CTCP ACTION on IRC and an ACTION frame natively.
begin
irssi_types "/me waves from irssi"
expect 2a "irssi's /me reached native as an ACTION and WeeChat as an action" \
  native "$native_log" "^ACTION $ROOM irssiuser $ts :waves from irssi\$" \
  weechat "$wee_room" $'\t \\*\tirssiuser waves from irssi$'

begin
weechat "irc.chat.$ROOM" "/me waves from weechat"
expect 2b "WeeChat's /me reached native and irssi" \
  native "$native_log" "^ACTION $ROOM weeuser $ts :waves from weechat\$" \
  irssi "$irssi_room" " \\* weeuser waves from weechat\$"

begin
native "/me waves natively"
expect 2c "native's /me reached irssi and WeeChat as actions" \
  irssi "$irssi_room" " \\* native waves natively\$" \
  weechat "$wee_room" $'\t \\*\tnative waves natively$'

# --- 3. Private messages, both ways, with each IRC client.
begin
native "/msg irssiuser psst irssi"
expect 3a "native's private message reached irssi" \
  irssi "$irssi_query" "<native> psst irssi\$"

begin
irssi_types "/msg native psst native from irssi"
expect 3b "irssi's private message reached native" \
  native "$native_log" "^PRIVMSG irssiuser native $ts :psst native from irssi\$"

begin
native "/msg weeuser psst weechat"
expect 3c "native's private message reached WeeChat" \
  weechat "$wee_query" $'native\tpsst weechat$'

begin
weechat irc.server.chat "/msg native psst native from weechat"
expect 3d "WeeChat's private message reached native" \
  native "$native_log" "^PRIVMSG weeuser native $ts :psst native from weechat\$"

# --- 4. The topic: set by the operator; then, +t lifted, by irssi.
begin
native "/topic $ROOM mixing doors"
expect 4a "native's topic reached everyone" \
  native "$native_log" "^TOPIC $ROOM native $ts :mixing doors\$" \
  irssi "$irssi_room" "native changed the topic of $ROOM to: mixing doors\$" \
  weechat "$wee_room" "native has changed topic for $ROOM .*\"mixing doors\""

begin
native "/mode $ROOM -t"
expect 4b "native's /mode -t reached everyone" \
  native "$native_log" "^MODE $ROOM native $ts :-t\$" \
  irssi "$irssi_room" "mode/$ROOM \\[-t\\] by native\$" \
  weechat "$wee_room" "Mode $ROOM \\[-t\\] by native\$"

begin
irssi_types "/topic irssi was here"
expect 4c "irssi's topic, once +t was lifted, reached everyone" \
  native "$native_log" "^TOPIC $ROOM irssiuser $ts :irssi was here\$" \
  irssi "$irssi_room" "irssiuser changed the topic of $ROOM to: irssi was here\$" \
  weechat "$wee_room" "irssiuser has changed topic for $ROOM .*\"irssi was here\""

# --- 5. A kick by the operator, and the kicked one back.
begin
native "/kick $ROOM weeuser enough of that"
expect 5a "native's kick of WeeChat reached everyone" \
  native "$native_log" "^KICK $ROOM native weeuser $ts :enough of that\$" \
  irssi "$irssi_room" "weeuser was kicked from $ROOM by native \\[enough of that\\]\$" \
  weechat "$wee_room" "native has kicked weeuser \\(enough of that\\)"

begin
weechat irc.server.chat "/join $ROOM"
expect 5b "WeeChat rejoined after the kick, seen by everyone" \
  native "$native_log" "^JOIN $ROOM weeuser " \
  irssi "$irssi_room" "weeuser .*has joined $ROOM" \
  weechat "$wee_room" "weeuser .*has joined $ROOM"

# --- 6. irssi quits.
begin
irssi_types "/quit off to lunch"
expect 6 "irssi's quit reached native and WeeChat" \
  native "$native_log" "^QUIT $ROOM irssiuser $ts :(Quit: )?off to lunch\$" \
  weechat "$wee_room" "irssiuser .*has quit .*off to lunch"
# irssi is tmux's child, not ours: once it is gone its PID may be reused, so forget it.
deadline=$(deadline)
while running "$irssi_pid"; do
  ((${EPOCHREALTIME/./} < deadline)) || fail "irssi did not exit after /quit"
  sleep 0.2
done
irssi_pid=''

# --- 7. Nothing the clients sent got an error numeric (but 422, no MOTD).
tab=$'\t'
errors=$(grep -hE "^>> :[^ ]+ [45][0-9]{2} |^[^$tab]*$tab--> chat$tab:[^ ]+ [45][0-9]{2} " \
  "$irssi_raw" "$wee_raw" | grep -Ev ' 422 ' || true)
[[ -z $errors ]] || fail "error numerics sent to the clients:"$'\n'"$errors"
echo "ok 7 - no error numerics in irssi's or WeeChat's raw log"

echo "irc-clients.sh: all checks passed in $(elapsed) s"
