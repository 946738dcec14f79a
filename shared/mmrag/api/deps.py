"""Request-scoped dependencies: the service container, the caller (tenant) and rate limits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Depends, Request

from mmrag.core.api_keys import hash_api_key
from mmrag.errors import Unauthorized


@dataclass(frozen=True)
class Caller:
    tenant: str
    key_id: str


def container(request: Request):
    return request.app.state.container


def caller_for(endpoint_class: str) -> Callable[..., Caller]:
    """A dependency that authenticates the Bearer key and counts the request against its rate limit."""

    def dependency(request: Request, c=Depends(container)) -> Caller:
        trusted = getattr(c, "trusted_caller", None)
        if trusted is not None:
            # Behind the API Gateway authorizer (AWS, MMRAG_TRUST_AUTHORIZER=true): the authorizer checked the key
            # and usage plans count the request; the tenant is the authorizer's, from this request's context only.
            identity = trusted(request)
            if identity is None:
                raise Unauthorized("missing API key", "send 'Authorization: Bearer <API key>' through the API")
            request.state.tenant = identity.tenant
            return Caller(tenant=identity.tenant, key_id=identity.key_id)
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("missing API key", "send 'Authorization: Bearer <API key>'")
        tenant = c.keys.tenant_for(token)
        if tenant is None:
            raise Unauthorized("invalid API key", "the API key is unknown or revoked")
        key_id = hash_api_key(token)[:16]
        c.rate_limiter.check(key_id, endpoint_class)
        request.state.tenant = tenant
        return Caller(tenant=tenant, key_id=key_id)

    return dependency


upload_caller = caller_for("upload")
query_caller = caller_for("query")
search_caller = caller_for("search")
qa_caller = caller_for("qa")
