"""Security headers on every response. HTML (the API docs) may load only same-origin resources and run no inline
script; everything else (JSON, pictures, event streams) may load nothing at all. Referrer-Policy: no-referrer keeps
signed picture URLs out of the Referer header of whatever a page links to."""

from __future__ import annotations

import logging
from collections.abc import Callable

from starlette.datastructures import MutableHeaders

log = logging.getLogger(__name__)

# every response that is not HTML: it never needs to load anything
API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


def html_policy(image_origins: list[str]) -> str:
    img = " ".join(["'self'", "data:", "blob:", *image_origins])
    return (
        "default-src 'self'; "
        f"img-src {img}; "
        "script-src 'self'; style-src 'self'; object-src 'none'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


class SecurityHeadersMiddleware:
    """Pure ASGI (like RequestIdMiddleware), so streamed answers are not buffered."""

    def __init__(self, app, image_origins: Callable[[], list[str]] = list):
        self.app = app
        self._image_origins = image_origins
        self._html_policy: str | None = None

    def html_policy(self) -> str:
        if self._html_policy is None:  # asked on first use: on AWS, presigning a probe URL needs credentials
            try:
                self._html_policy = html_policy(self._image_origins())
            except Exception:
                log.exception("the picture URLs' origin is unknown; HTML may show same-origin pictures only")
                return html_policy([])
        return self._html_policy

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                html = headers.get("content-type", "").startswith("text/html")
                headers.setdefault("Content-Security-Policy", self.html_policy() if html else API_POLICY)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "no-referrer")
                headers.setdefault("X-Frame-Options", "DENY")
            await send(message)

        await self.app(scope, receive, send_with_headers)


def container_image_origins(container: object) -> Callable[[], list[str]]:
    """The origins the container's picture URLs point to besides ours (S3 on AWS)."""

    def origins() -> list[str]:
        links = getattr(container, "image_links", None)
        return list(links.origins()) if links is not None else []

    return origins
