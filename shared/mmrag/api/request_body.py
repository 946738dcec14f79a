"""Request bodies before any route reads them.

One size limit for every endpoint (`JSON_BODY_LIMIT`); the two upload endpoints have their own, larger one, derived
from MMRAG_MAX_UPLOAD_MB. A larger body is 413 before it is read. A JSON body is parsed once here by `loads_strict`,
which refuses what our code cannot hold (lone surrogates, which no UTF-8 store or response can carry; nesting past
`MAX_JSON_DEPTH`; NaN, Infinity and numbers that overflow to them) with a 400, before any route sees it.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from starlette.requests import Request

from mmrag.api.envelope import describe, error_response
from mmrag.errors import FileTooLarge, InvalidParameter, MMRagError

JSON_BODY_LIMIT = 16 * 1024 * 1024
MAX_JSON_DEPTH = 64
PARSED_JSON_KEY = "mmrag.parsed_json"  # scope key: the body, already parsed by loads_strict
UPLOAD_PATH = "/api/v1/documents/upload"
BATCH_UPLOAD_PATH = "/api/v1/documents/batch-upload"
BATCH_FACTOR = 10  # a batch upload may carry this many uploads' worth of bytes
_SURROGATE = re.compile("[\ud800-\udfff]")


def upload_body_limit(max_upload_bytes: int) -> int:
    """A file of max_upload_bytes as base64 inside JSON, with room for the other fields."""
    return max_upload_bytes * 4 // 3 + 1024 * 1024


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"the number {text[:32]} is out of range")
    return value


def loads_strict(raw: bytes | str) -> Any:
    """json.loads for untrusted input; every refusal is InvalidParameter."""
    try:
        value = json.loads(raw, parse_constant=_no_constant, parse_float=_finite_float)
    except RecursionError:
        raise InvalidParameter(f"the JSON is nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, the hooks above, ints past 4300 digits
        raise InvalidParameter(f"the request body is not valid JSON: {str(exc)[:200]}") from None
    _check_values(value)
    return value


def _check_values(value: Any) -> None:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if not item.isascii() and _SURROGATE.search(item):
                raise InvalidParameter("the JSON holds a lone UTF-16 surrogate (\\ud800-\\udfff), which is not text")
        elif isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise InvalidParameter(f"the JSON is nested deeper than {MAX_JSON_DEPTH} levels")
            if isinstance(item, dict):
                stack.extend((k, depth) for k in item)
                stack.extend((v, depth + 1) for v in item.values())
            else:
                stack.extend((v, depth + 1) for v in item)


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class RequestBodyMiddleware:
    """Pure ASGI: applies the limits and the strict JSON parse, then hands the route the same bytes."""

    def __init__(self, app):
        self.app = app

    def limit_for(self, scope) -> int:
        path = scope.get("path", "")
        if path.endswith(UPLOAD_PATH) or path.endswith(BATCH_UPLOAD_PATH):
            container = scope["app"].state.container
            limit = upload_body_limit(container.documents.max_upload_bytes)
            return limit * BATCH_FACTOR if path.endswith(BATCH_UPLOAD_PATH) else limit
        return JSON_BODY_LIMIT

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        headers = dict(scope.get("headers") or ())
        length = headers.get(b"content-length", b"").strip()
        too_large = FileTooLarge(f"the request body is larger than this endpoint's limit of {limit} bytes")
        if length.isdigit() and int(length) > limit:
            await self._refuse(scope, receive, send, too_large)
            return

        if not _is_json(headers.get(b"content-type", b"").decode("latin-1")):
            await self.app(scope, _counting(receive, limit, too_large), send)
            return

        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before sending the whole body
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._refuse(scope, receive, send, too_large)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body:
            try:
                scope[PARSED_JSON_KEY] = loads_strict(body)
            except InvalidParameter as exc:
                await self._refuse(scope, receive, send, exc)
                return
        await self.app(scope, _replay(body, receive), send)

    async def _refuse(self, scope, receive, send, exc: MMRagError) -> None:
        response = error_response(Request(scope, receive), exc.status, exc.code, describe(exc))
        await response(scope, receive, send)


def _replay(body: bytes, receive):
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _counting(receive, limit: int, too_large: MMRagError):
    size = 0

    async def counting():
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > limit:
                raise too_large
        return message

    return counting
