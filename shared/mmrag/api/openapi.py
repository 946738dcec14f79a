"""The OpenAPI document, made to say what the API really does.

FastAPI's generated document knows the routes and their typed bodies, but not what happens around them; this module
adds it: the Bearer key (and which operations need it), the request bodies of the two upload endpoints (which read
the request themselves: JSON, and multipart for the single upload), the `{code, message, error}` envelope on every
error status an operation can answer (400 instead of FastAPI's 422), the success envelope, pictures as image/*, and
the answer stream as text/event-stream.

`make openapi` writes it to shared/mmrag/api/openapi.json (mmrag.api.openapi_file); a test fails when the served
document and that file differ.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema

from mmrag.api.envelope import STATUS_CODES
from mmrag.api.schemas import BatchItem, BatchUploadRequest, UploadRequest

SCHEME = "bearerAuth"
REF = "#/components/schemas/{model}"
PUBLIC = {("get", "/api/v1/health")}  # every other operation needs `Authorization: Bearer <key>`
UPLOAD = ("post", "/api/v1/documents/upload")
BATCH_UPLOAD = ("post", "/api/v1/documents/batch-upload")
STREAM = ("post", "/api/v1/qa/ask-stream")
CHAT_STREAM = ("post", "/api/v1/qa/chat-stream")
PICTURES = {("get", "/api/v1/images/{image_id}"), ("get", "/api/v1/images/{image_id}/thumbnail")}
# Statuses beyond the general rules of `error_statuses`, and why.
EXTRA_STATUSES: dict[tuple[str, str], set[int]] = {
    UPLOAD: {415},  # the bytes are not the declared type, or no format we read
    ("post", "/api/v1/search/image"): {415},  # an unreadable query picture
    ("post", "/api/v1/search/multimodal"): {415},
    ("post", "/api/v1/search/similar"): {404},  # the reference does not exist
    ("post", "/api/v1/qa/ask"): {415},  # an unreadable question or context picture
    STREAM: {415},
    CHAT_STREAM: {415},
    ("post", "/api/v1/qa/chat"): {415},
    **{op: {403} for op in PICTURES},  # a signed picture URL that expired or is not ours
    ("post", "/api/v1/documents/{document_id}/reprocess"): {409},  # the document is still being processed
}
STATUS_TEXT = {
    400: "Invalid parameter",
    401: "Missing, unknown or revoked API key",
    403: "Forbidden",
    404: "Not found (another tenant's resources are not found either)",
    409: "Conflict with the resource's state",
    413: "Request body or file too large",
    415: "Unsupported format",
    429: "Rate limit exceeded; Retry-After says when to come back",
    500: "Internal error (a bug)",
    503: "A component the request needs is unavailable",
}
# One Server-Sent Event (OpenAPI 3.1: the `schema` of text/event-stream describes each event).
SSE_EVENT = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "event": {"type": "string"},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {
                "type": "object",
                "required": ["type", "data"],
                "properties": {
                    "type": {
                        "enum": [
                            "retrieval_start",
                            "retrieval_complete",
                            "generation_start",
                            "content_chunk",
                            "sources",
                            "complete",
                            "error",
                        ]
                    },
                    "data": {"type": "object"},
                },
            },
        },
    },
}
ErrorCode = Literal[
    "INVALID_PARAMETER",
    "UNAUTHORIZED",
    "FORBIDDEN",
    "NOT_FOUND",
    "CONFLICT",
    "FILE_TOO_LARGE",
    "UNSUPPORTED_FORMAT",
    "RATE_LIMIT_EXCEEDED",
    "INTERNAL_ERROR",
    "SERVICE_UNAVAILABLE",
]


class ErrorInfo(BaseModel):
    error_code: ErrorCode
    error_detail: str = Field(description="what went wrong, in English; echoed input is cut to a short prefix")
    timestamp: str
    request_id: str = Field(description="the X-Request-ID the client sent, or one the server made")


class ErrorResponse(BaseModel):
    """The contract's error envelope (section 4.2)."""

    code: int = Field(description="the HTTP status")
    message: str = Field(description="the error code's description, in the language of Accept-Language (zh, en)")
    error: ErrorInfo


class SuccessResponse(BaseModel):
    """The contract's success envelope (section 4.1)."""

    code: Literal[200]
    message: str = Field(description="in the language of Accept-Language: Chinese (default) or English")
    data: Any


def error_statuses(method: str, path: str, operation: dict[str, Any]) -> set[int]:
    statuses = {500}
    if (method, path) not in PUBLIC:
        statuses |= {401, 429, 503}
    if operation.get("parameters") or operation.get("requestBody"):
        statuses.add(400)
    if operation.get("requestBody"):
        statuses.add(413)
    if "{" in path:
        statuses.add(404)
    return statuses | EXTRA_STATUSES.get((method, path), set())


def _component_schemas() -> dict[str, Any]:
    models = [ErrorResponse, SuccessResponse, UploadRequest, BatchUploadRequest, BatchItem]
    _, top = models_json_schema([(m, "validation") for m in models], ref_template=REF)
    schemas = top["$defs"]
    batch = schemas["BatchUploadRequest"]["properties"]["documents"]
    batch["items"] = {"$ref": REF.format(model="BatchItem")}  # each entry is checked on its own, failing alone
    return schemas


def _multipart(upload: dict[str, Any]) -> dict[str, Any]:
    """The upload's multipart form: the file as a part, the object fields as JSON parts, the rest as text."""
    properties: dict[str, Any] = {}
    encoding: dict[str, Any] = {}
    for name, prop in upload["properties"].items():
        if name == "content":
            continue  # raw text goes in JSON uploads
        if name == "file":
            properties[name] = {"type": "string", "format": "binary", "description": "the file's bytes"}
        elif "$ref" in prop or prop.get("type") == "object":
            properties[name] = prop
            encoding[name] = {"contentType": "application/json"}
        else:
            properties[name] = prop
    schema = {"type": "object", "required": ["file"], "properties": properties}
    return {"schema": schema, "encoding": encoding}


def _json(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": REF.format(model=ref)}}}


def make_truthful(document: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(document)
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name, schema in _component_schemas().items():
        schemas.setdefault(name, schema)
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    components["securitySchemes"] = {
        SCHEME: {"type": "http", "scheme": "bearer", "description": "an API key: `Authorization: Bearer <key>`"}
    }

    for path, operations in doc.get("paths", {}).items():
        for method, op in operations.items():
            key = (method, path)
            if key == UPLOAD:
                op["requestBody"] = {
                    "required": True,
                    "content": {**_json("UploadRequest"), "multipart/form-data": _multipart(schemas["UploadRequest"])},
                }
            elif key == BATCH_UPLOAD:
                op["requestBody"] = {"required": True, "content": _json("BatchUploadRequest")}
            if key not in PUBLIC:
                op["security"] = [{SCHEME: []}]
            responses = op.setdefault("responses", {})
            responses.pop("422", None)
            ok = responses.setdefault("200", {"description": "Successful Response"})
            if key in (STREAM, CHAT_STREAM):
                ok["description"] = (
                    "Server-Sent Events, each `data:` line one JSON event; the last is complete or error"
                )
                ok["content"] = {"text/event-stream": {"schema": SSE_EVENT}}
            elif key in PICTURES:
                ok["content"] = {"image/*": {"schema": {"type": "string", "format": "binary"}}}
            else:
                ok["content"] = _json("SuccessResponse")
            for status in sorted(error_statuses(method, path, op)):
                response: dict[str, Any] = {
                    "description": f"{STATUS_CODES[status]}: {STATUS_TEXT[status]}",
                    "content": _json("ErrorResponse"),
                }
                if status == 429:
                    response["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}
                responses[str(status)] = response
    return doc


def install_openapi(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = make_truthful(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
