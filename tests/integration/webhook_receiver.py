#!/usr/bin/env python3
"""A webhook receiver for tests (stdlib only).

Records every POST, as it arrives, as one JSON line in LOG: {"n", "path", "query", "headers",
"body", "status"}. Answers with --status (200), except: the first --fail-first requests get 503,
and request number --slow-request (0-based) is answered only after --slow-seconds. Requests are
handled on threads of their own, so a slow answer does not hold up the next request. Writes the
port it listens on (127.0.0.1, chosen by the kernel) to PORT_FILE once it accepts connections.

usage: webhook_receiver.py PORT_FILE LOG [--status N] [--fail-first N]
                           [--slow-request N --slow-seconds S]
"""
import argparse
import http.server
import json
import os
import threading
import time
import urllib.parse


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("port_file")
    parser.add_argument("log")
    parser.add_argument("--status", type=int, default=200)
    parser.add_argument("--fail-first", type=int, default=0)
    parser.add_argument("--slow-request", type=int, default=-1)
    parser.add_argument("--slow-seconds", type=float, default=0)
    args = parser.parse_args()

    lock = threading.Lock()
    count = [0]

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as curl expects

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            url = urllib.parse.urlsplit(self.path)
            with lock:
                n = count[0]
                count[0] += 1
                status = 503 if n < args.fail_first else args.status
                record = {"n": n, "path": url.path, "query": url.query,
                          "headers": {k.lower(): v for k, v in self.headers.items()},
                          "body": body.decode("utf-8"), "status": status}
                with open(args.log, "a") as f:
                    f.write(json.dumps(record) + "\n")
            if n == args.slow_request:
                time.sleep(args.slow_seconds)
            answer = b'{"ok": true}' if status < 300 else b'{"error": "refused"}'
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (a timeout): expected for the slow request

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(tmp, args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
