"""Who may use the control surface: the token, the Host header and the Origin of requests.

Bound to loopback, only this machine can connect, so no token is needed; a web page in any
browser on it could still try, so requests must name the bound address in `Host` (a
rebinding DNS name does not) and state-changing requests must come from the surface's own
origin. Bound to any other address, every request must carry the random token, as
`?token=` (then a cookie), the `timbrel_token` cookie or an `Authorization: Bearer` header.
"""

from __future__ import annotations

import hmac
import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from urllib.parse import urlsplit

COOKIE = "timbrel_token"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


def is_loopback(host: str) -> bool:
    """True when `host` (a name or an address) only reaches this machine."""
    name = host.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        try:
            addresses = {info[4][0] for info in socket.getaddrinfo(name, None)}
        except OSError:
            return False
        return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)


def url_host(host: str) -> str:
    """`host` as it goes into a URL (IPv6 addresses in brackets)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


@dataclass(frozen=True)
class Verdict:
    """`status` 0 lets the request through; otherwise the HTTP status and one line saying why.

    `set_cookie`: the token came in the query, so the response should hand it back as a cookie.
    """

    status: int = 0
    message: str = ""
    set_cookie: bool = False


class Access:
    """Decides, per request, whether it may proceed. `token` None means loopback, no token."""

    def __init__(self, host: str, port: int, token: str | None):
        self.port = int(port)
        self.token = token
        self.loopback = token is None
        names = {*LOOPBACK_NAMES, url_host(host).lower()}
        self.hosts = {f"{name}:{self.port}" for name in names} | (names if self.port == 80 else set())
        """Host headers accepted on loopback (a browser leaves out port 80)."""

    def check(self, method: str, query: Mapping[str, list[str]], headers: Mapping[str, str]) -> Verdict:
        """`headers` looked up case-insensitively (an `email.message.Message`, as http.server gives)."""
        set_cookie = False
        if self.token is not None:
            offered, set_cookie = self._offered_token(query, headers)
            if offered is None or not hmac.compare_digest(offered.encode(), self.token.encode()):
                return Verdict(401, "this control surface needs its token: open the address timbrel printed "
                                    "(it ends in ?token=...)")
        host = (headers.get("Host") or "").strip().lower()
        if self.loopback and host not in self.hosts:
            return Verdict(403, f"Host {host or '(none)'!r} is not this control surface's address; "
                                f"open http://127.0.0.1:{self.port}/")
        if method not in ("GET", "HEAD"):
            origin = headers.get("Origin")
            if origin is not None and (origin == "null" or urlsplit(origin).netloc.lower() != host):
                return Verdict(403, f"refused a change requested by another site ({origin})")
            if (headers.get("Sec-Fetch-Site") or "same-origin") not in ("same-origin", "none"):
                return Verdict(403, "refused a change requested by another site")
        return Verdict(0, "", set_cookie)

    def _offered_token(self, query: Mapping[str, list[str]], headers: Mapping[str, str]) -> tuple[str | None, bool]:
        if query.get("token"):
            return query["token"][0], True
        authorization = headers.get("Authorization") or ""
        if authorization.lower().startswith("bearer "):
            return authorization[7:].strip(), False
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("Cookie") or "")
        except CookieError:
            return None, False
        morsel = cookie.get(COOKIE)
        return (morsel.value if morsel is not None else None), False

    def cookie_header(self) -> str:
        """The `Set-Cookie` value that keeps the token for the rest of the visit."""
        return f"{COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"
