"""Composition roots: the only place that knows which adapters run. `build_container(settings)` gives the
container of the configured platform (local: mmrag.composition.local; AWS: mmrag.composition.aws); both offer the same
services (documents, search, answers, keys) to the entry points (HTTP API, CLI, Lambda handlers)."""

from __future__ import annotations

from typing import Any

from mmrag.settings import Settings


def build_container(settings: Settings, **kwargs: Any):
    if settings.backend == "local":
        from mmrag.composition.local import LocalContainer

        return LocalContainer(settings, **kwargs)
    if settings.backend == "aws":
        from mmrag.composition.aws import AwsContainer

        return AwsContainer(settings, **kwargs)
    raise ValueError(f"unknown MMRAG_BACKEND {settings.backend!r}: use local or aws")
