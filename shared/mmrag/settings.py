"""Configuration from the environment (MMRAG_*), one place for every knob."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Requests per hour per API key, by endpoint class (contract section 6).
DEFAULT_RATE_LIMITS = {"upload": 100, "query": 1000, "search": 500, "qa": 200}


def parse_pairs(raw: str) -> dict[str, str]:
    """Parse 'a=b,c=d' into {'a': 'b', 'c': 'd'}; blanks are ignored."""
    out: dict[str, str] = {}
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"expected key=value, got {part!r}")
        out[key.strip()] = value.strip()
    return out


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MMRAG_", extra="ignore")

    backend: str = Field("local", description="local | aws")
    data_dir: Path = Path(".mmrag")
    api_keys: str = Field("", description="bootstrap keys: key=tenant,key2=tenant2")
    max_upload_mb: float = 50
    rate_limits: str = Field("", description="per key and hour, e.g. upload=100,query=1000,search=500,qa=200")
    model_dir: Path | None = None
    text_model: str = "sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2"
    text_max_tokens: int = Field(256, ge=16, le=8192, description="word pieces the text model reads per chunk")
    image_model: str = "Qdrant/clip-ViT-B-32-vision"
    image_text_model: str = "Qdrant/clip-ViT-B-32-text"
    rerank_model: str = "Xenova/ms-marco-MiniLM-L-6-v2"
    int8: str = Field(
        "text,rerank",
        description="models run as int8 copies made once on this machine: any of text, clip, rerank; empty: none",
    )
    int8_cache_dir: Path | None = Field(
        None, description="where the int8 copies are kept (default: ~/.cache/mmrag, shared by every data dir)"
    )
    rerank_passage_tokens: int = Field(
        96, ge=16, le=512, description="tokens of each candidate the reranker reads: its best window of sentences"
    )
    workers: int = Field(2, ge=1, le=16, description="background ingestion workers")
    upload_wait_s: float = Field(1.5, ge=0, description="how long an upload waits for a small document to finish")
    max_image_pixels: int = 40_000_000
    max_pdf_pages: int = 2000
    fetch_timeout_s: float = 20
    ocr_min_chars: int = Field(16, description="a PDF page with fewer text-layer characters is OCR'd")
    max_job_attempts: int = 3
    url_secret: SecretStr = Field(
        SecretStr(""), description="HMAC key of signed image URLs (32+ characters); empty: a random key in the data dir"
    )
    image_url_ttl_s: int = Field(
        3600, ge=60, le=604800, description="a signed image URL works at least this long (S3 presigned URLs: exactly)"
    )

    # answers
    answer_provider: str = Field("auto", description="auto | extractive | anthropic | openai | bedrock")
    answer_model: str = Field("", description="default model id; empty: the first model of the first provider")
    answer_min_evidence: float = Field(
        0.45, ge=0, le=1.1, description="the extractive answerer declines when its best sentence scores below this"
    )
    anthropic_api_key: str = Field("", validation_alias=AliasChoices("MMRAG_ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY"))
    anthropic_models: str = ""
    anthropic_base_url: str = ""
    openai_base_url: str = ""
    openai_api_key: str = ""
    openai_models: str = ""
    openai_vision_models: str = ""
    bedrock_region: str = ""
    bedrock_models: str = ""

    # AWS backend (MMRAG_BACKEND=aws; template.yaml sets these, see infra/README.md)
    bucket: str = Field("", description="S3 bucket: originals, pictures, incoming/<tenant>/ drops")
    blob_prefix: str = ""
    incoming_prefix: str = "incoming/"
    documents_table: str = "mmrag-documents"
    jobs_table: str = "mmrag-jobs"
    sessions_table: str = "mmrag-sessions"
    api_keys_table: str = "mmrag-api-keys"
    idempotency_table: str = "mmrag-idempotency"
    session_ttl_days: int = Field(30, ge=1)
    ingest_queue_url: str = Field("", description="SQS queue API uploads send their jobs to")
    opensearch_endpoint: str = ""
    opensearch_service: str = Field("es", description="es (domain) | aoss (Serverless)")
    opensearch_index: str = "mmrag-items"
    sagemaker_endpoint: str = ""
    sagemaker_rerank_model: str = Field(
        "Xenova/ms-marco-MiniLM-L-6-v2",
        description="the cross-encoder the SageMaker endpoint hosts (its MMRAG_RERANK_MODEL); empty: none",
    )
    bedrock_rerank_models: str = Field(
        "amazon.rerank-v1:0,cohere.rerank-v3-5:0", description="rerank models served through Bedrock's Rerank API"
    )
    bedrock_rerank_region: str = Field("", description="region of the Bedrock Rerank API; empty: the function's")
    ocr_engine: str = Field("textract", description="textract | rapidocr | none")
    textract_sns_topic_arn: str = ""
    textract_role_arn: str = ""
    anthropic_secret_arn: str = Field("", description="Secrets Manager secret with the Anthropic API key")
    trust_authorizer: bool = Field(False, description="behind the API Gateway authorizer: tenant from its context")
    upload_url_expires_s: int = Field(900, ge=60, le=604800)

    @staticmethod
    def list_of(raw: str) -> list[str]:
        return [x.strip() for x in raw.split(",") if x.strip()]

    @field_validator("api_keys", "rate_limits")
    @classmethod
    def _pairs_parse(cls, v: str) -> str:
        parse_pairs(v)
        return v

    @field_validator("int8")
    @classmethod
    def _int8_roles(cls, v: str) -> str:
        unknown = set(cls.list_of(v)) - {"text", "clip", "rerank"}
        if unknown:
            raise ValueError(f"unknown int8 model role(s) {sorted(unknown)}; known: text, clip, rerank")
        return v

    @property
    def bootstrap_keys(self) -> dict[str, str]:
        return parse_pairs(self.api_keys)

    @property
    def rate_limit_table(self) -> dict[str, int]:
        table = dict(DEFAULT_RATE_LIMITS)
        for name, value in parse_pairs(self.rate_limits).items():
            if name not in table:
                raise ValueError(f"unknown rate-limit class {name!r}; known: {sorted(table)}")
            table[name] = int(value)
        return table

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


@lru_cache
def get_settings() -> Settings:
    return Settings()
