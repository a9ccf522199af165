"""Safe by default: loopback only, a bearer token for anything wider, and no DNS rebinding.

A server on 127.0.0.1 is still reachable from web pages in the user's browser through DNS
rebinding (evil.example resolving to 127.0.0.1), so on a loopback bind requests must also *name*
a loopback host. Remote binds need --allow-remote and an API token, checked on every request but
GET /health.
"""

from __future__ import annotations

import hmac
import ipaddress
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from mlx_jina.errors import InputError
from mlx_jina.server.errors import error_response

LOOPBACK_NAMES = ("localhost",)
OPEN_PATHS = ("/health",)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost. Other names count as remote: they may resolve anywhere."""
    host = host.strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, *, allow_remote: bool, api_token: str | None) -> None:
    """Raise InputError unless binding `host` is allowed: loopback, or opted in and protected."""
    if is_loopback(host):
        return
    if not allow_remote:
        raise InputError(f"refusing to listen on {host!r}, which is not loopback: pass --allow-remote "
                         "(and an --api-token) to serve other machines")
    if not api_token:
        raise InputError(f"--allow-remote on {host!r} needs an API token (--api-token or $MLX_JINA_API_TOKEN)")


def _host_name(header: str) -> str:
    """The name in a Host header ("[::1]:8765" -> "::1"); "" if it does not parse."""
    try:
        return urlsplit("//" + header).hostname or ""
    except ValueError:
        return ""


class RequestGuard:
    """ASGI middleware: Host header check (loopback binds) and bearer token (when one is set)."""

    def __init__(self, app: ASGIApp, *, loopback_only: bool, api_token: str | None):
        self.app = app
        self.loopback_only = loopback_only
        self.expected = f"Bearer {api_token}".encode() if api_token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = self._refusal(Headers(scope=scope), scope["path"])
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _refusal(self, headers: Headers, path: str) -> Response | None:
        if self.loopback_only:
            host = _host_name(headers.get("host", ""))
            if not is_loopback(host):
                return error_response(403, "FORBIDDEN_HOST", f"Host {host!r} is not a loopback name; this "
                                      "server only answers requests addressed to localhost/127.0.0.1/[::1]")
        if self.expected is None or path in OPEN_PATHS:
            return None
        given = headers.get("authorization")
        if not given:
            return error_response(401, "AUTH_MISSING_API_KEY", "Authentication required: send the header "
                                  "'Authorization: Bearer <api-token>'", {"WWW-Authenticate": "Bearer"})
        if not hmac.compare_digest(given.encode(), self.expected):
            return error_response(401, "AUTH_INVALID_API_KEY", "Invalid API token", {"WWW-Authenticate": "Bearer"})
        return None
