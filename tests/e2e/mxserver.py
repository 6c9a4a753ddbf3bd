#!/usr/bin/env python3
"""mxserver.py - a recipient-side MX server for the end-to-end tests.

One process per MX host of the test world, listening on its own 127.x
address, port 25. It speaks enough ESMTP for a relay (EHLO, STARTTLS,
MAIL, RCPT, DATA, RSET, NOOP, QUIT) and misbehaves on request, so every
upstream case of the relay can be staged. Each accepted message is
written to SPOOL/NAME/N.eml (the raw dot-stuffed DATA exactly as it came
over the wire, terminator included) with N.json (envelope, HELO, TLS
version, cipher and SNI), so the tests can assert where mail arrived and
how.

Behaviours (--behave, comma-separated):
  nostarttls     do not offer STARTTLS
  tls11          STARTTLS, but TLS 1.1 only
  reject-rcpt    RCPT to a local part starting with "reject" gets a
                 multi-line 550
  rcpt452=N      after N accepted recipients, 452 4.5.3
  drop-data      close the connection after the first body line
  slow=N         read the message body at N bytes per second at most (an
                 MX on a slow link: the relay must hold its client back)
  inject         send an extra plaintext line right after "220" to STARTTLS
  nosmtputf8     do not offer SMTPUTF8
  rejectdata     answer end-of-data with 554 5.7.1
  banner554      greet with 554
  close-after-rset  after answering a RSET, close the connection at the
                 next command without a reply (a server that timed the
                 idle connection out just as the client reused it)

  record         keep, per connection N, SPOOL/NAME/conn-N.raw (every byte
                 received, decrypted after STARTTLS) and conn-N.cmds (each
                 command line, "STORED n" when message n was kept, and
                 "EOF" or "DROPPED" at the end)
  lenient-eod    a receiver open to SMTP smuggling: any line break, ".",
                 line break ends the data (CR, LF or CR LF, NULs ignored, as
                 a NUL-stripping MTA reads it); what follows is read as
                 commands. Against it a relay that passes a smuggled end on
                 shows as a second MAIL on the connection.
  drop=PHASE     close the connection without a reply: greeting (at once),
                 ehlo, starttls, mail, rcpt, data, body (after the first body
                 line), eom (after the final dot)
  malformed=KIND@PHASE  answer PHASE (greeting, ehlo, starttls, mail, rcpt,
                 data, eom) with a malformed reply: lines100 (100 lines),
                 mixed (the last line changes code), long (a 10 KB line),
                 nul (a NUL in the line) or a code (e.g. 354)

Each .json also names the connection ("conn", numbered per server) and
whether its TLS session was resumed, so tests can see connection reuse.

mxserver.py --segment-mails CMDS N prints how many MAIL commands the
connection log CMDS holds in the stretch (between RSETs, the start and
QUIT or the end) that stored message N: 1 for a clean transaction.
"""
import argparse
import json
import os
import re
import socket
import ssl
import sys
import threading
import time

# An end of data as a lenient (smuggling-prone, NUL-stripping) receiver sees it.
LENIENT_EOD = re.compile(rb"(?:\r\n|\r|\n)\x00*\.\x00*(?:\r\n|\r|\n)")


def segment_mails(path, n):
    """MAIL commands in the stretch of the connection log that stored n."""
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = [l.rstrip("\n") for l in f]
    at = lines.index("STORED %d" % n)
    start = at
    while start > 0 and lines[start - 1].upper() != "RSET":
        start -= 1
    end = at
    while end < len(lines) and lines[end].upper() not in ("RSET", "QUIT"):
        end += 1
    return sum(1 for l in lines[start:end] if l.upper().startswith("MAIL"))


def malformed_reply(kind, code):
    """The bytes of a malformed reply of the given kind, around code."""
    if kind == "lines100":
        return b"".join(b"%d-line %d\r\n" % (code, i) for i in range(99)) + b"%d last\r\n" % code
    if kind == "mixed":
        other = 550 if code < 500 else 250
        return b"%d-first line\r\n%d second line\r\n" % (code, other)
    if kind == "long":
        return b"%d " % code + b"x" * 10240 + b"\r\n"
    if kind == "nul":
        return b"%d ok\x00 hidden\r\n" % code
    return b"%s malformed reply\r\n" % kind.encode()


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--segment-mails":
        print(segment_mails(sys.argv[2], int(sys.argv[3])))
        return 0
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)  # ADDR:PORT
    ap.add_argument("--name", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--spool", required=True)
    ap.add_argument("--behave", default="")
    a = ap.parse_args()
    behave = {}
    for b in filter(None, a.behave.split(",")):
        k, _, v = b.partition("=")
        behave[k] = v or True
    host, port = a.listen.rsplit(":", 1)
    spool = os.path.join(a.spool, a.name)
    os.makedirs(spool, exist_ok=True)

    ctx = None
    if a.cert and "nostarttls" not in behave:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        if "tls11" in behave:
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
            ctx.minimum_version = ssl.TLSVersion.TLSv1_1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        ctx.load_cert_chain(a.cert, a.key)

    srv = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, int(port)))
    srv.listen(64)
    counter = [0]
    conns = [0]
    lock = threading.Lock()

    def session(conn):
        state = {"sni": None}
        with lock:
            conns[0] += 1
            conn_id = conns[0]
        after_rset = False

        def sni_cb(sslobj, name, _ctx):
            state["sni"] = name

        if ctx is not None:
            ctx.sni_callback = sni_cb
        sock = conn
        rf = sock.makefile("rb")
        tls = None

        def send(line):
            sock.sendall((line + "\r\n").encode())

        pending = bytearray()   # lenient-eod: what followed its end of data
        rec = {"raw": None, "cmds": None}
        if "record" in behave:
            base = os.path.join(spool, "conn-%d" % conn_id)
            rec["raw"] = open(base + ".raw", "wb")
            rec["cmds"] = open(base + ".cmds", "w", encoding="utf-8")

        def note(text):
            if rec["cmds"] is not None:
                rec["cmds"].write(text + "\n")
                rec["cmds"].flush()

        def readline():
            if pending:
                i = pending.find(b"\n")
                if i >= 0:
                    line = bytes(pending[:i + 1])
                    del pending[:i + 1]
                    return line
            line = rf.readline(4096)
            if rec["raw"] is not None and line:
                rec["raw"].write(line)
                rec["raw"].flush()
            if pending:
                line = bytes(pending) + line
                pending.clear()
            if not line:
                raise EOFError
            return line

        def misbehave(phase, code):
            """drop= or malformed= for phase: True if it answered instead."""
            if behave.get("drop") == phase:
                note("DROPPED")
                raise EOFError
            kind, _, where = str(behave.get("malformed", "")).partition("@")
            if where == phase:
                sock.sendall(malformed_reply(kind, code))
                return True
            return False

        try:
            if behave.get("drop") == "greeting":
                note("DROPPED")
                return
            if misbehave("greeting", 220):
                pass
            elif "banner554" in behave:
                send("554 5.3.2 %s not accepting mail" % a.name)
                return
            else:
                send("220 %s ESMTP mxserver" % a.name)
            helo = None
            mail = None
            rcpts = []
            while True:
                line = readline().decode("utf-8", "replace").rstrip("\r\n")
                verb = line.split(" ", 1)[0].upper()
                note(line)
                if after_rset and "close-after-rset" in behave:
                    return
                phase = {"EHLO": "ehlo", "HELO": "ehlo", "STARTTLS": "starttls", "MAIL": "mail",
                         "RCPT": "rcpt", "DATA": "data"}.get(verb)
                if phase and misbehave(phase, {"STARTTLS": 220, "DATA": 354}.get(verb, 250)):
                    continue
                if verb == "EHLO":
                    helo = line[5:]
                    caps = ["%s hello" % a.name, "PIPELINING", "SIZE 10000000", "8BITMIME",
                            "DSN", "ENHANCEDSTATUSCODES"]
                    if "nosmtputf8" not in behave:
                        caps.append("SMTPUTF8")
                    if ctx is not None and tls is None:
                        caps.append("STARTTLS")
                    for i, c in enumerate(caps):
                        send("250%s%s" % ("-" if i < len(caps) - 1 else " ", c))
                elif verb == "HELO":
                    helo = line[5:]
                    send("250 %s" % a.name)
                elif verb == "STARTTLS" and ctx is not None and tls is None:
                    if "inject" in behave:
                        sock.sendall(b"220 2.0.0 go ahead\r\n250 2.0.0 injected\r\n")
                    else:
                        send("220 2.0.0 go ahead")
                    try:
                        sock = ctx.wrap_socket(sock, server_side=True)
                    except (ssl.SSLError, OSError):
                        return
                    tls = sock
                    rf = sock.makefile("rb")
                    helo = None
                elif verb == "MAIL":
                    mail = line[5:]
                    rcpts = []
                    send("250 2.1.0 sender ok")
                elif verb == "RCPT":
                    addr = line[3:].split(":", 1)[1].strip().split(" ")[0]
                    local = addr.lstrip("<").split("@")[0]
                    if "reject-rcpt" in behave and local.startswith("reject"):
                        send("550-5.1.1 %s: Recipient address rejected:" % addr)
                        send("550 5.1.1 User unknown in %s" % a.name)
                    elif "rcpt452" in behave and len(rcpts) >= int(behave["rcpt452"]):
                        send("452 4.5.3 Too many recipients")
                    else:
                        rcpts.append(addr)
                        send("250 2.1.5 recipient ok")
                elif verb == "DATA":
                    if not rcpts:
                        send("554 5.5.1 no valid recipients")
                        continue
                    send("354 go ahead")
                    body = bytearray()
                    started = time.monotonic()
                    while True:
                        l = readline()
                        body += l
                        if "slow" in behave:
                            ahead = len(body) / int(behave["slow"]) - (time.monotonic() - started)
                            if ahead > 0:
                                time.sleep(ahead)
                        if "drop-data" in behave:
                            sock.close()
                            return
                        if behave.get("drop") == "body":
                            note("DROPPED")
                            raise EOFError
                        if "lenient-eod" in behave:
                            m = LENIENT_EOD.search(body, max(0, len(body) - len(l) - 4))
                            if m:
                                pending[:0] = body[m.end():]
                                del body[m.end():]
                                break
                            continue
                        if l == b".\r\n" and (len(body) == 3 or body[-5:-3] == b"\r\n"):
                            break
                    if behave.get("drop") == "eom":
                        note("DROPPED")
                        raise EOFError
                    if "rejectdata" in behave:
                        send("554 5.7.1 content rejected by %s" % a.name)
                        continue
                    with lock:
                        counter[0] += 1
                        n = counter[0]
                    base = os.path.join(spool, "%d" % n)
                    with open(base + ".eml", "wb") as f:
                        f.write(body)
                    meta = {"mx": a.name, "helo": helo, "mail": mail, "rcpts": rcpts,
                            "tls": tls.version() if tls else None,
                            "cipher": tls.cipher()[0] if tls else None,
                            "sni": state["sni"], "conn": conn_id,
                            "resumed": tls.session_reused if tls else None}
                    with open(base + ".json", "w") as f:
                        json.dump(meta, f)
                    note("STORED %d" % n)
                    if misbehave("eom", 250):
                        continue
                    send("250 2.0.0 Ok: queued as %s-%d" % (a.name, n))
                elif verb == "RSET":
                    mail, rcpts = None, []
                    send("250 2.0.0 ok")
                    after_rset = True
                elif verb == "NOOP":
                    send("250 2.0.0 ok")
                elif verb == "QUIT":
                    send("221 2.0.0 bye")
                    return
                else:
                    send("502 5.5.2 unrecognized")
        except (EOFError, OSError, ssl.SSLError):
            note("EOF")
        finally:
            for fh in rec.values():
                if fh is not None:
                    fh.close()
            try:
                sock.close()
            except OSError:
                pass

    print("ready", flush=True)
    while True:
        c, _ = srv.accept()
        threading.Thread(target=session, args=(c,), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
