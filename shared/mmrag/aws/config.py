"""The settings only the AWS backend reads.

Each is a field of mmrag.settings.Settings once the snippet in infra/README.md is applied; until then (and for any
field Settings lacks) the value comes straight from the environment variable MMRAG_<NAME>. The template sets them
on every function (Globals / Environment).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Any

OCR_ENGINES = ("textract", "rapidocr", "none")
OPENSEARCH_SERVICES = ("es", "aoss")
_TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class AwsConfig:
    region: str = ""
    bucket: str = ""
    blob_prefix: str = ""
    incoming_prefix: str = "incoming/"
    documents_table: str = "mmrag-documents"
    jobs_table: str = "mmrag-jobs"
    sessions_table: str = "mmrag-sessions"
    api_keys_table: str = "mmrag-api-keys"
    idempotency_table: str = "mmrag-idempotency"
    session_ttl_days: int = 30
    ingest_queue_url: str = ""
    opensearch_endpoint: str = ""
    opensearch_service: str = "es"
    opensearch_index: str = "mmrag-items"
    sagemaker_endpoint: str = ""
    ocr_engine: str = "textract"
    textract_sns_topic_arn: str = ""
    textract_role_arn: str = ""
    anthropic_secret_arn: str = ""
    trust_authorizer: bool = False
    upload_url_expires_s: int = 900

    @classmethod
    def from_settings(cls, settings: Any = None, environ: dict[str, str] | None = None) -> AwsConfig:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            if settings is not None and hasattr(settings, f.name):
                values[f.name] = getattr(settings, f.name)
                continue
            raw = env.get(f"MMRAG_{f.name.upper()}")
            if raw is None:
                continue
            if f.type in ("bool", bool):
                values[f.name] = raw.strip().lower() in _TRUE
            elif f.type in ("int", int):
                values[f.name] = int(raw)
            else:
                values[f.name] = raw.strip()
        if not values.get("region"):
            values["region"] = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or ""
        config = cls(**values)
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
