#!/usr/bin/env python3
"""A fake of the API written from its documented answers (answers.json and the body files
beside it), not from authproxy's sandbox: what a new user would write from the public docs to
try authproxy. The end-to-end contract tests run `authproxy serve` against it.

    fake_api.py --cert server.pem --key server-key.pem --port-file PATH [--login ANSWER]
                [--refresh ANSWER] [--record PATH] [--keepalive-timeout SECONDS]

--login / --refresh name the documented answer those calls give (default: the enveloped 200).
A 200 token answer is the documented body with its two timestamps moved to now + 1 hour and
now + 7 days (the documented lifetimes), since the docs' 2024 examples have expired. Business
endpoints (/api/v1/...) answer a documented bare JSON list when the bearer token is the one the
login issued, else the documented 401. Every request is appended as a JSON line to
--record PATH (method, path, authorization), so a test can see exactly what reached the API.
"""

import argparse
import datetime
import http.server
import json
import os
import signal
import ssl

HERE = os.path.dirname(os.path.abspath(__file__))
INDEX = json.load(open(os.path.join(HERE, "answers.json")))
ANSWERS = {a["name"]: a for a in INDEX["answers"]}

# The reference-data page's example: GET /api/v1/categories.
CATEGORIES = [{"id": 1, "name": "Gift Cards"}, {"id": 2, "name": "Mobile Top-up"}, {"id": 3, "name": "Digital Services"}]


def rfc3339(seconds_from_now):
    moment = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds_from_now)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def answer_bytes(name):
    """Status, headers and body bytes of a documented answer; token answers dated from now."""
    entry = ANSWERS[name]
    raw = open(os.path.join(HERE, entry["body"]), "rb").read()
    if entry["status"] == 200 and b"access_expires_at" in raw:
        document = json.loads(raw)
        fields = document["data"] if "data" in document else document
        fields["access_expires_at"] = rfc3339(3600)
        fields["refresh_expires_at"] = rfc3339(7 * 86400)
        raw = json.dumps(document).encode()
    return entry["status"], entry["headers"], raw


def issued_access_token(name):
    body = json.load(open(os.path.join(HERE, ANSWERS[name]["body"])))
    return (body.get("data") or body).get("access_token")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, status, headers, body):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def record(self):
        if self.server.record:
            with open(self.server.record, "a") as log:
                log.write(json.dumps({"method": self.command, "path": self.path,
                                      "authorization": self.headers.get("Authorization")}) + "\n")

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.record()
        path = self.path.split("?", 1)[0]
        if path == "/auth/login" and self.command == "POST":
            try:
                fields = json.loads(body)
            except ValueError:
                return self.send(*answer_bytes("login-400-syntax"))
            if not fields.get("username") or not fields.get("password"):
                return self.send(*answer_bytes("login-400-validation"))
            return self.send(*answer_bytes(self.server.login))
        if path == "/auth/refresh" and self.command == "POST":
            return self.send(*answer_bytes(self.server.refresh))
        if path == "/auth/logout" and self.command == "POST":
            return self.send(*answer_bytes("logout-200"))
        if path.startswith("/api/v1/"):
            token = issued_access_token(self.server.login) if ANSWERS[self.server.login]["status"] == 200 else None
            if token is None or self.headers.get("Authorization") != "Bearer " + token:
                return self.send(*answer_bytes("logout-401-authentication-required"))
            return self.send(200, {"X-Total-Count": "3"}, json.dumps(CATEGORIES).encode())
        self.send(404, {}, b'{"error":{"name":"NotFoundError","code":"NOT_FOUND","message":"Not found"}}')

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any


def main():
    # Whoever started us may have blocked these; a fake must die when told to.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    parser = argparse.ArgumentParser()
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--login", default="login-200-envelope", choices=sorted(ANSWERS))
    parser.add_argument("--refresh", default="refresh-200-envelope", choices=sorted(ANSWERS))
    parser.add_argument("--record")
    parser.add_argument("--keepalive-timeout", type=float, help="close a connection idle this many seconds (as servers do)")
    options = parser.parse_args()
    if options.keepalive_timeout:
        Handler.timeout = options.keepalive_timeout

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.login, server.refresh, server.record = options.login, options.refresh, options.record
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(options.cert, options.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    temporary = options.port_file + ".tmp"
    with open(temporary, "w") as out:
        out.write(str(server.server_address[1]))
    os.rename(temporary, options.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
