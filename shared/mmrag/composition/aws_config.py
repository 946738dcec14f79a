"""The settings only the AWS backend reads, checked: a typed view of mmrag.settings.Settings (where their defaults and
MMRAG_<NAME> variables are defined) plus the region. The template sets them on every function."""

from __future__ import annotations

import os
import re
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
    sagemaker_rerank_model: str
    bedrock_rerank_models: tuple[str, ...]
    bedrock_rerank_region: str
    rerank_model: str
    ocr_engine: str
    textract_sns_topic_arn: str
    textract_role_arn: str
    anthropic_secret_arn: str
    trust_authorizer: bool
    upload_url_expires_s: int

    @classmethod
    def from_settings(cls, settings: Any, environ: Mapping[str, str] | None = None) -> AwsConfig:
        env = os.environ if environ is None else environ
        derived = ("region", "bedrock_rerank_models", "bedrock_rerank_region", "rerank_model")
        values = {f.name: getattr(settings, f.name) for f in fields(cls) if f.name not in derived}
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or ""
        bedrock_rerank = tuple(settings.list_of(settings.bedrock_rerank_models))
        # The default reranker: MMRAG_RERANK_MODEL when it is set; otherwise, on AWS, the first Bedrock rerank model
        # (the local default is the CPU cross-encoder, which here only the SageMaker endpoint serves).
        if "rerank_model" in settings.model_fields_set:
            rerank_model = settings.rerank_model
        else:
            rerank_model = (bedrock_rerank or (settings.sagemaker_rerank_model or settings.rerank_model,))[0]
        config = cls(
            region=region,
            bedrock_rerank_models=bedrock_rerank,
            bedrock_rerank_region=settings.bedrock_rerank_region or region,
            rerank_model=rerank_model,
            **values,
        )
        config.check()
        return config

    def check(self) -> None:
        if self.ocr_engine not in OCR_ENGINES:
            raise ValueError(f"MMRAG_OCR_ENGINE must be one of {OCR_ENGINES}, not {self.ocr_engine!r}")
        if self.opensearch_service not in OPENSEARCH_SERVICES:
            raise ValueError(
                f"MMRAG_OPENSEARCH_SERVICE must be one of {OPENSEARCH_SERVICES}, not {self.opensearch_service!r}"
            )
        for model in self.bedrock_rerank_models:
            if not re.fullmatch(r"arn:[\w:./-]+|[a-z0-9.-]{1,63}(:[a-z0-9-]{1,63}){0,2}", model):
                raise ValueError(f"MMRAG_BEDROCK_RERANK_MODELS: {model!r} is not a Bedrock model id or ARN")
        if self.incoming_prefix and not self.incoming_prefix.endswith("/"):
            raise ValueError("MMRAG_INCOMING_PREFIX must end with '/'")

    @property
    def blob_key_prefix(self) -> str:
        """What S3BlobStore puts in front of every blob key ('' or 'prefix/')."""
        prefix = self.blob_prefix.strip("/")
        return f"{prefix}/" if prefix else ""
