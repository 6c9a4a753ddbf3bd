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
  inject         send an extra plaintext line right after "220" to STARTTLS
  nosmtputf8     do not offer SMTPUTF8
  rejectdata     answer end-of-data with 554 5.7.1
  banner554      greet with 554
  close-after-rset  after answering a RSET, close the connection at the
                 next command without a reply (a server that timed the
                 idle connection out just as the client reused it)

Each .json also names the connection ("conn", numbered per server) and
whether its TLS session was resumed, so tests can see connection reuse.
With --trace FILE every command verb received is appended to FILE, one
per line, so tests can assert what a client said (and what it did not).
"""
import argparse
import json
import os
import socket
import ssl
import sys
import threading


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)  # ADDR:PORT
    ap.add_argument("--name", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--spool", required=True)
    ap.add_argument("--behave", default="")
    ap.add_argument("--trace")
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

        def readline():
            line = rf.readline(4096)
            if not line:
                raise EOFError
            return line

        try:
            if "banner554" in behave:
                send("554 5.3.2 %s not accepting mail" % a.name)
                return
            send("220 %s ESMTP mxserver" % a.name)
            helo = None
            mail = None
            rcpts = []
            while True:
                line = readline().decode("utf-8", "replace").rstrip("\r\n")
                verb = line.split(" ", 1)[0].upper()
                if a.trace:
                    with lock, open(a.trace, "a") as tf:
                        tf.write(verb + "\n")
                if after_rset and "close-after-rset" in behave:
                    return
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
                    while True:
                        l = readline()
                        body += l
                        if "drop-data" in behave:
                            sock.close()
                            return
                        if l == b".\r\n" and (len(body) == 3 or body[-5:-3] == b"\r\n"):
                            break
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
            pass
        finally:
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
