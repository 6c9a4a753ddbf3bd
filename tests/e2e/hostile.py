#!/usr/bin/env python3
"""hostile.py - resource-exhaustion clients for tests/e2e/hostile.sh.

usage: hostile.py MODE ADDR:PORT [options]

Every mode prints its results as one line of key=value pairs.

  noread    connect, optionally STARTTLS (--starttls), greet with --greet
            (EHLO, or LHLO for an LMTP listener), send the --prefix
            command lines (reading their replies), then write --text
            over and over without ever reading a reply, until --bytes
            are written or writing has been blocked for --stall seconds
            (the relay stopped reading) or the relay closed the connection.
            Prints written=BYTES blocked=yes|no closed=yes|no, then waits
            --hold seconds and closes.
  pipeline  EHLO (after STARTTLS with --starttls), then write --count
            NOOPs in one go while reading the replies (a client that
            pipelines and reads), starting to read after --read-delay
            seconds. Prints sent= replies= seconds= send_blocked=
            (seconds the batch could not be written).
  idle      open --count connections from the --sources addresses
            (round robin) and never send a byte. After --settle seconds
            prints opened= greeted= refused= (421 at connect) failed=
            closed_by_relay=, holds them for --hold seconds, prints
            closed_by_relay= evicted= (closed with 421 4.7.0 after the
            greeting) timed_out= (421 4.4.2), and closes them.
  drip      connect (from --source), send the --prefix lines reading
            their replies, then send --text (Python escapes) one byte
            every --interval seconds. Prints cut_after=SECONDS
            reply="..." (every reply seen) once the relay says 421 or
            closes, or cut_after=none after --max seconds.
"""
import argparse
import errno
import select
import selectors
import socket
import ssl
import sys
import time


def addr_of(s):
    host, port = s.rsplit(":", 1)
    return host.strip("[]"), int(port)


def unescape(text):
    return text.encode().decode("unicode_escape").encode("latin-1")


def connect(addr, source=None, timeout=10):
    s = socket.socket(socket.AF_INET)
    s.settimeout(timeout)
    if source:
        s.bind((source, 0))
    s.connect(addr)
    return s


def read_reply(f):
    """One SMTP reply (continuation lines joined), or None when closed."""
    lines = []
    while True:
        try:
            line = f.readline()
        except (OSError, socket.timeout):
            line = b""
        if not line:
            return " | ".join(lines) if lines else None
        line = line.decode("latin-1").rstrip("\r\n")
        lines.append(line)
        if len(line) < 4 or line[3] != "-":
            return " | ".join(lines)


def starttls(s, f):
    """EHLO, STARTTLS, handshake without verification: the new socket and file."""
    s.sendall(b"EHLO hostile.example\r\n")
    read_reply(f)
    s.sendall(b"STARTTLS\r\n")
    read_reply(f)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s = ctx.wrap_socket(s)
    return s, s.makefile("rb")


def send_lines(s, f, prefix):
    for line in unescape(prefix).split(b"\r\n"):
        if line:
            s.sendall(line + b"\r\n")
            read_reply(f)


def mode_noread(a):
    s = connect(addr_of(a.addr), a.source)
    f = s.makefile("rb")
    read_reply(f)
    if a.starttls:
        s, f = starttls(s, f)
    s.sendall(b"%s hostile.example\r\n" % a.greet.encode())
    read_reply(f)
    send_lines(s, f, a.prefix)
    # From here on nothing is read: the replies pile up on the relay's side.
    unit = unescape(a.text)
    chunk = unit * max(1, 65536 // len(unit))
    written = 0
    blocked = False
    closed = False
    s.setblocking(False)
    stalled_since = None
    pending = memoryview(chunk)
    while written < a.bytes:
        try:
            n = s.send(pending)
            written += n
            pending = pending[n:] if n < len(pending) else memoryview(chunk)
            stalled_since = None
        except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            now = time.monotonic()
            if stalled_since is None:
                stalled_since = now
            elif now - stalled_since >= a.stall:
                blocked = True
                break
            time.sleep(0.02)
        except OSError:
            closed = True
            break
    print("written=%d blocked=%s closed=%s" % (written, "yes" if blocked else "no",
                                               "yes" if closed else "no"), flush=True)
    time.sleep(a.hold)
    s.close()
    return 0


def mode_pipeline(a):
    s = connect(addr_of(a.addr), a.source, timeout=30)
    f = s.makefile("rb")
    read_reply(f)
    if a.starttls:
        s, f = starttls(s, f)
    s.sendall(b"EHLO pipeliner.example\r\n")
    read_reply(f)
    # One thread, non-blocking: write the batch while reading what comes
    # back (an SSL socket must not be used from two threads at once).
    s.setblocking(False)
    out = memoryview(b"NOOP\r\n" * a.count)
    got = 0
    tail = b""
    start = time.monotonic()
    blocked = 0.0  # seconds the batch could not be written
    while got < a.count and time.monotonic() - start < a.max:
        reading = time.monotonic() - start >= a.read_delay
        t0 = time.monotonic()
        select.select([s] if reading else [], [s] if out else [], [], 0.2)
        if out:
            try:
                n = s.send(out)
                out = out[n:]
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                blocked += time.monotonic() - t0
        while reading:
            try:
                data = s.recv(65536)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                break
            if not data:
                out = b""
                a.max = 0
                break
            tail += data
            lines = tail.split(b"\r\n")
            tail = lines.pop()
            got += sum(1 for line in lines if line.startswith(b"250 "))
    print("sent=%d replies=%d seconds=%.1f send_blocked=%.1f" %
          (a.count, got, time.monotonic() - start, blocked), flush=True)
    s.close()
    return 0


def mode_idle(a):
    sources = a.sources.split(",") if a.sources else [None]
    addr = addr_of(a.addr)
    sel = selectors.DefaultSelector()
    socks = []
    failed = 0
    for i in range(a.count):
        s = socket.socket(socket.AF_INET)
        s.setblocking(False)
        try:
            if sources[i % len(sources)]:
                s.bind((sources[i % len(sources)], 0))
            rc = s.connect_ex(addr)
        except OSError:
            failed += 1
            s.close()
            continue
        if rc not in (0, errno.EINPROGRESS):
            failed += 1
            s.close()
            continue
        socks.append(s)
        sel.register(s, selectors.EVENT_READ)
        if a.pace and i % a.pace == a.pace - 1:
            time.sleep(0.01)
    seen = {}  # socket -> bytes received
    closed = set()

    def poll(until):
        while True:
            left = until - time.monotonic()
            if left <= 0:
                return
            for key, _ in sel.select(min(left, 0.5)):
                s = key.fileobj
                try:
                    data = s.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if data:
                    seen[s] = seen.get(s, b"") + data
                else:
                    closed.add(s)
                    sel.unregister(s)

    poll(time.monotonic() + a.settle)
    greeted = sum(1 for s in socks if seen.get(s, b"").startswith(b"220"))
    refused = sum(1 for s in socks if seen.get(s, b"").startswith(b"421"))
    print("opened=%d greeted=%d refused=%d failed=%d closed_by_relay=%d" %
          (len(socks), greeted, refused, failed, len(closed)), flush=True)
    poll(time.monotonic() + a.hold)
    after_greeting = [seen.get(s, b"").partition(b"\r\n")[2] for s in socks
                      if seen.get(s, b"").startswith(b"220")]
    print("closed_by_relay=%d evicted=%d timed_out=%d" %
          (len(closed), sum(1 for d in after_greeting if d.startswith(b"421 4.7.0")),
           sum(1 for d in after_greeting if d.startswith(b"421 4.4.2"))), flush=True)
    for s in socks:
        s.close()
    return 0


def mode_drip(a):
    s = connect(addr_of(a.addr), a.source)
    f = s.makefile("rb")
    read_reply(f)
    send_lines(s, f, a.prefix)
    text = unescape(a.text)
    start = time.monotonic()
    s.settimeout(a.interval)
    i = 0
    seen = b""
    while time.monotonic() - start < a.max:
        try:
            data = s.recv(4096)
            elapsed = time.monotonic() - start
            seen += data
            if not data or b"421 " in seen:
                print("cut_after=%.1f reply=\"%s\"" %
                      (elapsed, seen.decode("latin-1").strip().replace("\r\n", " | ") or "closed"),
                      flush=True)
                return 0
            continue
        except socket.timeout:
            pass
        except OSError:
            print("cut_after=%.1f reply=reset" % (time.monotonic() - start), flush=True)
            return 0
        try:
            s.send(text[i % len(text):i % len(text) + 1])
        except OSError:
            print("cut_after=%.1f reply=reset" % (time.monotonic() - start), flush=True)
            return 0
        i += 1
    print("cut_after=none", flush=True)
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["noread", "pipeline", "idle", "drip"])
    ap.add_argument("addr")
    ap.add_argument("--bytes", type=int, default=100 * 1024 * 1024)
    ap.add_argument("--stall", type=float, default=2.0)
    ap.add_argument("--starttls", action="store_true")
    ap.add_argument("--greet", default="EHLO")  # noread: LHLO for an LMTP listener
    ap.add_argument("--hold", type=float, default=0.0)
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--sources", default="")
    ap.add_argument("--source", default=None)
    ap.add_argument("--settle", type=float, default=2.0)
    ap.add_argument("--pace", type=int, default=100)
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--prefix", default="")
    ap.add_argument("--text", default="NOOP\\r\\n")
    ap.add_argument("--max", type=float, default=30.0)
    ap.add_argument("--read-delay", type=float, default=0.0)
    a = ap.parse_args()
    return {"noread": mode_noread, "pipeline": mode_pipeline, "idle": mode_idle,
            "drip": mode_drip}[a.mode](a)


if __name__ == "__main__":
    sys.exit(main())
