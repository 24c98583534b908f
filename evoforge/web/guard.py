"""The web server's gate: every check that must happen before a request body is read.

``Guard`` is a plain ASGI middleware, outermost, so nothing reaches a route (or FastAPI's body
parsing) without passing it:

- **Host**: the ``Host`` header must name the address the server is bound to (for loopback: also
  ``localhost``, ``127.0.0.1``, ``[::1]``) or a configured ``web.allowed_hosts`` name. A page on
  another site that rebinds its DNS name to 127.0.0.1 sends its own name, and is refused (421).
- **Cross-origin writes**: a POST/PUT/PATCH/DELETE with ``Sec-Fetch-Site`` other than
  ``same-origin``/``none``, or with an ``Origin`` that is not this server's, is refused (403).
- **The token** (off loopback): ``Authorization: Bearer TOKEN`` or the session cookie that
  ``POST /login`` sets — checked from the headers, before the body (401).
- **JSON only on the API's writes**: any other ``Content-Type`` is refused (415), so that no
  cross-site form or ``text/plain`` request can be shaped into an API write.
- **Body size**: a declared ``Content-Length`` over the limit is refused at once; a body without one
  (chunked) is counted as it arrives and cut off at the limit (413), so nothing larger is ever
  spooled to memory or disk.

The pages' forms carry a CSRF token besides (double submit: a random ``SameSite=Strict`` cookie and
a hidden field that must match), checked by the form routes (``csrf_ok``) once the capped form is
parsed.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SAME_SITE_FETCHES = frozenset({"same-origin", "none"})
SESSION_COOKIE = "evoforge_session"
CSRF_COOKIE = "evoforge_csrf"
TOKEN_HINT = (
    "send the header 'Authorization: Bearer TOKEN' (the server's EVOFORGE_WEB_TOKEN); "
    "in a browser, sign in at /login"
)
#: the login form carries the token only
LOGIN_BODY_BYTES = 4096
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts_for(bind_host: str, extra: Iterable[str]) -> frozenset[str] | None:
    """Host names the server answers to; None (any) when bound to every interface with no list."""
    names = {h.strip("[]").lower() for h in extra if h.strip()}
    host = bind_host.strip("[]").lower()
    if host in ("0.0.0.0", "::", ""):
        return frozenset(names) if names else None
    names.add(host)
    if is_loopback(host):
        names |= LOOPBACK_NAMES
    return frozenset(names)


def split_host(value: str) -> str:
    """The host name of a ``Host`` header value (port and IPv6 brackets dropped), lower case."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def session_value(token: str) -> str:
    """What the session cookie holds for ``token`` (a digest: the cookie never holds the token)."""
    return hmac.new(token.encode(), b"evoforge web session", hashlib.sha256).hexdigest()


def token_ok(request: Request, token: str | None, required: bool) -> bool:
    """The bearer header or the session cookie proves ``token`` (always true when not ``required``)."""
    if not required:
        return True
    if not token:
        return False
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return hmac.compare_digest(header[7:].strip().encode(), token.encode())
    cookie = request.cookies.get(SESSION_COOKIE, "")
    return bool(cookie) and hmac.compare_digest(cookie.encode(), session_value(token).encode())


def csrf_token(request: Request) -> str:
    """The browser's CSRF token (its cookie), or a new one that the response must set."""
    return request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)


def set_csrf_cookie(response: Response, value: str) -> None:
    response.set_cookie(CSRF_COOKIE, value, httponly=True, samesite="strict", path="/")


def csrf_ok(request: Request, form_value: str) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE, "")
    return bool(cookie) and bool(form_value) and hmac.compare_digest(cookie.encode(), form_value.encode())


class BodyTooLarge(Exception):
    """Raised into the app when the request body passes the limit (the guard answers 413)."""


class Guard:
    """The ASGI middleware (see the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        allowed_hosts: frozenset[str] | None,
        token: str | None,
        require_token: bool,
        body_limit: int,
        error: Any,
    ) -> None:
        self.app = app
        self.allowed_hosts = allowed_hosts
        self.token = token
        self.require_token = require_token
        self.body_limit = body_limit
        self.error = error  # (request, status, message, hint) -> Response

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        refusal = self.refusal(request)
        if refusal is not None:
            response = self.error(request, *refusal)
            if request.method in WRITE_METHODS:  # the body is not read: close, do not drain it
                response.headers["connection"] = "close"
            await response(scope, receive, send)
            return
        if request.method not in WRITE_METHODS:
            await self.app(scope, receive, send)
            return
        limit = LOGIN_BODY_BYTES if request.url.path == "/login" else self.body_limit
        await self.limited(request, scope, receive, send, limit)

    def refusal(self, request: Request) -> tuple[int, str, str | None] | None:
        """(status, message, hint) when the request is refused on its headers alone."""
        host = split_host(request.headers.get("host", ""))
        if self.allowed_hosts is not None and host not in self.allowed_hosts:
            return (
                421,
                f"this server does not answer to the host name {host!r}",
                "use the address the server is bound to, or add the name to EVOFORGE_WEB__ALLOWED_HOSTS",
            )
        if request.method not in WRITE_METHODS:
            return None
        fetch_site = request.headers.get("sec-fetch-site")
        if fetch_site is not None and fetch_site.lower() not in SAME_SITE_FETCHES:
            return 403, f"cross-site write refused (Sec-Fetch-Site: {fetch_site})", None
        origin = request.headers.get("origin")
        if origin is not None and not self.same_origin(origin, request):
            return 403, f"cross-origin write refused (Origin: {origin[:100]})", None
        path = request.url.path
        if path != "/login" and not token_ok(request, self.token, self.require_token):
            return 401, "this server needs a token for writes", TOKEN_HINT
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.body_limit):
            return 413, f"request body larger than {self.body_limit} bytes", None
        if path.startswith("/api/"):
            ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if ctype != "application/json":
                return (
                    415,
                    f"the API takes JSON, not {ctype or 'a body without a Content-Type'}",
                    "send 'Content-Type: application/json' and a JSON object",
                )
        return None

    @staticmethod
    def same_origin(origin: str, request: Request) -> bool:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return False  # "null" (sandboxed frames, file: pages) and the like
        return parts.netloc.lower() == request.headers.get("host", "").strip().lower()

    async def limited(self, request: Request, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """Run the app with the body counted as it arrives; past ``limit`` the guard answers 413."""
        received = 0
        tripped = False

        async def counting_receive() -> Message:
            nonlocal received, tripped
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    tripped = True
                    raise BodyTooLarge(f"request body larger than {limit} bytes")
            return message

        async def guarded_send(message: Message) -> None:
            if not tripped:  # whatever the app answers to a cut-off body is dropped
                await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except BodyTooLarge:
            pass
        except Exception:
            if not tripped:
                raise
        if tripped:
            response = self.error(request, 413, f"request body larger than {limit} bytes", None)
            response.headers["connection"] = "close"
            await response(scope, receive, send)
