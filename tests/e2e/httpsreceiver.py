#!/usr/bin/env python3
"""httpsreceiver.py ADDR:PORT CERT KEY DIR - an RFC 8460 HTTPS report
endpoint for the tests. Each POST is stored as DIR/N.body with DIR/N.json
(path, headers). A path containing "fail500" answers 500; one containing
"flaky" answers 500 the first time and 201 after (retries); one containing
"slow" answers 201 after 3 seconds (a delivery still in flight); anything
else 201."""
import http.server
import json
import os
import ssl
import sys
import threading
import time

addr, port = sys.argv[1].rsplit(":", 1)
outdir = sys.argv[4]
os.makedirs(outdir, exist_ok=True)
lock = threading.Lock()
count = [0]
seen = {}


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with lock:
            count[0] += 1
            n = count[0]
        with open(os.path.join(outdir, "%d.body" % n), "wb") as f:
            f.write(body)
        with open(os.path.join(outdir, "%d.json" % n), "w") as f:
            json.dump({"path": self.path, "headers": dict(self.headers)}, f)
        with lock:
            seen[self.path] = seen.get(self.path, 0) + 1
            first = seen[self.path] == 1
        code = 500 if "fail500" in self.path or ("flaky" in self.path and first) else 201
        if "slow" in self.path:
            time.sleep(3)
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


srv = http.server.ThreadingHTTPServer((addr, int(port)), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("ready", flush=True)
srv.serve_forever()
