#!/usr/bin/env python3
"""Holds a bench room open with modes set, for scripts/bench.sh (BENCH_ROOM_MODE).

    room-holder.py PORT ROOM MODES READY_FILE

Connects to the chat server on 127.0.0.1:PORT as `holder`, makes ROOM (so it is the
room's operator), sets MODES on it (`+b nobody!*@*`, `+m`...), writes READY_FILE once the
server has announced the change, then reads and discards everything until it is killed,
so that it is a member that keeps up.
"""
import socket
import sys

port, room, modes, ready = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
sock = socket.create_connection(("127.0.0.1", port), timeout=10)
reader = sock.makefile("r", encoding="utf-8", newline="\n")
sock.sendall(f"holder\n/join {room}\n/mode {room} {modes}\n".encode())
for line in reader:
    if line.startswith("ERR "):
        sys.exit(f"room-holder: {line.strip()}")
    if line.startswith(f"MODE {room} holder "):
        break
open(ready, "w").close()
sock.settimeout(None)
while sock.recv(1 << 16):
    pass
