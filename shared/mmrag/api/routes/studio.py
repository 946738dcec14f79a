"""The studio web app (mmrag/studio): index.html at `/`, its files under `/studio/`. Plain files, no build step.

Every answer carries the app's security headers: a Content-Security-Policy that allows scripts, styles, pictures and
API calls from this origin only (no inline script, no eval, nothing from a CDN), no framing, no referrer. The API key
lives in the browser tab's sessionStorage and travels only in the Authorization header, never in a URL.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from mmrag.api.deps import container
from mmrag.errors import NotFound

log = logging.getLogger(__name__)

STUDIO_DIR = Path(__file__).resolve().parent.parent.parent / "studio"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
}
# The AWS deployment's large uploads PUT straight to S3 (POST /documents/upload-url), another origin.
S3_ORIGIN = "https://*.amazonaws.com"

router = APIRouter(include_in_schema=False)


def content_security_policy(backend: str, image_origins: list[str]) -> str:
    connect = "'self'" + (f" {S3_ORIGIN}" if backend == "aws" else "")
    images = " ".join(["'self'", "data:", "blob:", *image_origins])
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src {images}",
            f"connect-src {connect}",
            "font-src 'self'",
            "manifest-src 'self'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


def image_origins(c: Any) -> list[str]:
    """Where the API's picture URLs point besides this origin (presigned S3 URLs on AWS)."""
    links = getattr(c, "image_links", None)
    try:
        return list(links.origins()) if links is not None else []
    except Exception:  # noqa: BLE001 - no credentials to presign a probe: same-origin pictures only
        log.exception("the picture URLs' origin is unknown")
        return []


def security_headers(c: Any) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(getattr(c, "backend", "local"), image_origins(c)),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
        "Cache-Control": "no-cache",
    }


def _file(path: Path, c: Any) -> FileResponse:
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers=security_headers(c))


@router.api_route("/", methods=["GET", "HEAD"])
def index(request: Request, c=Depends(container)) -> Response:
    # API Gateway hands https://<api>/<stage> and .../<stage>/ both to "/"; without the slash the page's relative
    # paths (studio/js/main.js) would leave the stage, so that address is sent to the one with the slash
    stage_path = ((request.scope.get("aws.event") or {}).get("requestContext") or {}).get("path") or ""
    if stage_path and not stage_path.endswith("/"):
        return RedirectResponse(stage_path + "/", status_code=308, headers=security_headers(c))
    return _file(STUDIO_DIR / "index.html", c)


@router.api_route("/studio/{file_path:path}", methods=["GET", "HEAD"])
def studio_file(file_path: str, c=Depends(container)) -> FileResponse:
    path = (STUDIO_DIR / file_path).resolve()
    if not path.is_relative_to(STUDIO_DIR) or not path.is_file() or path.suffix not in MEDIA_TYPES:
        raise NotFound("no such studio file", file_path)
    return _file(path, c)
