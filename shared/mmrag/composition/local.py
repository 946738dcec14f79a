"""Builds the service container from settings: the only place that knows which adapters are in use."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from mmrag.composition.common import answer_service, generator_registry, query_image_decoder
from mmrag.core.api_keys import KeyService
from mmrag.core.documents import DocumentLocks, DocumentService
from mmrag.core.ingestion import IngestionPipeline, IngestLimits
from mmrag.core.jobs import ThreadJobRunner
from mmrag.core.ratelimit import RateLimiter
from mmrag.errors import ModelUnavailable
from mmrag.settings import Settings

log = logging.getLogger(__name__)


class LocalContainer:
    """Everything on one machine: files, SQLite, the embedded index, fastembed models, RapidOCR, worker threads."""

    backend = "local"

    def __init__(self, settings: Settings, *, start_workers: bool = True):
        from mmrag.adapters.local.blobs import FileBlobStore
        from mmrag.adapters.local.int8 import default_cache
        from mmrag.adapters.local.model_source import ModelSource
        from mmrag.adapters.local.models import FastEmbedClip, FastEmbedReranker, FastEmbedTextEmbedder
        from mmrag.adapters.local.ocr import RapidOcrEngine
        from mmrag.adapters.local.sqlite_store import SqliteDocumentStore, SqliteKeyStore
        from mmrag.adapters.local.vector_index import EmbeddedVectorIndex
        from mmrag.security.fetch import fetch_url

        self.settings = settings
        root = Path(settings.data_dir)
        root.mkdir(parents=True, exist_ok=True)
        self.store = SqliteDocumentStore(root / "mmrag.sqlite")
        self.key_store = SqliteKeyStore(self.store.db)
        self.blobs = FileBlobStore(root / "blobs")
        from mmrag.adapters.local.hmac_links import HmacImageLinks, url_secret

        secret = url_secret(settings.url_secret.get_secret_value(), root)
        self.image_links = HmacImageLinks(secret, settings.image_url_ttl_s)
        self.index = EmbeddedVectorIndex(root / "index")
        from fastembed.rerank.cross_encoder import TextCrossEncoder

        known = [m["model"] for m in TextCrossEncoder.list_supported_models()]
        roles = set(settings.list_of(settings.int8))
        int8 = {settings.text_model} if "text" in roles else set()
        int8 |= {settings.image_model, settings.image_text_model} if "clip" in roles else set()
        int8 |= {*known, settings.rerank_model} if "rerank" in roles else set()
        int8_cache = settings.int8_cache_dir or default_cache()
        source = ModelSource(
            settings.model_dir,
            root / "models",
            int8=sorted(int8),
            int8_cache=int8_cache,
            settings_of=model_settings(settings),
        )
        self.text_embedder = FastEmbedTextEmbedder(settings.text_model, source, max_tokens=settings.text_max_tokens)
        self.clip = FastEmbedClip(settings.image_model, settings.image_text_model, source)
        self.model_source = source
        self.ocr = RapidOcrEngine()
        self.locks = DocumentLocks()
        self.pipeline = IngestionPipeline(
            self.store,
            self.blobs,
            self.index,
            self.text_embedder,
            self.clip,
            self.ocr,
            IngestLimits(
                max_pixels=settings.max_image_pixels,
                max_pages=settings.max_pdf_pages,
                ocr_min_chars=settings.ocr_min_chars,
            ),
            self.locks,
        )
        self.runner = (
            ThreadJobRunner(
                self.store, self.pipeline.run, workers=settings.workers, max_attempts=settings.max_job_attempts
            )
            if start_workers
            else None
        )

        def fetch(url: str, max_bytes: int) -> bytes:
            return fetch_url(url, max_bytes=max_bytes, timeout=settings.fetch_timeout_s).data

        self.decode_query_image = query_image_decoder(settings, fetch)

        self.documents = DocumentService(
            self.store,
            self.blobs,
            self.index,
            self.pipeline,
            self.runner,
            self.locks,
            fetch,
            settings.max_upload_bytes,
            settings.max_image_pixels,
            settings.upload_wait_s,
        )
        if self.runner:
            self.runner.on_give_up = self.documents.give_up
        from mmrag.core.search import Rerankers, SearchService

        self.rerankers = Rerankers(
            settings.rerank_model,
            lambda name: FastEmbedReranker(name, source),
            known,
            passage_tokens=settings.rerank_passage_tokens,
        )
        self.search = SearchService(
            self.store, self.index, self.text_embedder, self.clip, self.rerankers, decode_image=self.decode_query_image
        )
        self._fetch = fetch
        from mmrag.adapters.generators.extractive import ExtractiveGenerator
        from mmrag.adapters.local.sqlite_sessions import SqliteSessionStore

        self.sessions = SqliteSessionStore(root / "mmrag.sqlite")
        extractive = ExtractiveGenerator(self.text_embedder, settings.answer_min_evidence)
        self.generators = generator_registry(settings, extractive)
        self.answers = answer_service(self)
        self.keys = KeyService(self.key_store, settings.bootstrap_keys)
        self.rate_limiter = RateLimiter(settings.rate_limit_table)
        self._warm: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self, warm_up: bool = True) -> None:
        self.documents.finish_deletes()
        self.sweep_orphan_blobs()
        if warm_up:
            self._warm = threading.Thread(target=self.warm_up, name="mmrag-warm-up", daemon=True)
            self._warm.start()
        if self.runner:
            self.runner.start()

    def stop(self) -> None:
        if self.runner:
            self.runner.stop()
        if self._warm is not None:
            # a process that exits while this thread is inside ONNX Runtime's C++ code dies with SIGABRT
            # ("terminate called without an active exception"), so a short-lived command waits for it
            self._warm.join()

    def warm_up(self) -> None:
        from mmrag.text import analyzer

        for name, fn in (
            ("text model", self.text_embedder.load),
            ("clip", self.clip.load),
            ("ocr", self.ocr.load),
            ("jieba", analyzer.warm_up),
        ):
            try:
                fn()
            except ModelUnavailable:
                pass  # the model source logged why, once; health and every request that needs it say so
            except Exception:
                log.exception("loading %s failed", name)

    def sweep_orphan_blobs(self) -> int:
        """Remove blob folders of documents that have no row (a crash between writing the upload and its row)."""
        removed = 0
        tenants_root = Path(self.blobs.root) / "t"
        if not tenants_root.is_dir():
            return 0
        for tenant_dir in tenants_root.iterdir():
            doc_dirs = [p for p in tenant_dir.iterdir() if p.is_dir()]
            existing = self.store.existing_ids([p.name for p in doc_dirs])
            for p in doc_dirs:
                if p.name not in existing:
                    removed += self.blobs.delete_prefix(f"t/{tenant_dir.name}/{p.name}")
        return removed

    def health(self) -> dict[str, Any]:
        models = {
            "text": self.text_embedder.health(),
            "clip": self.clip.health(),
            "rerank": {"default": self.rerankers.default},
        }
        states = [models["text"]["state"], models["clip"]["image_state"], models["clip"]["text_state"]]
        models["status"] = "error" if "error" in states else ("ok" if all(s == "loaded" for s in states) else "loading")
        models["warming_up"] = self._warm is not None and self._warm.is_alive()  # loading the models at start-up
        rerank_problem = self.model_source.problem(self.rerankers.default)
        if rerank_problem:
            models["rerank"]["error"] = rerank_problem
        ocr = self.ocr.health()
        ocr["status"] = "ok" if ocr["state"] in ("loaded", "not loaded") else "error"
        return {
            "store": self.store.health(),
            "blobs": self.blobs.health(),
            "index": self.index.health(),
            "models": models,
            "ocr": ocr,
        }


def model_settings(settings: Settings) -> dict[str, str]:
    """Each configured model name -> the setting that names it (for messages that say what to change)."""
    roles = {
        settings.rerank_model: "MMRAG_RERANK_MODEL",
        settings.image_text_model: "MMRAG_IMAGE_TEXT_MODEL",
        settings.image_model: "MMRAG_IMAGE_MODEL",
    }
    roles[settings.text_model] = "MMRAG_TEXT_MODEL"
    return roles


def local_key_service(settings: Settings) -> KeyService:
    """The API keys of a local data dir, without starting the service (`mmrag keys`)."""
    from mmrag.adapters.local.sqlite_store import SqliteDocumentStore, SqliteKeyStore

    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    store = SqliteDocumentStore(Path(settings.data_dir) / "mmrag.sqlite")
    return KeyService(SqliteKeyStore(store.db), {})
