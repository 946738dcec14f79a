"""The settings only the AWS backend reads, checked: a typed view of mmrag.settings.Settings (where their defaults and
MMRAG_<NAME> variables are defined) plus the region. The template sets them on every function."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

OCR_ENGINES = ("textract", "rapidocr", "none")
OPENSEARCH_SERVICES = ("es", "aoss")


@dataclass(frozen=True)
class AwsConfig:
    region: str
    bucket: str
    blob_prefix: str
    incoming_prefix: str
    documents_table: str
    jobs_table: str
    sessions_table: str
    api_keys_table: str
    idempotency_table: str
    session_ttl_days: int
    ingest_queue_url: str
    opensearch_endpoint: str
    opensearch_service: str
    opensearch_index: str
    sagemaker_endpoint: str
    ocr_engine: str
    textract_sns_topic_arn: str
    textract_role_arn: str
    anthropic_secret_arn: str
    trust_authorizer: bool
    upload_url_expires_s: int

    @classmethod
    def from_settings(cls, settings: Any, environ: Mapping[str, str] | None = None) -> AwsConfig:
        env = os.environ if environ is None else environ
        values = {f.name: getattr(settings, f.name) for f in fields(cls) if f.name != "region"}
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or ""
        config = cls(region=region, **values)
        config.check()
        return config

    def check(self) -> None:
        if self.ocr_engine not in OCR_ENGINES:
            raise ValueError(f"MMRAG_OCR_ENGINE must be one of {OCR_ENGINES}, not {self.ocr_engine!r}")
        if self.opensearch_service not in OPENSEARCH_SERVICES:
            raise ValueError(
                f"MMRAG_OPENSEARCH_SERVICE must be one of {OPENSEARCH_SERVICES}, not {self.opensearch_service!r}"
            )
        if self.incoming_prefix and not self.incoming_prefix.endswith("/"):
            raise ValueError("MMRAG_INCOMING_PREFIX must end with '/'")

    @property
    def blob_key_prefix(self) -> str:
        """What S3BlobStore puts in front of every blob key ('' or 'prefix/')."""
        prefix = self.blob_prefix.strip("/")
        return f"{prefix}/" if prefix else ""
