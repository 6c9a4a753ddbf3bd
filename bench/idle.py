"""Benchmark 4: hold COUNT idle client sessions (greeting read, EHLO done).

usage: idle.py HOST PORT COUNT READY_FILE
Writes the number of sessions established to READY_FILE, then sleeps
until killed. Source addresses rotate over 127.0.0.2-127.0.0.250 so that
no single client address holds them all.
"""
import socket
import sys
import time


def main():
    host, port, count, ready = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    conns = []
    for i in range(count):
        s = socket.socket()
        s.bind(("127.0.0.%d" % (2 + i % 249), 0))
        s.connect((host, port))
        conns.append(s)
    ok = 0
    for s in conns:
        s.settimeout(30)
        if s.recv(512).startswith(b"220"):
            s.sendall(b"EHLO idle.client\r\n")
            ok += 1
    for s in conns:
        s.recv(4096)
    with open(ready, "w") as f:
        f.write("%d\n" % ok)
    while True:
        time.sleep(3600)


main()
