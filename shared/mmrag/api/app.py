"""The FastAPI application: one app for `mmrag serve` and for the Lambda functions."""

from __future__ import annotations

import uuid
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.datastructures import MutableHeaders

from mmrag import __version__
from mmrag.api.envelope import ErrorBoundaryMiddleware, install_error_handlers
from mmrag.api.openapi import install_openapi
from mmrag.api.openapi_docs import DocsAssetsMiddleware, install_docs
from mmrag.api.rate_headers import RateLimitHeadersMiddleware
from mmrag.api.request_body import RequestBodyMiddleware
from mmrag.api.routes import account, documents, health, qa, search, studio, upload_url
from mmrag.api.security_headers import SecurityHeadersMiddleware, container_image_origins
from mmrag.security import log_masking


class RequestIdMiddleware:
    """Echoes X-Request-ID (or makes one) on every response. Pure ASGI, so streamed answers stay directly connected
    to the client and notice when it goes away."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1").strip()
        rid = sent[:128] or f"req_{uuid.uuid4().hex[:16]}"
        scope.setdefault("state", {})["request_id"] = rid

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["X-Request-ID"] = rid
            await send(message)

        await self.app(scope, receive, send_with_id)


def create_app(container: Any, *, manage_lifecycle: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if manage_lifecycle:
            container.start()
        try:
            yield
        finally:
            if manage_lifecycle:
                container.stop()

    app = FastAPI(
        title="mmrag",
        version=__version__,
        lifespan=lifespan,
        description="Multimodal RAG: documents, hybrid search across text and pictures, cited answers.",
        docs_url=None,  # /docs and /redoc come from install_docs: local assets, no CDN
        redoc_url=None,
    )
    app.state.container = container
    log_masking.install()
    install_error_handlers(app)

    app.add_middleware(RequestBodyMiddleware)  # innermost of ours: body limits and strict JSON
    app.add_middleware(RateLimitHeadersMiddleware)
    docs = install_docs(app)
    app.add_middleware(DocsAssetsMiddleware, folder=app.state.docs_assets if docs else None)
    app.add_middleware(SecurityHeadersMiddleware, image_origins=container_image_origins(container))
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(ErrorBoundaryMiddleware)  # outermost: no exception reaches the server

    for module in (health, account, documents, upload_url, search, qa, studio):
        app.include_router(module.router)
    install_openapi(app)
    return app
