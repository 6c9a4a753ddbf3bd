#!/usr/bin/env python3
"""smtpdialog.py - play a scripted SMTP client dialogue, print the replies.

usage: smtpdialog.py ADDR:PORT|unix:PATH [--source ADDR] [--tls-after-starttls] < script

Script lines:
  C: TEXT      send TEXT + CRLF, then read one reply
  P: TEXT      send TEXT + CRLF without reading (pipelining)
  R: BYTES     send BYTES raw (Python escapes such as \\r \\n), no reply read
  W:           read one reply
  T:           start TLS (after a 220 to STARTTLS), no verification
  F: FILE      send FILE's bytes raw
  Z: SECONDS   sleep (to test timeouts)
Each reply is printed on one line, continuation lines joined with " | ".
The greeting is read first. A closed connection prints "CLOSED".
"""
import socket
import ssl
import sys


def main():
    addr = sys.argv[1]
    source = None
    if "--source" in sys.argv:
        source = sys.argv[sys.argv.index("--source") + 1]
    if addr.startswith("unix:"):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(30)
        s.connect(addr[5:])
    else:
        host, port = addr.rsplit(":", 1)
        host = host.strip("[]")
        s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        s.settimeout(30)
        if source:
            s.bind((source, 0))
        s.connect((host, int(port)))
    rf = s.makefile("rb")

    def reply():
        lines = []
        while True:
            try:
                l = rf.readline()
            except (OSError, ssl.SSLError):
                l = b""
            if not l:
                print(" | ".join(lines + ["CLOSED"]) if lines else "CLOSED", flush=True)
                return False
            l = l.decode("utf-8", "replace").rstrip("\r\n")
            lines.append(l)
            if len(l) < 4 or l[3] != "-":
                break
        print(" | ".join(lines), flush=True)
        return True

    if not reply():
        return 0
    for line in sys.stdin:
        line = line.rstrip("\n")
        kind, _, text = line.partition(": ")
        kind = kind.rstrip(":")
        try:
            if kind == "C":
                s.sendall(text.encode() + b"\r\n")
                if not reply():
                    return 0
            elif kind == "P":
                s.sendall(text.encode() + b"\r\n")
            elif kind == "R":
                s.sendall(text.encode().decode("unicode_escape").encode("latin-1"))
            elif kind == "F":
                with open(text, "rb") as f:
                    s.sendall(f.read())
            elif kind == "Z":
                import time
                time.sleep(float(text))
            elif kind == "W":
                if not reply():
                    return 0
            elif kind == "T":
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                s = ctx.wrap_socket(s)
                rf = s.makefile("rb")
                print("TLS " + s.version(), flush=True)
        except (BrokenPipeError, ConnectionResetError):
            print("CLOSED", flush=True)
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
