"""Picture URLs a browser can load without the API key (an <img> cannot send an Authorization header): short-lived,
and valid for one tenant, one picture and one variant only. Local adapter: mmrag.adapters.local.hmac_links (HMAC
with a server secret, checked by GET /api/v1/images); AWS: mmrag.adapters.aws.s3_presigned_links (S3 presigned GET
URLs, checked by S3)."""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Protocol

from mmrag.core.blob_paths import document_prefix, validate_key
from mmrag.core.models import ImageRecord
from mmrag.errors import NotFound


class ImageVariant(StrEnum):
    FULL = "full"
    THUMBNAIL = "thumbnail"


class LinkCheck(StrEnum):
    VALID = "valid"
    EXPIRED = "expired"
    INVALID = "invalid"


class ImageLinks(Protocol):
    def url(self, tenant: str, image: ImageRecord, variant: ImageVariant, base_url: str) -> str:
        """A URL of the picture (or its thumbnail) that works without the API key until it expires. `image` must
        come from a tenant-scoped read of `tenant`'s own pictures; `base_url` is the API's root as the client sees
        it."""
        ...

    def check(self, tenant: str, image_id: str, variant: ImageVariant, expires: int, signature: str) -> LinkCheck:
        """Whether a signature of ours vouches for this tenant, picture, variant and expiry now."""
        ...

    def origins(self) -> list[str]:
        """Origins other than the API's own that the URLs point to (for the Content-Security-Policy's img-src)."""
        ...


def rounded_expiry(now: float, lifetime_s: int) -> int:
    """An expiry at least `lifetime_s` ahead, rounded up to a bucket of a quarter of it (at most 15 minutes), so
    the same picture gets the same URL for a while and browsers and proxies can cache it."""
    bucket = max(60, min(900, lifetime_s // 4))
    return int(math.ceil((now + lifetime_s) / bucket) * bucket)


def owned_object_key(tenant: str, image: ImageRecord, variant: ImageVariant) -> str:
    """The blob key of the picture or its thumbnail, or NotFound if it lies outside the tenant's document: the
    record comes from a tenant-scoped read, and a URL is never made for anything else whatever a caller passes."""
    key = validate_key(image.thumb_key if variant is ImageVariant.THUMBNAIL else image.blob_key)
    if not key.startswith(document_prefix(tenant, image.document_id) + "/"):
        raise NotFound(f"image {image.image_id} not found")
    return key
