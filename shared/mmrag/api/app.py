"""The FastAPI application: one app for `mmrag serve` and for the Lambda functions."""

from __future__ import annotations

import uuid
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request

from mmrag import __version__
from mmrag.api.envelope import install_error_handlers
from mmrag.api.routes import documents, health, qa, search


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
    )
    app.state.container = container
    install_error_handlers(app)

    @app.middleware("http")
    async def request_id_header(request: Request, call_next):
        rid = request.headers.get("x-request-id") or f"req_{uuid.uuid4().hex[:16]}"
        request.state.request_id = rid[:128]
        response = await call_next(request)
        response.headers["X-Request-ID"] = request.state.request_id
        return response

    for module in (health, documents, search, qa):
        app.include_router(module.router)
    return app
