"""A stand-in for GitHub's OAuth2 endpoints (it has no OpenID Connect), on loopback:
authorize (approves at once), the code exchange (PKCE checked), and the user API."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

PERSON = {"id": 4242, "login": "octo", "name": "Octo Cat"}
EMAILS = [
    {"email": "octo-old@example.com", "primary": False, "verified": True},
    {"email": "Octo@Example.com", "primary": True, "verified": True},
]


class _GitHub(BaseHTTPRequestHandler):
    codes: dict[str, str] = {}  # code -> PKCE challenge
    tokens: set[str] = set()

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: Any = None, location: str | None = None) -> None:
        self.send_response(status)
        if location:
            self.send_header("Location", location)
        data = json.dumps(body).encode() if body is not None else b""
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/login/oauth/authorize":
            code = secrets.token_hex(8)
            self.codes[code] = query["code_challenge"]
            back = urlencode({"code": code, "state": query["state"]})
            self._send(302, location=f"{query['redirect_uri']}?{back}")
            return
        token = self.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in self.tokens:
            self._send(401, {"message": "Bad credentials"})
        elif url.path == "/user":
            self._send(200, PERSON)
        elif url.path == "/user/emails":
            self._send(200, EMAILS)
        else:
            self._send(404, {"message": "Not Found"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        challenge = self.codes.pop(form.get("code", ""), None)
        verifier = form.get("code_verifier", "")
        digest = hashlib.sha256(verifier.encode()).digest()
        if challenge is None or base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != (
            challenge
        ):
            # GitHub answers 200 with an error field.
            self._send(200, {"error": "bad_verification_code"})
            return
        token = "gho_" + secrets.token_hex(8)
        self.tokens.add(token)
        self._send(200, {"access_token": token, "token_type": "bearer", "scope": "user:email"})


@contextmanager
def running_github() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _GitHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
