"""Picture URLs on AWS: S3 presigned GETs of the picture's own object, so the bytes come straight from S3 and the
API key never goes into an <img>. A URL names one object (one tenant's picture or thumbnail) and expires after
MMRAG_IMAGE_URL_TTL_S; S3 checks the signature. Presigning is local computation (no request to AWS); the function
that presigns needs s3:GetObject on the pictures, which the URL borrows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from mmrag.core.blob_paths import validate_key
from mmrag.core.image_links import ImageVariant, LinkCheck, owned_object_key
from mmrag.core.models import ImageRecord


class S3PresignedImageLinks:
    def __init__(self, client: Callable[[], Any], bucket: str, blob_prefix: str, lifetime_s: int):
        self._client = client  # made on first use: the functions that never show a picture never build it
        self.bucket = bucket
        prefix = blob_prefix.strip("/")
        self.prefix = f"{validate_key(prefix)}/" if prefix else ""
        self.lifetime_s = lifetime_s
        self._origin: str | None = None

    def url(self, tenant: str, image: ImageRecord, variant: ImageVariant, base_url: str) -> str:
        key = owned_object_key(tenant, image, variant)
        params = {
            "Bucket": self.bucket,
            "Key": self.prefix + key,
            "ResponseContentType": "image/png" if variant is ImageVariant.THUMBNAIL else image.mime,
            "ResponseCacheControl": f"private, max-age={self.lifetime_s}",
        }
        return self._client().generate_presigned_url("get_object", Params=params, ExpiresIn=self.lifetime_s)

    def check(self, tenant: str, image_id: str, variant: ImageVariant, expires: int, signature: str) -> LinkCheck:
        return LinkCheck.INVALID  # no URL of ours points at the API: S3 checks its own signatures

    def origins(self) -> list[str]:
        if self._origin is None:
            params = {"Bucket": self.bucket, "Key": "x"}
            probe = urlsplit(self._client().generate_presigned_url("get_object", Params=params))
            self._origin = f"{probe.scheme}://{probe.netloc}"
        return [self._origin]
