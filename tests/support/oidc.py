"""A real OpenID provider on loopback (oidc-provider-mock) for the social sign-in tests.

It runs in a thread of the test process, signs ID tokens with its own RSA key (published
at /jwks) and authorises any client; `authorize_as` stands in for the person clicking
through its form.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import flask
import httpx
from joserfc import jwk, jwt
from oidc_provider_mock import run_server_in_thread


@dataclass
class Provider:
    issuer: str
    key: jwk.RSAKey
    http: httpx.Client

    def set_person(self, sub: str, *, email: str, verified: bool, name: str = "Pat") -> None:
        """The claims the provider will tell about `sub` (replacing earlier ones)."""
        response = self.http.put(
            f"{self.issuer}/users/{sub}",
            json={"email": email, "email_verified": verified, "name": name},
        )
        assert response.status_code == 204, response.text

    def authorize_as(self, url: str, sub: str) -> str:
        """Submit the provider's sign-in form at `url` as `sub`: where it redirects."""
        response = self.http.post(url, data={"sub": sub})
        assert response.status_code == 302, response.text[:300]
        return str(response.headers["location"])

    def id_token_from_flow(self, sub: str, *, client_id: str, nonce: str | None) -> str:
        """An ID token as a native SDK gets one: through the provider's own code flow."""
        redirect = "https://app.example/native"
        params = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect,
            "scope": "openid email profile",
            "state": "native",
        }
        if nonce is not None:
            params["nonce"] = nonce
        location = self.authorize_as(f"{self.issuer}/oauth2/authorize?{urlencode(params)}", sub)
        code = parse_qs(urlsplit(location).query)["code"][0]
        tokens = self.http.post(
            f"{self.issuer}/oauth2/token",
            data={"grant_type": "authorization_code", "code": code, "redirect_uri": redirect},
            auth=(client_id, "secret"),
        )
        assert tokens.status_code == 200, tokens.text
        return str(tokens.json()["id_token"])

    def mint(self, **claims: Any) -> str:
        """An ID token signed with the provider's own key, with any claims (expired ones)."""
        now = int(time.time())
        body = {"iss": self.issuer, "iat": now, "exp": now + 300, **claims}
        return jwt.encode({"alg": "RS256"}, body, self.key)


def _signing_key(server: Any) -> jwk.RSAKey:
    # The mock keeps its key in per-request storage; a request context reaches it.
    app = server.app
    with app.test_request_context():
        app.preprocess_request()
        key = flask.g.oidc_provider_mock_storage.jwk
    return jwk.RSAKey.import_key(key.as_dict(is_private=True))


@contextmanager
def running_provider() -> Iterator[Provider]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    with run_server_in_thread() as server, httpx.Client(timeout=10) as http:
        yield Provider(f"http://localhost:{server.server_port}", _signing_key(server), http)


def nonce_digest(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()
