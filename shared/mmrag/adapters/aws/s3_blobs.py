"""Blob store on S3. Keys follow the same rules as the local store; a prefix is a folder ('a/doc_2' never matches
'a/doc_22/...'). Every object is encrypted at rest: SSE-KMS with the given key, else SSE-S3 (AES256)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
from botocore.exceptions import ClientError

from mmrag.core.blob_paths import validate_key

_DELETE_BATCH = 1000  # the DeleteObjects maximum
_MISSING = ("NoSuchKey", "404", "NotFound")


class S3BlobStore:
    def __init__(self, bucket: str, prefix: str = "", client: Any = None, kms_key_id: str | None = None):
        self.bucket = bucket
        prefix = prefix.strip("/")
        self.prefix = f"{validate_key(prefix)}/" if prefix else ""
        self.kms_key_id = kms_key_id
        self.client = client or boto3.client("s3")

    def _key(self, key: str) -> str:
        return self.prefix + validate_key(key)

    def _folder(self, prefix: str) -> str:
        return self._key(prefix.rstrip("/"))

    def _encryption(self) -> dict[str, str]:
        if self.kms_key_id:
            return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.kms_key_id}
        return {"ServerSideEncryption": "AES256"}

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self.client.put_object(
            Bucket=self.bucket, Key=self._key(key), Body=data, ContentType=content_type, **self._encryption()
        )

    def get(self, key: str) -> bytes | None:
        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                return None
            raise
        return obj["Body"].read()

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def _exists(self, full_key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=full_key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                return False
            raise
        return True

    def _pages(self, full_prefix: str) -> Iterator[list[str]]:
        """Full keys under a folder, one list per ListObjectsV2 page (at most 1000)."""
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full_prefix + "/"):
            keys = [obj["Key"] for obj in page.get("Contents", [])]
            if keys:
                yield keys

    def _delete_batch(self, keys: list[str]) -> None:
        for i in range(0, len(keys), _DELETE_BATCH):
            part = keys[i : i + _DELETE_BATCH]
            resp = self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in part], "Quiet": True}
            )
            if resp.get("Errors"):
                first = resp["Errors"][0]
                raise RuntimeError(f"S3 refused to delete {len(resp['Errors'])} objects, e.g. {first}")

    def delete_prefix(self, prefix: str) -> int:
        full = self._folder(prefix)
        count = 0
        # deleting the page just listed is safe: the continuation token points past its last key
        for keys in self._pages(full):
            self._delete_batch(keys)
            count += len(keys)
        if self._exists(full):  # the prefix may also name a single object, as a file does locally
            self.client.delete_object(Bucket=self.bucket, Key=full)
            count += 1
        return count

    def list_keys(self, prefix: str) -> list[str]:
        full = self._folder(prefix)
        found = [k for keys in self._pages(full) for k in keys]
        if not found and self._exists(full):
            found = [full]
        return sorted(k[len(self.prefix) :] for k in found)

    def health(self) -> dict[str, Any]:
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return {"status": "ok", "backend": "s3", "bucket": self.bucket}
        except Exception as exc:  # noqa: BLE001 - health reports, never raises
            return {"status": "error", "backend": "s3", "bucket": self.bucket, "error": str(exc)}
