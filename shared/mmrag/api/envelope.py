"""The contract's response envelope (section 4) and error mapping."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from mmrag.core.models import utcnow
from mmrag.errors import MMRagError, RateLimited

log = logging.getLogger(__name__)

_STATUS_CODES = {
    400: "INVALID_PARAMETER",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "INVALID_PARAMETER",
    413: "FILE_TOO_LARGE",
    415: "UNSUPPORTED_FORMAT",
    429: "RATE_LIMIT_EXCEEDED",
    503: "SERVICE_UNAVAILABLE",
}
_MESSAGES = {
    "INVALID_PARAMETER": "参数错误 / invalid parameter",
    "UNAUTHORIZED": "未授权 / unauthorized",
    "FORBIDDEN": "禁止访问 / forbidden",
    "NOT_FOUND": "资源不存在 / not found",
    "INTERNAL_ERROR": "服务器内部错误 / internal error",
    "SERVICE_UNAVAILABLE": "服务暂不可用 / unavailable",
    "RATE_LIMIT_EXCEEDED": "请求频率超限 / rate limit exceeded",
    "FILE_TOO_LARGE": "文件过大 / file too large",
    "UNSUPPORTED_FORMAT": "不支持的文件格式 / unsupported format",
}


def ok(data: Any, message: str = "操作成功") -> dict[str, Any]:
    return {"code": 200, "message": message, "data": data}


def request_id(request: Request) -> str:
    rid = getattr(request.state, "request_id", None)
    if not rid:
        rid = request.headers.get("x-request-id") or f"req_{uuid.uuid4().hex[:16]}"
        request.state.request_id = rid
    return rid


def error_response(
    request: Request,
    status: int,
    code: str,
    detail: str,
    message: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    rid = request_id(request)
    body = {
        "code": status,
        "message": message or _MESSAGES.get(code, "error"),
        "error": {"error_code": code, "error_detail": detail, "timestamp": utcnow(), "request_id": rid},
    }
    return JSONResponse(body, status_code=status, headers={**(headers or {}), "X-Request-ID": rid})


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for e in exc.errors():
        loc = ".".join(str(x) for x in e.get("loc", ()) if x not in ("body", "query", "path"))
        if e.get("type") == "json_invalid":
            return "the request body is not valid JSON"
        parts.append(f"{loc or 'body'}: {e.get('msg')}")
    return "; ".join(parts)[:1000]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(MMRagError)
    async def _mmrag(request: Request, exc: MMRagError):
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
        return error_response(request, exc.status, exc.code, exc.detail, exc.message, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        return error_response(request, 400, "INVALID_PARAMETER", _describe_validation(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        code = _STATUS_CODES.get(exc.status_code, "INTERNAL_ERROR")
        return error_response(request, exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(request, 500, "INTERNAL_ERROR", "an unexpected error occurred; see the server log")
