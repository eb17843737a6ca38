#!/usr/bin/env python3
"""A fake model API for the real-registry test: it logs the path and the
credential header of every request, one JSON line each, and answers a
client error that no agent retries. Usage: model-api.py PORT LOG"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, LOG = int(sys.argv[1]), sys.argv[2]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self):
        n = int(self.headers.get("content-length") or 0)
        if n:
            self.rfile.read(min(n, 1 << 20))
        key = ""
        for h in ("x-api-key", "authorization", "x-goog-api-key"):
            if self.headers.get(h):
                key = "%s: %s" % (h, self.headers.get(h))
                break
        with open(LOG, "a") as f:
            f.write(json.dumps({"path": self.path.split("?")[0], "key": key}) + "\n")
        body = b'{"type":"error","error":{"type":"invalid_request_error","code":400,"message":"the fake model API recorded this request"}}'
        self.send_response(400)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET = answer

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("0.0.0.0", PORT), Handler).serve_forever()
