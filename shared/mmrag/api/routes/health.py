"""GET /api/v1/health: no auth; the status of each component, and for each problem what is wrong and the fix."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from mmrag import __version__
from mmrag.api.deps import container
from mmrag.api.envelope import ok

router = APIRouter(prefix="/api/v1", tags=["health"])


def problems(components: dict[str, Any]) -> list[str]:
    """One line per thing that does not work, as '<component>: <why>. Fix: <what to do>.'"""
    out: list[str] = []
    for name, comp in components.items():
        if not isinstance(comp, dict):
            continue
        found = _errors(name, comp)
        if comp.get("status") == "error" and not found:
            found.append(f"{name}: state {comp.get('state', 'error')}; see the server log")
        out += found
    return out


def _errors(path: str, part: dict[str, Any]) -> list[str]:
    """`error` and `<side>_error` entries at any depth, named by where they are (models.clip.image: ...)."""
    out: list[str] = []
    for key, value in part.items():
        if isinstance(value, dict):
            out += _errors(f"{path}.{key}", value)
        elif value and isinstance(value, str) and (key == "error" or key.endswith("_error")):
            where = path if key == "error" else f"{path}.{key.removesuffix('_error')}"
            out.append(f"{where}: {value}")
    return out


@router.get(
    "/health",
    summary="Component status (store, blobs, index, models, OCR); needs no API key. "
    "status: ok, starting (models still loading at start-up: requests work but the first ones wait), degraded",
)
def health(c=Depends(container)):
    components = c.health()
    issues = problems(components)
    bad = [name for name, comp in components.items() if comp.get("status") == "error"]
    starting = bool((components.get("models") or {}).get("warming_up"))
    status = "degraded" if bad or issues else ("starting" if starting else "ok")
    body = {"status": status, "version": __version__, "backend": c.backend, "components": components}
    if issues:
        body["problems"] = issues
    if status == "starting":
        return ok(body, "服务启动中：正在加载模型")
    return ok(body, "服务正常" if status == "ok" else "部分组件异常")  # what is wrong: data.problems
