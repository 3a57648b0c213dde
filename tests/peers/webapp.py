"""A tiny web app owning users' rosters, for stanzagate's roster-admin tests.

GET /contacts/USERNAME (percent-encoded) answers DATA_DIR/<percent-encoded name>.json
with an ETag (304 on If-None-Match). Test controls:
    POST /_mode   body: ok | down500 | invalid | slow:SECONDS | flaky:N (N× 503 first)
                  | hang (requests are read, then never answered until the mode changes)
    GET  /_count/USERNAME   number of roster GETs for that user so far
Prints "LISTENING PORT" once ready. Binds 127.0.0.1 only.
"""
import argparse
import hashlib
import json
import os
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STATE = {"mode": "ok", "flaky": 0}
COUNTS = {}
LOCK = threading.Lock()
# Set whenever the mode is not "hang": hung requests wait for it.
NOT_HANGING = threading.Event()
NOT_HANGING.set()


class Handler(BaseHTTPRequestHandler):
    data_dir = "."

    def log_message(self, *args):
        pass

    def send(self, code, body=b"", headers=None):
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        if self.path == "/_mode":
            length = int(self.headers.get("Content-Length", "0"))
            mode = self.rfile.read(length).decode().strip()
            with LOCK:
                if mode.startswith("flaky:"):
                    STATE["mode"], STATE["flaky"] = "ok", int(mode.split(":")[1])
                else:
                    STATE["mode"] = mode
                if STATE["mode"] == "hang":
                    NOT_HANGING.clear()
                else:
                    NOT_HANGING.set()
            self.send(200, b"ok")
        else:
            self.send(404)

    def do_GET(self):
        if self.path.startswith("/_count/"):
            user = urllib.parse.unquote(self.path[len("/_count/"):])
            with LOCK:
                n = COUNTS.get(user, 0)
            self.send(200, str(n).encode())
            return
        if not self.path.startswith("/contacts/"):
            self.send(404)
            return
        raw = self.path[len("/contacts/"):]
        user = urllib.parse.unquote(raw)
        with LOCK:
            COUNTS[user] = COUNTS.get(user, 0) + 1
            mode = STATE["mode"]
            flaky = STATE["flaky"]
            if flaky > 0:
                STATE["flaky"] = flaky - 1
        if flaky > 0:
            self.send(503, b"try again")
            return
        if mode == "down500":
            self.send(500, b"boom")
            return
        if mode == "hang":
            NOT_HANGING.wait()
        if mode.startswith("slow:"):
            time.sleep(float(mode.split(":")[1]))
        if mode == "invalid":
            self.send(200, b"this is not json", {"Content-Type": "application/json"})
            return
        path = os.path.join(self.data_dir, urllib.parse.quote(user, safe="") + ".json")
        try:
            with open(path, "rb") as f:
                body = f.read()
        except FileNotFoundError:
            body = b"{}"
        etag = '"' + hashlib.sha1(body).hexdigest() + '"'
        if self.headers.get("If-None-Match") == etag:
            self.send(304, b"", {"ETag": etag})
            return
        self.send(200, body, {"Content-Type": "application/json", "ETag": etag})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    Handler.data_dir = a.data
    server = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    server.daemon_threads = True
    print("LISTENING", server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
