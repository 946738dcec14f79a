"""Presigned S3 PUTs for files too large to send through API Gateway (10 MB per request, 6 MB per synchronous
Lambda invocation).

The object goes to incoming/<tenant>/<upload id>/<file name>, where the ingest function turns it into a document.
Signature V4 signs Content-Length, so exactly `size` bytes are accepted; the document's type, metadata and
processing options travel in the signed x-amz-meta-mmrag header, so the upload cannot change them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mmrag.adapters.aws.incoming import incoming_key, pack_attributes, safe_file_name
from mmrag.core.models import DirectUpload, new_id


def presign_client(region: str | None) -> Any:
    """S3 client for presigned URLs: Signature V4 and the bucket's regional virtual-hosted endpoint."""
    import boto3
    from botocore.config import Config

    kwargs = {"region_name": region} if region else {}
    return boto3.client("s3", config=Config(signature_version="s3v4", s3={"addressing_style": "virtual"}), **kwargs)


class S3DirectUploads:
    def __init__(self, client: Callable[[], Any], bucket: str, incoming_prefix: str, expires_s: int):
        self._client = client  # made on first use: most invocations never presign
        self.bucket = bucket
        self.incoming_prefix = incoming_prefix
        self.expires_s = expires_s

    def presign(
        self, tenant: str, file_name: str, size: int, content_type: str, attributes: dict[str, Any]
    ) -> DirectUpload:
        upload_id = new_id("upl")
        key = incoming_key(self.incoming_prefix, tenant, f"{upload_id}/{safe_file_name(file_name)}")
        meta = {"mmrag": pack_attributes(attributes)}
        params = {
            "Bucket": self.bucket,
            "Key": key,
            "ContentType": content_type,
            "ContentLength": size,
            "Metadata": meta,
            "ServerSideEncryption": "AES256",
        }
        url = self._client().generate_presigned_url(
            "put_object", Params=params, ExpiresIn=self.expires_s, HttpMethod="PUT"
        )
        headers = {
            "Content-Type": content_type,
            "Content-Length": str(size),
            "x-amz-meta-mmrag": meta["mmrag"],
            "x-amz-server-side-encryption": "AES256",
        }
        return DirectUpload(upload_id, key, url, "PUT", headers, self.expires_s, size)
