"""Benchmark 6: messages to several recipient domains, and when their
last recipient was delivered.

usage: multidomain.py send HOST:PORT COUNT RATE FROM DOMAIN... [--lmtp]
    Send COUNT messages over one connection, RATE per second at most, each
    to one recipient in every DOMAIN (u@DOMAIN). --lmtp speaks LMTP (the
    warm-up straight to stsproxy); otherwise SMTP (to Postfix).

usage: multidomain.py delays MAILLOG
    From Postfix's log lines (status=sent, delay=SECONDS: from the
    message's arrival to that recipient's delivery), the time until the
    LAST recipient of each message was delivered: count, p50, p90, max.
"""
import re
import smtplib
import sys
import time


def send(argv):
    host, port = argv[0].rsplit(":", 1)
    count, rate, sender = int(argv[1]), float(argv[2]), argv[3]
    lmtp = "--lmtp" in argv
    domains = [d for d in argv[4:] if d != "--lmtp"]
    rcpts = ["u@%s" % d for d in domains]
    s = smtplib.LMTP(host, int(port)) if lmtp else smtplib.SMTP(host, int(port), timeout=60)
    start = time.monotonic()
    for i in range(count):
        ahead = start + i / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
        msg = "Subject: bench6 %d\r\nMessage-ID: <b6-%d-%.3f@client>\r\n\r\n" % (i, i, start)
        refused = s.sendmail(sender, rcpts, msg + ("x" * 76 + "\r\n") * 52)
        if refused:
            raise SystemExit("refused: %r" % refused)
    s.quit()


SENT = re.compile(r" ([0-9A-F]{6,}): to=<[^>]*>,.* delay=([0-9.]+),.* status=sent ")


def delays(argv):
    last = {}
    with open(argv[0], errors="replace") as f:
        for line in f:
            m = SENT.search(line)
            if m:
                last[m.group(1)] = max(last.get(m.group(1), 0.0), float(m.group(2)))
    t = sorted(last.values())
    if not t:
        print("messages=0")
        return
    pct = lambda q: t[min(len(t) - 1, int(q * len(t)))]
    print("messages=%d p50_s=%.2f p90_s=%.2f max_s=%.2f" % (len(t), pct(0.5), pct(0.9), t[-1]))


if sys.argv[1] == "send":
    send(sys.argv[2:])
else:
    delays(sys.argv[2:])
