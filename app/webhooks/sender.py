"""Sending one webhook request without letting it reach where it must not (SSRF).

- The target's name is resolved when the request is sent (not only when the webhook was
  registered), and every address it resolves to must be public (`is_global`): loopback,
  private, link-local (cloud metadata at 169.254.169.254), shared, reserved, multicast
  and unspecified addresses are refused, IPv4 inside IPv6 included.
  WEBHOOK_ALLOW_PRIVATE_TARGETS lifts this for development and tests.
- The request goes to the address that was checked (the URL's host is replaced by it;
  `Host` and, for https, the TLS server name and certificate check keep the name), so a
  second lookup cannot swap in another address (DNS rebinding).
- Redirects are not followed (a 3xx is a failed attempt); no proxy from the environment;
  one time limit for the whole attempt; at most RESPONSE_EXCERPT bytes of the answer
  are read, for the delivery log.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from app.tls import client_tls

RESPONSE_EXCERPT = 1024


class BlockedTarget(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Attempt:
    status: int | None
    latency_ms: float
    excerpt: str | None
    error: str | None
    blocked: bool = False
    # No answer within the time limit: the send held a slot all that time.
    timed_out: bool = False

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


# Public IPv6 unicast is 2000::/3; inside it, 6to4 (2002::/16) carries an IPv4 address
# that may be private. (NAT64 64:ff9b::/96, IPv4-compatible ::a.b.c.d, site-local fec0::/10
# lie outside 2000::/3.)
_IPV6_PUBLIC = ipaddress.ip_network("2000::/3")
_IPV6_6TO4 = ipaddress.ip_network("2002::/16")


def permitted(address: str, *, allow_private: bool) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_unspecified or ip.is_multicast:
        return False
    if allow_private:
        return True
    if isinstance(ip, ipaddress.IPv6Address):
        return ip in _IPV6_PUBLIC and ip not in _IPV6_6TO4 and ip.is_global
    return ip.is_global


def url_problem(url: str, *, allow_private: bool) -> str | None:
    """Why `url` cannot be a webhook target (None: it can, as far as can be told before a
    lookup): https (http only with private targets allowed), a host, no credentials, and
    an address literal must be one the rules allow."""
    try:
        parts = urlsplit(url)
        port = parts.port
        httpx.URL(url)  # what the sender will parse (control characters, IDNA)
    except (ValueError, httpx.InvalidURL):
        return "not a URL"
    del port
    if parts.scheme not in ("https", "http"):
        return "the scheme must be https"
    if parts.scheme == "http" and not allow_private:
        return "the scheme must be https (http only with WEBHOOK_ALLOW_PRIVATE_TARGETS)"
    if not parts.hostname:
        return "the URL has no host"
    if parts.username is not None or parts.password is not None:
        return "credentials do not belong in the URL (the signature authenticates us)"
    if parts.fragment:
        return "the URL has a fragment"
    try:
        ipaddress.ip_address(parts.hostname)
    except ValueError:
        return None
    if not permitted(parts.hostname, allow_private=allow_private):
        return "the address is not a public one"
    return None


class Sender:
    def __init__(self, *, timeout: float, allow_private: bool) -> None:
        self.timeout = timeout
        self.allow_private = allow_private
        # Connections pool by address: over https a kept connection would carry another
        # name's request under the first one's certificate, so https ones are not kept.
        self.http = self._client(keepalive=20)
        self.https = self._client(keepalive=0)

    def _client(self, *, keepalive: int) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            timeout=self.timeout,
            follow_redirects=False,
            trust_env=False,
            verify=client_tls(),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=keepalive),
            headers={"User-Agent": "docstore-webhooks"},
        )

    async def close(self) -> None:
        await self.http.aclose()
        await self.https.aclose()

    async def _address(self, host: str, port: int) -> str:
        try:
            literal = str(ipaddress.ip_address(host))
        except ValueError:
            literal = None
        if literal is not None:  # an address already: nothing to resolve
            if not permitted(literal, allow_private=self.allow_private):
                raise BlockedTarget(f"{host} is not a public address")
            return literal
        loop = asyncio.get_running_loop()
        try:
            found = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise BlockedTarget(f"{host} does not resolve: {exc}") from exc
        addresses = [str(entry[4][0]) for entry in found]
        refused = [a for a in addresses if not permitted(a, allow_private=self.allow_private)]
        if refused or not addresses:
            raise BlockedTarget(
                f"{host} resolves to {', '.join(refused) or 'nothing'}, not a public address "
                "(WEBHOOK_ALLOW_PRIVATE_TARGETS allows private ones)"
            )
        return addresses[0]

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Attempt:
        started = time.perf_counter()

        def took() -> float:
            return round((time.perf_counter() - started) * 1000, 1)

        try:
            async with asyncio.timeout(self.timeout):
                target = httpx.URL(url)
                host = target.host
                if (problem := url_problem(url, allow_private=self.allow_private)) is not None:
                    raise BlockedTarget(problem)
                address = await self._address(host, target.port or _default_port(target.scheme))
                client = self.https if target.scheme == "https" else self.http
                request = client.build_request(
                    "POST",
                    target.copy_with(host=address),
                    content=body,
                    headers={
                        **headers,
                        "content-type": "application/json",
                        # The excerpt is read as sent: ask for it uncompressed.
                        "accept-encoding": "identity",
                        "host": target.netloc.decode("ascii"),
                    },
                    extensions={"sni_hostname": host} if target.scheme == "https" else {},
                )
                response = await client.send(request, stream=True)
                try:
                    excerpt = await _excerpt(response)
                finally:
                    await response.aclose()
        except BlockedTarget as exc:
            return Attempt(None, took(), None, str(exc), blocked=True)
        except TimeoutError:
            return Attempt(
                None, took(), None, f"no answer within {self.timeout:g} s", timed_out=True
            )
        except (httpx.HTTPError, httpx.InvalidURL, ValueError, OSError) as exc:
            return Attempt(None, took(), None, f"{type(exc).__name__}: {exc}"[:300])
        return Attempt(response.status_code, took(), excerpt, None)


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


async def _excerpt(response: httpx.Response) -> str:
    taken = bytearray()
    async for chunk in response.aiter_raw():
        taken += chunk[: RESPONSE_EXCERPT - len(taken)]
        if len(taken) >= RESPONSE_EXCERPT:
            break
    return taken.decode("utf-8", "replace")
