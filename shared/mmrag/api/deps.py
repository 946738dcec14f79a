"""Request-scoped dependencies: the service container, the caller (tenant) and rate limits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Depends, Query, Request

from mmrag.api.rate_headers import STATE_KEY
from mmrag.core.api_keys import hash_api_key
from mmrag.core.image_links import ImageVariant, LinkCheck
from mmrag.errors import Forbidden, RateLimited, Unauthorized


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
        try:
            rate = c.rate_limiter.check(key_id, endpoint_class)
        except RateLimited:
            setattr(request.state, STATE_KEY, c.rate_limiter.state(key_id, endpoint_class))
            raise
        if rate is not None:
            setattr(request.state, STATE_KEY, rate)
        request.state.tenant = tenant
        return Caller(tenant=tenant, key_id=key_id)

    return dependency


upload_caller = caller_for("upload")
query_caller = caller_for("query")
search_caller = caller_for("search")
qa_caller = caller_for("qa")


def image_caller(variant: ImageVariant) -> Callable[..., Caller]:
    """A picture may be fetched with the API key (as every call) or with the signed URL the API handed out: an
    <img> cannot send an Authorization header. A valid signature names the tenant; with no valid signature the key
    decides; a signature that is expired or not ours, with no key, is 403."""
    by_key = caller_for("query")

    def dependency(
        request: Request,
        image_id: str,
        t: str = Query("", description="signed URL: the tenant it was made for"),
        exp: str = Query("", description="signed URL: when it expires, in Unix seconds"),
        sig: str | None = Query(None, description="signed URL: its signature"),
        c=Depends(container),
    ) -> Caller:
        if sig is None or getattr(c, "trusted_caller", None) is not None:
            return by_key(request, c)
        tenant, expires, signature = t, exp, sig
        verdict = LinkCheck.INVALID
        if tenant and expires.isdigit() and len(expires) <= 12:
            verdict = c.image_links.check(tenant, image_id, variant, int(expires), signature)
        if verdict is LinkCheck.VALID:
            request.state.tenant = tenant
            return Caller(tenant=tenant, key_id="signed-url")
        if request.headers.get("authorization"):
            return by_key(request, c)
        if verdict is LinkCheck.EXPIRED:
            raise Forbidden("image link expired", "ask the API for the picture again to get a fresh URL")
        raise Forbidden("invalid image link", "the signature does not match this picture")

    return dependency


full_image_caller = image_caller(ImageVariant.FULL)
thumbnail_caller = image_caller(ImageVariant.THUMBNAIL)
