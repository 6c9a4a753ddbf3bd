"""Benchmark 3: per-message latency of one SMTP session, sequential.

usage: latency.py HOST:PORT COUNT SIZE FROM TO
Sends COUNT messages of SIZE bytes over one connection (no STARTTLS) and
prints p50/p90/p99 of the time from MAIL FROM to the reply at end of data.
"""
import socket
import sys
import time


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    count, size = int(sys.argv[2]), int(sys.argv[3])
    sender, rcpt = sys.argv[4], sys.argv[5]
    body = b"Subject: latency\r\n\r\n" + (b"x" * 76 + b"\r\n") * (size // 78) + b".\r\n"
    s = socket.create_connection((host, int(port)), 10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = s.makefile("rb")

    def reply():
        while True:
            line = f.readline()
            if not line:
                raise SystemExit("connection closed")
            if line[3:4] != b"-":
                return int(line[:3])

    reply()
    s.sendall(b"EHLO bench.client\r\n")
    reply()
    times = []
    for _ in range(count):
        t0 = time.perf_counter()
        s.sendall(b"MAIL FROM:<%s>\r\n" % sender.encode())
        if reply() != 250:
            raise SystemExit("MAIL refused")
        s.sendall(b"RCPT TO:<%s>\r\n" % rcpt.encode())
        if reply() != 250:
            raise SystemExit("RCPT refused")
        s.sendall(b"DATA\r\n")
        if reply() != 354:
            raise SystemExit("DATA refused")
        s.sendall(body)
        if reply() != 250:
            raise SystemExit("message refused")
        times.append((time.perf_counter() - t0) * 1000)
    s.sendall(b"QUIT\r\n")
    times.sort()
    pct = lambda q: times[min(len(times) - 1, int(q * len(times)))]
    print("n=%d p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f" % (len(times), pct(0.5), pct(0.9), pct(0.99)))


main()
