"""Safe by default: loopback only, a bearer token for anything wider, no DNS rebinding, no
cross-site requests, and bounded admission.

A server on 127.0.0.1 is still reachable from web pages in the user's browser: through DNS
rebinding (evil.example resolving to 127.0.0.1), so on a loopback bind requests must also *name*
a loopback host; and through plain cross-site requests (a browser sends a `text/plain` POST to
any address without asking), so a request carrying an `Origin` must come from an origin given
with `--cors-origin`, and a request with a body must be `application/json` (which no page can
send cross-site without a CORS preflight). Remote binds need --allow-remote and an API token,
checked on every request but GET /health.

The guards are ASGI middleware around the whole app, so every route gets them, whoever adds it.
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
BODY_METHODS = ("POST", "PUT", "PATCH")
#: Retry-After (seconds) sent with 429: long enough for a round or two to finish.
RETRY_AFTER_S = 1


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
                         "(and an API token) to serve other machines")
    if not api_token:
        raise InputError(f"--allow-remote on {host!r} needs an API token (--api-token-file, "
                         "$MLX_JINA_API_TOKEN or --api-token)")


def check_origin(origin: str) -> str:
    """A --cors-origin value as browsers send it in `Origin` ("scheme://host[:port]", no path or
    trailing slash); raise InputError naming the problem otherwise."""
    parts = urlsplit(origin)
    if origin == "null":  # sent by sandboxed frames and file:// pages of any site: allowing it allows all
        raise InputError("--cors-origin 'null' would let any sandboxed page call the server; name the app's origin")
    if not parts.scheme or not parts.netloc or parts.path or parts.query or parts.fragment:
        raise InputError(f"--cors-origin {origin!r} is not an origin like 'app://obsidian.md' or "
                         "'http://localhost:3000' (scheme://host[:port], no path)")
    return origin


def _host_name(header: str) -> str:
    """The name in a Host header ("[::1]:8765" -> "::1"); "" if it does not parse."""
    try:
        return urlsplit("//" + header).hostname or ""
    except ValueError:
        return ""


class SiteGuard:
    """Outermost middleware: who may address us at all. The Host header must name loopback (on
    a loopback bind) and an `Origin`, when a browser sends one, must be an allowed one. Runs
    before CORS, so refused origins get no CORS headers."""

    def __init__(self, app: ASGIApp, *, loopback_only: bool, cors_origins: tuple[str, ...]):
        self.app = app
        self.loopback_only = loopback_only
        self.origins = frozenset(cors_origins)

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
                                      "server only answers requests addressed to localhost/127.0.0.1/[::1]", path=path)
        origin = headers.get("origin")
        if origin is not None and origin not in self.origins:
            allowed = ", ".join(sorted(self.origins)) or "none"
            return error_response(403, "FORBIDDEN_ORIGIN", f"Origin {origin!r} is not allowed (allowed: {allowed}); "
                                  "start the server with --cors-origin ORIGIN to let that web page or app call it",
                                  path=path)
        return None


def bearer_token(header: str) -> str | None:
    """The token of an `Authorization: Bearer TOKEN` header, the scheme matched case-insensitively
    (RFC 9110 section 11.1); None for any other scheme or shape."""
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


class AccessGuard:
    """Inner middleware (inside CORS, so its refusals carry CORS headers for allowed origins):
    the bearer token, a JSON content type on requests with a body, and a bound on the request
    bodies admitted at once (body bytes held by requests being read, queued or computed)."""

    def __init__(self, app: ASGIApp, *, api_token: str | None, max_body_bytes: int, max_pending_bytes: int):
        self.app = app
        self.expected = api_token.encode() if api_token else None
        self.max_body = max_body_bytes
        self.max_pending = max_pending_bytes
        self.pending = 0  # bytes declared by the requests now admitted (all on the event loop thread)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        path = scope["path"]
        refusal = self._auth_refusal(headers, path) or self._body_refusal(headers, scope["method"], path)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        size = int(headers.get("content-length") or 0)
        self.pending += size
        try:
            await self.app(scope, receive, send)
        finally:
            self.pending -= size

    def _auth_refusal(self, headers: Headers, path: str) -> Response | None:
        if self.expected is None or path in OPEN_PATHS:
            return None
        given = headers.get("authorization")
        challenge = {"WWW-Authenticate": "Bearer"}
        if not given:
            return error_response(401, "AUTH_MISSING_API_KEY", "Authentication required: send the header "
                                  "'Authorization: Bearer <api-token>'", challenge, path=path)
        token = bearer_token(given)
        if token is None:
            return error_response(401, "AUTH_INVALID_API_KEY", "The Authorization header must be "
                                  "'Bearer <api-token>'", challenge, path=path)
        if not hmac.compare_digest(token.encode(), self.expected):
            return error_response(401, "AUTH_INVALID_API_KEY", "Invalid API token", challenge, path=path)
        return None

    def _body_refusal(self, headers: Headers, method: str, path: str) -> Response | None:
        if method not in BODY_METHODS:
            return None
        media_type = headers.get("content-type", "").partition(";")[0].strip().lower()
        if media_type != "application/json":
            return error_response(415, "UNSUPPORTED_MEDIA_TYPE", f"Content-Type {media_type or 'none'!r} is not "
                                  "supported: send the JSON body with 'Content-Type: application/json'", path=path)
        declared = headers.get("content-length")
        if declared is None or not declared.isdigit():
            return error_response(411, "LENGTH_REQUIRED", "send the request body with a Content-Length header",
                                  path=path)
        size = int(declared)
        if size > self.max_body:
            return error_response(413, "REQUEST_TOO_LARGE",
                                  f"request body is {size} bytes; the limit is {self.max_body}", path=path)
        if self.pending and self.pending + size > self.max_pending:
            return error_response(429, "SERVER_BUSY", f"the server holds {self.pending} bytes of requests already "
                                  f"(limit {self.max_pending}); retry in {RETRY_AFTER_S} s",
                                  {"Retry-After": str(RETRY_AFTER_S)}, path=path)
        return None
