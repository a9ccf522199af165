"""API errors and their JSON shapes.

The body carries both the Jina API's error fields (`detail`, `code`: the Jina OpenAPI
`ErrorResponse`) and the OpenAI API's (`error.message`, `error.type`, `error.code`), so either
kind of client shows the real message instead of a generic HTTP error. Under Ollama's /api/ it is
Ollama's `{"error": message}`, which Ollama clients read as a string.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import JSONResponse


class ApiError(Exception):
    """A request the server refuses, with the HTTP status and a Jina-style error code."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


_KINDS = {401: "authentication_error", 403: "permission_error", 404: "not_found_error"}


OLLAMA_PREFIX = "/api/"


def error_response(status: int, code: str, message: str, headers: Mapping[str, str] | None = None, *,
                   path: str = "") -> JSONResponse:
    """The error in the shape of the API `path` belongs to."""
    if path.startswith(OLLAMA_PREFIX):
        return JSONResponse({"error": message}, status_code=status, headers=headers)
    kind = _KINDS.get(status, "invalid_request_error" if status < 500 else "server_error")
    body = {"detail": message, "code": code, "error": {"message": message, "type": kind, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)
