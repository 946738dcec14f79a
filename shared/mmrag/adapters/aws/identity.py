"""Who is calling, on AWS: the tenant the API Gateway authorizer found for the caller's key.

Behind API Gateway the REQUEST authorizer (mmrag.lambda_handlers.authorizer) has already checked the Bearer key against
the
hashed keys in DynamoDB; it hands the tenant and the key id to the integration in `requestContext.authorizer`, which
API Gateway builds itself (a client cannot set it). The API functions trust that context, and only it, when their
configuration says they run behind the authorizer (MMRAG_TRUST_AUTHORIZER=true, set in the template on the API
functions only). There are two ways the context reaches the app:

- Mangum (buffered API functions) puts the whole Lambda event in the ASGI scope as `aws.event`;
- the Lambda Web Adapter (the streaming function) sends the event's request context as the `x-amzn-request-context`
  header, which it always sets itself (a client's header of that name is overwritten), to a uvicorn that only
  listens on 127.0.0.1 inside the function.

`AuthorizerContext` (ASGI middleware) reads it once per request into a context variable; `AuthorizerKeys` is the
container's `keys` in that mode, so that the unchanged `caller_for` dependency (`c.keys.tenant_for(token)`) gets the
authorizer's tenant without a second DynamoDB read; `api/deps.py` asks `trusted_caller` first when the container
has one.

The middleware also fixes the base URL: with the default execute-api host the stage ('/prod') is part of the public
URL but not of the event's path, so image URLs in responses would miss it. It sets the ASGI root_path to the part of
`requestContext.path` in front of the event path (the stage, or a custom domain's base path).
"""

from __future__ import annotations

import json
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

REQUEST_CONTEXT_HEADER = b"x-amzn-request-context"


@dataclass(frozen=True)
class Identity:
    tenant: str
    key_id: str


_IDENTITY: ContextVar[Identity | None] = ContextVar("mmrag_authorizer_identity", default=None)


def identity_from_request_context(ctx: Any) -> Identity | None:
    if not isinstance(ctx, dict):
        return None
    auth = ctx.get("authorizer")
    if not isinstance(auth, dict):
        return None
    # REST API Lambda authorizers put the context at the top level; HTTP APIs under "lambda"
    if isinstance(auth.get("lambda"), dict):
        auth = auth["lambda"]
    tenant, key_id = auth.get("tenant"), auth.get("key_id")
    if isinstance(tenant, str) and tenant and isinstance(key_id, str) and key_id:
        return Identity(tenant, key_id)
    return None


def _header(scope: dict[str, Any], name: bytes) -> bytes | None:
    for key, value in scope.get("headers") or []:
        if key.lower() == name:
            return value
    return None


def request_context(scope: dict[str, Any]) -> dict[str, Any] | None:
    """The API Gateway request context of this request, from Mangum's scope or the Lambda Web Adapter's header."""
    event = scope.get("aws.event")
    if isinstance(event, dict):
        ctx = event.get("requestContext")
        return ctx if isinstance(ctx, dict) else None
    raw = _header(scope, REQUEST_CONTEXT_HEADER)
    if raw:
        try:
            ctx = json.loads(raw)
        except ValueError:
            return None
        return ctx if isinstance(ctx, dict) else None
    return None


def identity_from_scope(scope: dict[str, Any]) -> Identity | None:
    return identity_from_request_context(request_context(scope))


def trusted_caller(request: Any) -> Identity | None:
    """For mmrag.api.deps.caller_for in trusted mode: the authorizer's identity of this request, or None."""
    return identity_from_scope(request.scope)


def current_identity() -> Identity | None:
    return _IDENTITY.get()


def _public_root(scope: dict[str, Any], ctx: dict[str, Any] | None) -> str:
    """'/prod' when the public path is '/prod/api/v1/...' and the app sees '/api/v1/...'; else ''."""
    if not ctx or scope.get("root_path"):
        return ""
    public = ctx.get("path")
    path = scope.get("path") or ""
    if not isinstance(public, str) or not path or public == path or not public.endswith(path):
        return ""
    root = public[: -len(path)].rstrip("/")
    return root if root.startswith("/") and "//" not in root else ""


class AuthorizerContext:
    """ASGI middleware: the authorizer's identity in a context variable for the request, and the public root path."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        ctx = request_context(scope)
        root = _public_root(scope, ctx)
        if root:
            scope = {**scope, "root_path": root, "path": root + scope["path"]}
            if scope.get("raw_path"):
                scope["raw_path"] = root.encode() + scope["raw_path"]
        token = _IDENTITY.set(identity_from_request_context(ctx))
        try:
            await self.app(scope, receive, send)
        finally:
            _IDENTITY.reset(token)


class AuthorizerKeys:
    """`keys` of a container that runs behind the authorizer: the tenant is the one the authorizer found.

    tenant_for(key) ignores the key's value on purpose: the authorizer already checked this request's Authorization
    header (it is the authorizer's identity source). Without an authorizer context there is no tenant (401).
    Creating keys still goes to the real key service (keys_admin)."""

    def __init__(self, keys: Any = None):
        self._keys = keys

    def tenant_for(self, key: str) -> str | None:
        identity = _IDENTITY.get()
        return identity.tenant if identity else None

    def create(self, tenant: str, label: str = "") -> Any:
        if self._keys is None:
            raise RuntimeError("no key store configured")
        return self._keys.create(tenant, label)
