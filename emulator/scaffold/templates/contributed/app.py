"""A minimal contributed app: port 5000, paths relative to wherever the platform routes it."""

import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        user = os.environ.get("skaha_username", "you")  # noqa: SIM112 (CANFAR's own variable name)
        body = f"<h1>Hello, {user}</h1><a href='about'>about</a>\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


ThreadingHTTPServer(("0.0.0.0", 5000), Hello).serve_forever()
