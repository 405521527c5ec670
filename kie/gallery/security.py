"""The gallery's guard: it can spend money and change marks, and localhost is not a trust boundary.

- Only loopback `Host` headers (or the one address the user opted into) are served: a DNS-rebinding
  page sees 403.
- The session token `kie gallery` prints is exchanged once for a `SameSite=Strict; HttpOnly` cookie,
  and the redirect drops it from the address bar (and from the history a screenshot shows).
- Every request other than GET/HEAD needs the same `Origin` (or `Sec-Fetch-Site: same-origin`), the
  CSRF token from the page's `<meta>` in `X-CSRF-Token`, and a form or JSON body: a blind cross-site
  `text/plain` post gets 415 before anything reads it.
- Every answer carries a strict CSP (no inline script, no framing) and `nosniff`.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE = "kie_gallery"
CSRF_HEADER = "x-csrf-token"
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; media-src 'self'; script-src 'self'; "
    "style-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_SAFE_METHODS = ("GET", "HEAD")
_BODY_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data", "application/json")
LOOPBACK = ("127.0.0.1", "localhost", "[::1]")


@dataclass
class Guard:
    """The secrets of one gallery process and the hosts it answers to."""

    port: int
    extra_hosts: tuple[str, ...] = ()
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    cookie: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    def allowed_hosts(self) -> set[str]:
        names = {*LOOPBACK, *self.extra_hosts}
        return {f"{name}:{self.port}" for name in names}

    def origins(self) -> set[str]:
        return {f"http://{host}" for host in self.allowed_hosts()}


def _headers(scope: Scope) -> dict[str, str]:
    return {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope.get("headers", [])}


SECURITY_HEADERS = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
)


async def _plain(send: Send, status: int, body: str, headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"cache-control", b"no-store"),
                *SECURITY_HEADERS,
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body.encode()})


class GuardMiddleware:
    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            await _plain(send, 403, "Only HTTP is served here.")
            return
        headers = _headers(scope)
        host = headers.get("host", "")
        if host not in self.guard.allowed_hosts():
            await _plain(send, 403, "This gallery answers only to its own local address.")
            return
        method = scope["method"].upper()
        query = scope.get("query_string", b"").decode("latin-1")
        params = parse_qsl(query, keep_blank_values=True)
        offered = dict(params).get("token")
        if method in _SAFE_METHODS and offered is not None:
            if not hmac.compare_digest(offered, self.guard.token):
                await _plain(send, 403, "That gallery link is not valid; open the URL `kie gallery` printed.")
                return
            rest = urlencode([(key, value) for key, value in params if key != "token"])
            location = scope["path"] + (f"?{rest}" if rest else "")
            cookie = f"{COOKIE}={self.guard.cookie}; Path=/; HttpOnly; SameSite=Strict"
            await _plain(
                send,
                303,
                "Signed in.",
                [(b"location", location.encode()), (b"set-cookie", cookie.encode())],
            )
            return
        if not self._has_cookie(headers.get("cookie", "")):
            await _plain(
                send,
                401,
                "Open this gallery with the URL `kie gallery` printed (it carries the session token).",
            )
            return
        if method not in _SAFE_METHODS:
            refusal = self._refuse_write(headers)
            if refusal is not None:
                await _plain(send, *refusal)
                return

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {key.lower() for key, _ in message.get("headers", [])}
                message["headers"] = [
                    *message.get("headers", []),
                    *(item for item in SECURITY_HEADERS if item[0] not in present),
                ]
            await send(message)

        await self.app(scope, receive, secured)

    def _has_cookie(self, header: str) -> bool:
        for part in header.split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE and hmac.compare_digest(value, self.guard.cookie):
                return True
        return False

    def _refuse_write(self, headers: dict[str, str]) -> tuple[int, str] | None:
        origin = headers.get("origin")
        if origin is not None:
            if origin not in self.guard.origins():
                return 403, "Cross-site requests are refused."
        elif headers.get("sec-fetch-site") != "same-origin":
            return 403, "Cross-site requests are refused."
        offered = headers.get(CSRF_HEADER, "")
        if not offered or not hmac.compare_digest(offered, self.guard.csrf):
            return 403, "This request lacks the page's CSRF token; reload the page and try again."
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type and content_type not in _BODY_TYPES:
            return 415, "Send a form or JSON body."
        return None
