# SPDX-License-Identifier: Apache-2.0
# API calls from many source addresses with one client stack: Python's
# http.client over ssl, as a scraping or distillation group runs it. Each
# source address is one member: one thread, one TLS connection kept alive
# (HTTP/1.1), many small GET requests in turn, each response read to its end
# (chunked, streamed responses included). Every member uses the same TLS
# settings, so every ClientHello has the same JA4 (no ALPN: "00"), unlike
# curl's or a browser's.
#
# Run as `python3 api-calls.py ...` (exfilmon's demo and e2e tests do; no
# shebang: it is installed as data next to demo.sh). Prints one JSON line
# per member: {"source", "requests", "ok", "body_bytes", "error"}; exits 0
# when every request of every member got a 200.
import argparse
import http.client
import json
import socket
import ssl
import sys
import threading
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--source", action="append", required=True,
                   help="a member's source address (repeat for each member)")
    p.add_argument("--server4", help="server address for IPv4 members")
    p.add_argument("--server6", help="server address for IPv6 members")
    p.add_argument("--host", default="api.example.com", help="SNI and Host header")
    p.add_argument("--port", type=int, default=443)
    p.add_argument("--cafile", required=True, help="CA certificate of the server")
    p.add_argument("--path", default="/v1/stream")
    p.add_argument("--requests", type=int, default=20, help="requests per member")
    p.add_argument("--interval", type=float, default=0.0,
                   help="seconds between a member's requests (0: back to back)")
    p.add_argument("--first-calls-file",
                   help="created once every member has had its first answer")
    return p.parse_args()


class FirstCalls:
    """Writes "first calls answered" to a file once each of `members` has
    called answered(): whoever started them learns the traffic has begun."""

    def __init__(self, path, members):
        self.path, self.left, self.lock = path, members, threading.Lock()

    def answered(self):
        with self.lock:
            self.left -= 1
            if self.left == 0 and self.path:
                with open(self.path, "w") as f:
                    f.write("first calls answered\n")


class Member(threading.Thread):
    def __init__(self, args, context, source, first_calls):
        super().__init__(daemon=True)
        self.args, self.context, self.source = args, context, source
        self.first_calls = first_calls
        self.report = {"source": source, "requests": 0, "ok": 0, "body_bytes": 0, "error": ""}

    def connection(self):
        ipv6 = ":" in self.source
        server = self.args.server6 if ipv6 else self.args.server4
        if not server:
            raise ValueError("no --server6" if ipv6 else "no --server4")
        conn = http.client.HTTPSConnection(self.args.host, self.args.port, context=self.context,
                                           timeout=30, source_address=(self.source, 0))
        # Connect to the server's address while SNI and Host name the API host.
        conn._create_connection = lambda _addr, timeout, source: socket.create_connection(
            (server, self.args.port), timeout, source)
        return conn

    def run(self):
        try:
            conn = self.connection()
            for i in range(self.args.requests):
                conn.request("GET", f"{self.args.path}?member={self.source}&i={i}")
                resp = conn.getresponse()
                body = resp.read()
                self.report["requests"] += 1
                self.report["body_bytes"] += len(body)
                if resp.status == 200:
                    self.report["ok"] += 1
                if i == 0:
                    self.first_calls.answered()
                if self.args.interval > 0:
                    time.sleep(self.args.interval)
            conn.close()
        except Exception as e:  # reported per member, the others go on
            self.report["error"] = f"{type(e).__name__}: {e}"


def main():
    args = parse_args()
    context = ssl.create_default_context(cafile=args.cafile)
    first_calls = FirstCalls(args.first_calls_file, len(args.source))
    members = [Member(args, context, s, first_calls) for s in args.source]
    for m in members:
        m.start()
    for m in members:
        m.join()
    for m in members:
        print(json.dumps(m.report), flush=True)
    sys.exit(0 if all(m.report["ok"] == args.requests for m in members) else 1)


if __name__ == "__main__":
    main()
