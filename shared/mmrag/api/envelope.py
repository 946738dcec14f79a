"""The contract's response envelope (section 4) and error mapping.

Every error leaves as `{code, message, error: {error_code, error_detail, timestamp, request_id}}`: `message` is the
error code's description in the client's language (api/messages.py), `error_detail` the specifics, with any long run
of echoed input cut to a short prefix. `ErrorBoundaryMiddleware` makes sure no exception escapes the app: an
exception that reaches the ASGI server makes it close the connection, and the client's next request on that
keep-alive connection is reset.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from mmrag.api import messages
from mmrag.core.models import utcnow
from mmrag.errors import MMRagError, RateLimited

log = logging.getLogger(__name__)

STATUS_CODES = {
    400: "INVALID_PARAMETER",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "INVALID_PARAMETER",
    409: "CONFLICT",
    413: "FILE_TOO_LARGE",
    415: "UNSUPPORTED_FORMAT",
    429: "RATE_LIMIT_EXCEEDED",
    500: "INTERNAL_ERROR",
    503: "SERVICE_UNAVAILABLE",
}
ECHO_CHARS = 64  # what an error keeps of one long run of input (an id, a URL, base64)
MAX_DETAIL_CHARS = 1000
_LONG_RUN = re.compile(rf"\S{{{ECHO_CHARS + 16},}}")


def ok(data: Any, message: str = "操作成功") -> dict[str, Any]:
    return {"code": 200, "message": messages.success_message(message), "data": data}


def request_id(request: Request) -> str:
    rid = getattr(request.state, "request_id", None)
    if not rid:
        rid = (request.headers.get("x-request-id") or "").strip()[:128] or f"req_{uuid.uuid4().hex[:16]}"
        request.state.request_id = rid
    return rid


def clip(text: str) -> str:
    """Error details echo at most a short prefix of each long run of input, and stay valid UTF-8."""
    text = _LONG_RUN.sub(lambda m: m.group()[:ECHO_CHARS] + "…", text[: MAX_DETAIL_CHARS * 8])
    if len(text) > MAX_DETAIL_CHARS:
        text = text[:MAX_DETAIL_CHARS] + "…"
    return text.encode("utf-8", "replace").decode("utf-8")


def error_body(status: int, code: str, detail: str, rid: str) -> dict[str, Any]:
    return {
        "code": status,
        "message": messages.error_message(code),
        "error": {"error_code": code, "error_detail": clip(detail), "timestamp": utcnow(), "request_id": rid},
    }


def error_response(
    request: Request, status: int, code: str, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    rid = request_id(request)
    body = error_body(status, code, detail, rid)
    return JSONResponse(body, status_code=status, headers={**(headers or {}), "X-Request-ID": rid})


def describe(exc: MMRagError) -> str:
    """The error's specifics: its message, and its detail when that says more."""
    if not exc.detail or exc.detail == exc.message:
        return exc.message
    if exc.detail.startswith(exc.message):
        return exc.detail
    return f"{exc.message}: {exc.detail}"


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for e in exc.errors():
        loc = ".".join(str(x) for x in e.get("loc", ()) if x not in ("body", "query", "path"))
        if e.get("type") == "json_invalid":
            reason = (e.get("ctx") or {}).get("error")
            return f"the request body is not valid JSON: {reason}" if reason else "the request body is not valid JSON"
        parts.append(f"{loc or 'body'}: {e.get('msg')}")
    return "; ".join(parts)


def allowed_methods(app: FastAPI, scope: dict[str, Any]) -> list[str]:
    """Every method some route serves at this path: Starlette's 405 names only the first matching route's."""
    probe = {**scope, "method": "__none__"}
    matching = [
        r for r in _endpoints(app.router.routes) if getattr(r, "methods", None) and r.matches(probe)[0] is Match.PARTIAL
    ]
    # "/documents/upload" also fits "/documents/{document_id}": the resource is the route named by the literal path
    literal = [r for r in matching if not getattr(r, "param_convertors", None)]
    return sorted({m for r in (literal or matching) for m in r.methods})


def _endpoints(routes: Any) -> Any:
    for route in routes:
        inner = getattr(route, "original_router", None)  # an included router: FastAPI keeps it as one entry
        yield from _endpoints(inner.routes) if inner is not None else (route,)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(MMRagError)
    async def _mmrag(request: Request, exc: MMRagError):
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
        return error_response(request, exc.status, exc.code, describe(exc), headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        return error_response(request, 400, "INVALID_PARAMETER", _describe_validation(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        code = STATUS_CODES.get(exc.status_code, "INTERNAL_ERROR")
        headers = dict(exc.headers or {})
        detail = str(exc.detail)
        if exc.status_code == 405:
            methods = allowed_methods(request.app, request.scope) or headers.get("Allow", "").split(", ")
            headers["Allow"] = ", ".join(m for m in methods if m)
            detail = f"{request.method} is not allowed here; allowed: {headers['Allow']}"
        return error_response(request, exc.status_code, code, detail, headers)


class ErrorBoundaryMiddleware:
    """The outermost of our middlewares: negotiates the response language, and turns any exception that nothing else
    handled into the 500 envelope (or, once a response has started, ends it) instead of letting it reach the server.
    Pure ASGI, so streamed answers are not buffered."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or ())
        messages.set_language(messages.negotiate(headers.get(b"accept-language", b"").decode("latin-1")))
        started = finished = False

        async def tracking_send(message):
            nonlocal started, finished
            if message["type"] == "http.response.start":
                started = True
                extra = [(b"content-language", messages.current_language().encode()), (b"vary", b"Accept-Language")]
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                finished = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if finished:
                return
            if started:  # a stream broke off: end it cleanly so the connection stays usable
                try:
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                except Exception:
                    log.debug("the client went away before the broken stream could be ended")
                return
            state = scope.setdefault("state", {})
            rid = state.get("request_id") or f"req_{uuid.uuid4().hex[:16]}"
            detail = "an unexpected error occurred; see the server log"
            response = JSONResponse(
                error_body(500, "INTERNAL_ERROR", detail, rid), status_code=500, headers={"X-Request-ID": rid}
            )
            await response(scope, receive, tracking_send)
