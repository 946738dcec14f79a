"""The service container on AWS: the same attributes as the local one (mmrag.composition.local), from AWS adapters.

S3 (blobs), DynamoDB (documents, chunks, images, jobs, sessions, API keys), OpenSearch (vectors + BM25), one
SageMaker endpoint (text encoder, CLIP pair, a cross-encoder), Bedrock's Rerank API (the default rerankers, see
mmrag.adapters.aws.bedrock_rerank), Textract (or RapidOCR in the container-image ingest function), answers from
Bedrock (Converse) and/or Claude through the Anthropic API (its key read from Secrets Manager), with the extractive
answerer always there.

Differences from the local container:
- no worker threads (`runner` is None): uploads go to the ingest queue as job messages (mmrag.adapters.aws.ingest_jobs);
- no in-process rate limiter: API Gateway usage plans enforce the limits (`rate_limiter` counts nothing);
- behind the API Gateway authorizer (MMRAG_TRUST_AUTHORIZER=true) `keys` answers with the authorizer's tenant and
  `trusted_caller` is set (mmrag.adapters.aws.identity);
- nothing is loaded at construction: boto3 clients are made here (no network), the Anthropic key is fetched the
  first time an answer needs it, so the functions that never answer never need secretsmanager:GetSecretValue.

Nothing in this module imports fastembed, onnxruntime, OpenCV or RapidOCR (RapidOCR only when MMRAG_OCR_ENGINE is
rapidocr, which only the container-image ingest function sets).

Every part can be passed in (tests, mmrag_dev's sandbox): store, key_store, sessions, blobs, index, embedder (an object
with .text, .clip and .reranker, like SageMakerEmbedder), ocr, generators (a list), and boto3 clients in `clients`
(keys: dynamodb, s3, sqs, textract, secretsmanager, sagemaker-runtime, bedrock-runtime, bedrock-agent-runtime).
"""

from __future__ import annotations

import json
import logging
from functools import cached_property
from typing import Any

from mmrag.composition.aws_config import AwsConfig
from mmrag.composition.common import answer_service, build_generators, query_image_decoder
from mmrag.core.api_keys import KeyService
from mmrag.core.documents import DocumentLocks, DocumentService
from mmrag.core.ingestion import IngestionPipeline, IngestLimits
from mmrag.core.ratelimit import RateLimiter
from mmrag.settings import Settings

log = logging.getLogger(__name__)


class NoOcr:
    """MMRAG_OCR_ENGINE=none: pictures keep their captions from the surrounding text."""

    name = "none"

    def recognize(self, image: Any) -> str:
        return ""

    def load(self) -> None:
        pass

    def health(self) -> dict[str, Any]:
        return {"engine": self.name, "state": "not loaded"}


def anthropic_key_from_secret(secret_string: str) -> str:
    """The secret is the key itself, or JSON with one of the usual field names."""
    text = secret_string.strip()
    if text.startswith("{"):
        data = json.loads(text)
        for name in ("ANTHROPIC_API_KEY", "anthropic_api_key", "api_key", "apiKey", "key"):
            if isinstance(data.get(name), str) and data[name].strip():
                return data[name].strip()
        raise ValueError("the Anthropic secret is JSON without an api_key / ANTHROPIC_API_KEY field")
    return text


class AwsContainer:
    backend = "aws"

    def __init__(self, settings: Settings, *, start_workers: bool = False, **parts: Any):
        from mmrag.adapters.aws.tables import TableNames
        from mmrag.security.fetch import fetch_url

        self.settings = settings
        self.config = AwsConfig.from_settings(settings)
        cfg = self.config
        self._clients: dict[str, Any] = dict(parts.pop("clients", None) or {})
        self.runner = None  # SQS is the runner (mmrag.adapters.aws.ingest_jobs); start_workers is accepted and ignored

        names = TableNames(cfg.documents_table, cfg.jobs_table, cfg.sessions_table, cfg.api_keys_table)
        if "store" in parts:
            self.store = parts.pop("store")
        else:
            from mmrag.adapters.aws.dynamo_documents import DynamoDocumentStore

            self.store = DynamoDocumentStore(names, client=self.client("dynamodb"))
        if "key_store" in parts:
            self.key_store = parts.pop("key_store")
        else:
            from mmrag.adapters.aws.dynamo_keys import DynamoKeyStore

            self.key_store = DynamoKeyStore(cfg.api_keys_table, client=self.client("dynamodb"))
        if "sessions" in parts:
            self.sessions = parts.pop("sessions")
        else:
            from mmrag.adapters.aws.dynamo_sessions import DynamoSessionStore

            self.sessions = DynamoSessionStore(
                cfg.sessions_table, ttl_days=cfg.session_ttl_days, client=self.client("dynamodb")
            )
        if "blobs" in parts:
            self.blobs = parts.pop("blobs")
        else:
            from mmrag.adapters.aws.s3_blobs import S3BlobStore

            if not cfg.bucket:
                raise ValueError("MMRAG_BUCKET is not set")
            self.blobs = S3BlobStore(cfg.bucket, cfg.blob_prefix, client=self.client("s3"))
        self.image_links = self._image_links()
        self.index = parts.pop("index") if "index" in parts else self._opensearch_index()
        embedder = parts.pop("embedder") if "embedder" in parts else self._sagemaker()
        self.embedder = embedder
        self.text_embedder = embedder.text
        self.clip = embedder.clip
        self.ocr = parts.pop("ocr") if "ocr" in parts else self._ocr()
        self._generators_override = parts.pop("generators", None)
        if parts:
            raise TypeError(f"unknown AwsContainer parts: {', '.join(sorted(parts))}")

        self.limits = IngestLimits(
            max_pixels=settings.max_image_pixels,
            max_pages=settings.max_pdf_pages,
            ocr_min_chars=settings.ocr_min_chars,
        )
        self.locks = DocumentLocks()
        self.pipeline = self.pipeline_with_ocr(self.ocr)

        def fetch(url: str, max_bytes: int) -> bytes:
            return fetch_url(url, max_bytes=max_bytes, timeout=settings.fetch_timeout_s).data

        self._fetch = fetch
        self.decode_query_image = query_image_decoder(settings, fetch)
        self._job_queue: Any = None
        self.documents = self.document_service(self.submit_job)

        from mmrag.adapters.aws.bedrock_rerank import LazyClient, aws_rerankers
        from mmrag.core.search import SearchService

        # Bedrock's Rerank API serves cfg.bedrock_rerank_models, the SageMaker endpoint its cross-encoder
        rerank_client = LazyClient(cfg.bedrock_rerank_region, self._clients.get("bedrock-agent-runtime"))
        self.rerankers = aws_rerankers(
            cfg.rerank_model,
            cfg.bedrock_rerank_models,
            cfg.sagemaker_rerank_model,
            getattr(embedder, "reranker", None),
            rerank_client,
        )
        self.search = SearchService(
            self.store, self.index, self.text_embedder, self.clip, self.rerankers, decode_image=self.decode_query_image
        )

        keys = KeyService(self.key_store, settings.bootstrap_keys)
        if cfg.trust_authorizer:
            from mmrag.adapters.aws.identity import AuthorizerKeys, trusted_caller

            self.keys: Any = AuthorizerKeys(keys)
            self.trusted_caller: Any = trusted_caller
        else:
            self.keys = keys
            self.trusted_caller = None
        self.rate_limiter = RateLimiter({})  # usage plans enforce the contract's limits on AWS

    # ------------------------------------------------------------------ clients and parts
    def client(self, service: str) -> Any:
        if service not in self._clients:
            import boto3

            kwargs = {"region_name": self.config.region} if self.config.region else {}
            self._clients[service] = boto3.client(service, **kwargs)
        return self._clients[service]

    def direct_uploads(self) -> Any:
        from mmrag.adapters.aws.direct_uploads import S3DirectUploads, presign_client

        def client() -> Any:
            if "s3-presign" not in self._clients:
                self._clients["s3-presign"] = presign_client(self.config.region)
            return self._clients["s3-presign"]

        cfg = self.config
        return S3DirectUploads(client, cfg.bucket, cfg.incoming_prefix, cfg.upload_url_expires_s)

    def _image_links(self) -> Any:
        from mmrag.adapters.aws.direct_uploads import presign_client
        from mmrag.adapters.aws.s3_presigned_links import S3PresignedImageLinks

        def client() -> Any:
            if "s3-presign" not in self._clients:
                self._clients["s3-presign"] = presign_client(self.config.region)
            return self._clients["s3-presign"]

        bucket, prefix = getattr(self.blobs, "bucket", self.config.bucket), getattr(self.blobs, "prefix", "")
        return S3PresignedImageLinks(client, bucket, prefix, self.settings.image_url_ttl_s)

    @property
    def textract_client(self) -> Any:
        return self.client("textract")

    def _opensearch_index(self) -> Any:
        from mmrag.adapters.aws.opensearch_client import make_client
        from mmrag.adapters.aws.opensearch_index import OpenSearchVectorIndex

        cfg = self.config
        if not cfg.opensearch_endpoint:
            raise ValueError("MMRAG_OPENSEARCH_ENDPOINT is not set")
        client = make_client(cfg.opensearch_endpoint, cfg.region, cfg.opensearch_service)
        if cfg.opensearch_service == "aoss":  # no refresh and no custom ids in Serverless vector collections
            return OpenSearchVectorIndex(client, cfg.opensearch_index, refresh=False, custom_ids=False, by_query=False)
        return OpenSearchVectorIndex(client, cfg.opensearch_index)

    def _sagemaker(self) -> Any:
        from mmrag.adapters.aws.sagemaker_embedder import SageMakerEmbedder

        if not self.config.sagemaker_endpoint:
            raise ValueError("MMRAG_SAGEMAKER_ENDPOINT is not set")
        return SageMakerEmbedder(self.config.sagemaker_endpoint, client=self._clients.get("sagemaker-runtime"))

    def _ocr(self) -> Any:
        engine = self.config.ocr_engine
        if engine == "textract":
            from mmrag.adapters.aws.textract_ocr import TextractOcr

            return TextractOcr(client=self.client("textract"))
        if engine == "rapidocr":  # only in the container-image ingest function
            from mmrag.adapters.local.ocr import RapidOcrEngine

            return RapidOcrEngine()
        return NoOcr()

    def pipeline_with_ocr(self, ocr: Any) -> IngestionPipeline:
        return IngestionPipeline(
            self.store, self.blobs, self.index, self.text_embedder, self.clip, ocr, self.limits, self.locks
        )

    def document_service(self, on_job: Any) -> DocumentService:
        """A DocumentService whose new jobs go to `on_job` (the ingest queue, or the caller that runs them)."""
        from mmrag.adapters.aws.ingest_jobs import JobSubmittingStore

        s = self.settings
        return DocumentService(
            JobSubmittingStore(self.store, on_job),
            self.blobs,
            self.index,
            self.pipeline,
            None,
            self.locks,
            self._fetch,
            s.max_upload_bytes,
            s.max_image_pixels,
            0.0,
            direct_uploads=self.direct_uploads(),
        )

    def submit_job(self, job: Any) -> None:
        if self._job_queue is None:
            from mmrag.adapters.aws.ingest_jobs import SqsJobQueue

            self._job_queue = SqsJobQueue(self.config.ingest_queue_url, client=self._clients.get("sqs"))
        self._job_queue.submit(job)

    # ------------------------------------------------------------------ answers (built on first use)
    def anthropic_api_key(self) -> str:
        if self.settings.anthropic_api_key:
            return self.settings.anthropic_api_key
        if not self.config.anthropic_secret_arn:
            return ""
        value = self.client("secretsmanager").get_secret_value(SecretId=self.config.anthropic_secret_arn)
        return anthropic_key_from_secret(value.get("SecretString") or "")

    @cached_property
    def generators(self) -> Any:
        from mmrag.adapters.generators.extractive import ExtractiveGenerator
        from mmrag.core.answering import GeneratorRegistry

        s = self.settings
        if self._generators_override is not None:
            generators = list(self._generators_override)
        else:
            wanted = s.answer_provider
            updates: dict[str, Any] = {}
            if wanted in ("auto", "anthropic") and not s.anthropic_api_key and self.config.anthropic_secret_arn:
                updates["anthropic_api_key"] = self.anthropic_api_key()
            if wanted in ("auto", "bedrock") and not s.bedrock_region and self.config.region:
                updates["bedrock_region"] = self.config.region
            generators = build_generators(
                s.model_copy(update=updates) if updates else s,
                ExtractiveGenerator(self.text_embedder, s.answer_min_evidence),
            )
        return GeneratorRegistry(generators, s.answer_model or None)

    @cached_property
    def answers(self) -> Any:
        return answer_service(self)

    # ------------------------------------------------------------------ lifecycle and health
    def start(self) -> None:
        """Nothing to start: no threads, no models in process."""

    def stop(self) -> None:
        pass

    def health(self) -> dict[str, Any]:
        text = self.text_embedder.health() if hasattr(self.text_embedder, "health") else {}
        clip = self.clip.health() if hasattr(self.clip, "health") else {}
        states = [text.get("state"), clip.get("image_state"), clip.get("text_state")]
        rerank = {"default": self.rerankers.default, "served": sorted(self.rerankers.known)}
        models: dict[str, Any] = {"text": text, "clip": clip, "rerank": rerank}
        # the endpoint is a service: 'not loaded' only means this function has not called it yet
        models["status"] = "error" if "error" in states else "ok"
        ocr = self.ocr.health() if hasattr(self.ocr, "health") else {"engine": getattr(self.ocr, "name", "?")}
        ocr["status"] = "error" if ocr.get("state") == "error" else "ok"
        return {
            "store": self.store.health(),
            "blobs": self.blobs.health(),
            "index": self.index.health(),
            "models": models,
            "ocr": ocr,
        }
