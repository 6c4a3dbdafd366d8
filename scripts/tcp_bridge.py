#!/usr/bin/env python3
"""Join this process's stdin/stdout to a TCP connection: QEMU's guestfwd 'cmd:' helper.

QEMU's user-mode network runs the command once per guest connection, with the connection on
fds 0 and 1. A 'tcp:' chardev target instead connects once, when QEMU starts, so the guest's
second request (or a server started later) never gets through; hence this bridge.

usage: tcp_bridge.py HOST PORT
"""
import os
import selectors
import socket
import sys

CHUNK = 65536


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    host, port = sys.argv[1], int(sys.argv[2])
    try:
        upstream = socket.create_connection((host, port), timeout=10)
    except OSError as err:
        print(f"tcp_bridge: cannot connect to {host}:{port}: {err}", file=sys.stderr)
        return 1
    upstream.settimeout(None)
    sel = selectors.DefaultSelector()
    sel.register(0, selectors.EVENT_READ, "guest")
    sel.register(upstream, selectors.EVENT_READ, "upstream")
    # Runs until the server closes; exiting then closes the guest's side.
    while True:
        for key, _ in sel.select():
            if key.data == "guest":
                data = os.read(0, CHUNK)
                if data:
                    upstream.sendall(data)
                else:
                    # The guest finished its request: pass the half-close on, keep reading.
                    sel.unregister(0)
                    upstream.shutdown(socket.SHUT_WR)
                continue
            data = upstream.recv(CHUNK)
            if not data:
                return 0
            view = memoryview(data)
            while view:
                view = view[os.write(1, view):]


if __name__ == "__main__":
    sys.exit(main())
