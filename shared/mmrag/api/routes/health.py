"""GET /api/v1/health: no auth; the status of each component."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from mmrag import __version__
from mmrag.api.deps import container
from mmrag.api.envelope import ok

router = APIRouter(prefix="/api/v1", tags=["health"])


@router.get("/health", summary="Component status (store, blobs, index, models, OCR); needs no API key")
def health(c=Depends(container)):
    components = c.health()
    bad = [name for name, comp in components.items() if comp.get("status") == "error"]
    return ok(
        {"status": "degraded" if bad else "ok", "version": __version__, "backend": c.backend, "components": components},
        "服务正常" if not bad else "部分组件异常",
    )
