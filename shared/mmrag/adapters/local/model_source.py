"""Where a model comes from, why it cannot be had, and how its ONNX sessions are opened.

A model is looked up first in MMRAG_MODEL_DIR/<model name> (files laid out as fastembed expects); otherwise fastembed
downloads it into <data dir>/models. Models named in MMRAG_INT8 run from an int8 copy made once per machine
(mmrag.adapters.local.int8).

A model that cannot be had fails fast with ModelUnavailable (503 on the API; ingestion waits for it), whose detail
says why and how to fix it. fastembed alone would retry a failing download three times with 3 + 9 + 27 s of sleep
(39 s per request); here the model is first looked up on disk (MMRAG_MODEL_DIR, then the download cache), the hub is
probed with a short timeout before any download, and a failure is remembered for RETRY_AFTER_S (or until
MMRAG_MODEL_DIR/<name> appears), so it costs one attempt, not one per request.

Every ONNX session runs without spin-waiting: on a shared 2-core machine a waiting ONNX thread that spins takes the core
the other request (or the ingest worker) needs; measured on multimodal search at 100k chunks under load, p50 fell
from 230-284 ms to 67-74 ms.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmrag.errors import ModelUnavailable

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 3.0  # the hub answers in well under a second when it is reachable at all
RETRY_AFTER_S = 60.0  # a model that failed to load is tried again after this long (at once if its folder appears)
DOWNLOADING = "it is being downloaded"
DOWNLOAD_FIX = "run `mmrag models download --dir DIR` where the model hub is reachable and set MMRAG_MODEL_DIR=DIR"


def downloads_off() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def describe(cls: Any, name: str) -> dict[str, Any] | None:
    """fastembed's description of model `name` (sources, model file), None when `cls` does not offer it."""
    return next((m for m in cls.list_supported_models() if m["model"] == name), None)


def short_error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:200] if text else type(exc).__name__


class MissingModel(ModelUnavailable):
    """ModelUnavailable with its reason and its fix apart (the command line prints them on their own lines)."""

    def __init__(self, message: str, why: str, fix: str):
        super().__init__(message, f"{why}. Fix: {fix}.")
        self.why, self.fix = why, fix

    def __str__(self) -> str:  # logs and messages built from str(exc) (the reranker's rerank_error) keep the why
        return f"{self.message}: {self.why}"


@dataclass
class _Failure:
    at: float
    error: ModelUnavailable
    fingerprint: tuple[Any, ...]



class ModelSource:
    def __init__(
        self,
        model_dir: Path | None,
        cache_dir: Path,
        threads: int | None = None,
        int8: Sequence[str] = (),
        int8_cache: Path | None = None,
        settings_of: dict[str, str] | None = None,
    ):
        self.int8_cache = Path(int8_cache) if int8_cache else None  # default: beside the model cache
        self.model_dir = Path(model_dir) if model_dir else None
        self.cache_dir = Path(cache_dir)
        self.threads = threads or os.cpu_count() or 1
        self.int8 = frozenset(int8)
        self.settings_of = dict(settings_of or {})  # model name -> the MMRAG_* setting that names it (messages)
        self._failures: dict[str, _Failure] = {}
        self._downloads: dict[str, float] = {}  # model name -> when its download started
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def build(self, cls: Callable[..., Any], name: str, threads: int | None = None) -> Any:
        """A fastembed model object (TextEmbedding, ImageEmbedding, TextCrossEncoder) for `name`, int8 if asked,
        running on `threads` cores (default: all this source may use). ModelUnavailable, fast, when it cannot be had."""
        threads = threads or self.threads
        with self._guard:
            lock = self._locks.setdefault(name, threading.Lock())
        downloading = False
        try:
            with lock:  # one look-up per model at a time; the others then see its outcome
                self._raise_remembered(name)
                self.raise_if_downloading(name)
                downloading = self.locate(cls, name) == "download"
                if downloading:
                    self._downloads[name] = time.monotonic()
            with quiet_sessions():
                model = self._build(cls, name, threads)
        except ModelUnavailable as exc:
            if not exc.detail.startswith(DOWNLOADING):
                self._remember(name, exc)
            raise
        except Exception as exc:
            error = self.unavailable(
                name,
                f"{self.label(name)} could not be loaded from {self.origin(cls, name)}: {short_error(exc)}",
                f"check the files there, or fetch them again ({DOWNLOAD_FIX})",
            )
            self._remember(name, error)
            raise error from exc
        finally:
            if downloading:
                self._downloads.pop(name, None)
        self._failures.pop(name, None)
        return model

    @property
    def downloads(self) -> set[str]:
        """The models being downloaded now."""
        return set(self._downloads)

    def raise_if_downloading(self, name: str) -> None:
        """While a model downloads (minutes for 0.5 GB), other work that needs it is told so at once."""
        started = self._downloads.get(name)
        if started is not None:
            raise self.unavailable(
                name,
                f"{DOWNLOADING} ({time.monotonic() - started:.0f} s so far) into the download cache {self.cache_dir}",
                "wait a moment and try again; uploads wait for it by themselves",
            )

    # ------------------------------------------------------------------ where a model comes from, and why not
    def label(self, name: str) -> str:
        setting = self.settings_of.get(name)
        return f"model {name}" + (f" ({setting})" if setting else "")

    def unavailable(self, name: str, why: str, fix: str) -> MissingModel:
        return MissingModel(f"{self.label(name)} is not available", why, fix)

    def problem(self, name: str) -> str | None:
        """Why the last attempt to load `name` failed (with the fix), while that is remembered."""
        failure = self._failures.get(name)
        if failure is None or self.fingerprint(name) != failure.fingerprint:
            return None  # not known any more: the next use tries again
        return f"{failure.error.message}: {failure.error.detail}"

    def fingerprint(self, name: str) -> tuple[Any, ...]:
        """What a user changes to fix a missing model: its folder appearing, downloads switched on."""
        in_dir = bool(self.model_dir and (self.model_dir / name).is_dir())
        return (in_dir, downloads_off(), hub_endpoint())

    def _raise_remembered(self, name: str) -> None:
        failure = self._failures.get(name)
        if failure is None:
            return
        if time.monotonic() - failure.at < RETRY_AFTER_S and self.fingerprint(name) == failure.fingerprint:
            raise failure.error

    def _remember(self, name: str, error: ModelUnavailable) -> None:
        if name not in self._failures or self._failures[name].error is not error:
            log.warning("%s: %s", error.message, error.detail)
        self._failures[name] = _Failure(time.monotonic(), error, self.fingerprint(name))

    def cached(self, cls: Any, name: str) -> bool:
        """Whether fastembed's download cache holds the model's main file (a look on disk, no network)."""
        desc = describe(cls, name)
        repo = ((desc or {}).get("sources") or {}).get("hf")
        if not repo:
            return False
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo, desc["model_file"], cache_dir=str(self.cache_dir)), str)

    def origin(self, cls: Any, name: str) -> str:
        if self.model_dir and (self.model_dir / name).is_dir():
            return f"MMRAG_MODEL_DIR ({self.model_dir / name})"
        if self.cached(cls, name):
            return f"the download cache ({self.cache_dir})"
        return "a download (not found on disk)" if not downloads_off() else "nowhere (not on disk, downloads off)"

    def locate(self, cls: Any, name: str) -> str:
        """Where the model comes from: "model dir", "cache" or "download" (the hub answers); ModelUnavailable, fast
        and with the fix, when none of them."""
        if self.model_dir and (self.model_dir / name).is_dir():
            return "model dir"
        desc = describe(cls, name)
        if desc is None:
            where = f" and there is no folder {self.model_dir / name}" if self.model_dir else ""
            raise self.unavailable(
                name,
                f"{name!r} is not a model fastembed offers here{where}",
                f"check the name in {self.settings_of.get(name, 'the model setting')} (a typo?); "
                f"fastembed's names: {cls.__name__}.list_supported_models()",
            )
        if self.cached(cls, name):
            return "cache"
        missing = (
            f"{name} is neither in {self.model_dir / name} (MMRAG_MODEL_DIR) nor in the download cache {self.cache_dir}"
            if self.model_dir
            else f"{name} is not in the download cache {self.cache_dir} and MMRAG_MODEL_DIR is not set"
        )
        if downloads_off():
            raise self.unavailable(name, f"{missing}, and downloads are off (HF_HUB_OFFLINE)", DOWNLOAD_FIX)
        repo = (desc.get("sources") or {}).get("hf")
        if not repo:
            return "download"  # fastembed fetches it from its own URL
        from huggingface_hub import model_info

        try:
            model_info(repo, timeout=PROBE_TIMEOUT_S)
        except Exception as exc:
            raise self.unavailable(
                name,
                f"{missing}, and the model hub {hub_endpoint()} cannot be reached ({short_error(exc)})",
                f"check the network, a proxy (HTTPS_PROXY) or HF_ENDPOINT; or {DOWNLOAD_FIX}",
            ) from exc
        return "download"

    def _build(self, cls: Callable[..., Any], name: str, threads: int) -> Any:
        kwargs = {**self.kwargs(name), "threads": threads}
        if name not in self.int8:
            return cls(name, **kwargs)
        from mmrag.adapters.local.int8 import int8_copy

        # resolve (or download) the fp32 files without opening them, then open the int8 copy made from them
        inner = cls(name, lazy_load=True, **kwargs).model
        try:
            folder = int8_copy(
                Path(inner._model_dir), inner.model_description.model_file, self.int8_cache or self.cache_dir
            )
        except Exception:  # an int8 copy is an optimisation: without one the fp32 model serves, only slower
            log.warning("could not make an int8 copy of %s; using fp32", name, exc_info=True)
            return cls(name, **kwargs)
        return cls(name, **{**kwargs, "specific_model_path": str(folder)})

    def kwargs(self, name: str) -> dict[str, Any]:
        kw: dict[str, Any] = {"cache_dir": str(self.cache_dir)}
        if downloads_off():
            kw["local_files_only"] = True  # fail at once instead of retrying downloads with back-off sleeps
        if self.threads:
            kw["threads"] = self.threads
        if self.model_dir and (self.model_dir / name).is_dir():
            kw["specific_model_path"] = str(self.model_dir / name)
        return kw


class _QuietOrt:
    """onnxruntime as fastembed's loader sees it while ModelSource builds a model: its SessionOptions come with
    spin-waiting off (fastembed exposes no session options of its own)."""

    def __init__(self, ort: Any):
        self._ort = ort

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ort, name)

    def SessionOptions(self) -> Any:  # noqa: N802 - the name fastembed calls
        opts = self._ort.SessionOptions()
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
        return opts


_ORT_SWAP = threading.Lock()


@contextlib.contextmanager
def quiet_sessions() -> Iterator[None]:
    """Models built inside get ONNX sessions that never spin-wait (one build at a time)."""
    import fastembed.common.onnx_model as loader

    with _ORT_SWAP:
        real = loader.ort
        loader.ort = _QuietOrt(real)
        try:
            yield
        finally:
            loader.ort = real



def fetch_into(cls: Any, name: str, root: Path) -> Path:
    """fastembed's own download of model `name`, copied into root/<name>: the layout MMRAG_MODEL_DIR is read in
    (the download cache keeps files as links into a blob store, which an offline machine cannot use as a folder)."""
    staging = Path(root) / ".download-cache"
    source = ModelSource(None, staging)
    source.locate(cls, name)  # fails fast, with the reason, when the hub cannot be reached
    try:
        folder = Path(cls(name, lazy_load=True, **source.kwargs(name)).model._model_dir)
    except Exception as exc:
        raise source.unavailable(
            name, f"the download of {name} failed: {short_error(exc)}", "check the network and the free disk space"
        ) from exc
    target = Path(root) / name
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(folder, partial, ignore=shutil.ignore_patterns(".cache", "*.lock"))  # links become files
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    shutil.rmtree(staging, ignore_errors=True)
    return target


def present_in(cls: Any, name: str, root: Path) -> bool:
    """Whether root/<name> holds the model's main file (a folder laid out like MMRAG_MODEL_DIR)."""
    desc = describe(cls, name)
    return bool(desc) and (Path(root) / name / desc["model_file"]).is_file()
