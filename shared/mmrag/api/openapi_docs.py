"""/docs (Swagger UI) and /redoc (ReDoc) from files on this machine, never a CDN: the assets come from the
fastapi-offline package (Swagger UI, Apache-2.0; ReDoc, MIT), installed with the `local` extra. Without it (the
Lambda layers) there are no docs pages; /openapi.json is always served.

The pages run no inline script, so they work under the API's Content-Security-Policy (script-src 'self'). ReDoc
writes its styles into <style> elements as soon as it loads (before any nonce could reach it), so /redoc alone may
use inline styles and a worker from a blob: URL (its search index); scripts stay same-origin only.
The assets are served by a small ASGI wrapper rather than routes, so the API's route table stays the API's.
"""

from __future__ import annotations

import html
import importlib.util
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

from mmrag.api.security_headers import html_policy

DOCS_URL, REDOC_URL, ASSETS_URL = "/docs", "/redoc", "/docs/assets"
_ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")

SWAGGER_INIT = """\
window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
    layout: "BaseLayout",
    deepLinking: true,
    persistAuthorization: true,
    showExtensions: true,
  });
});
"""


def assets_dir() -> Path | None:
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "static"
    return folder if all((folder / name).is_file() for name in _ASSETS) else None


def _page(title: str, head: str, body: str) -> str:
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n{head}</head>\n<body>\n{body}</body>\n'
        "</html>\n"
    )


def install_docs(app: FastAPI) -> bool:
    """Adds /docs and /redoc when the assets are installed; says whether it did."""
    folder = assets_dir()
    if folder is None or app.openapi_url is None:
        return False
    openapi_url = app.openapi_url

    @app.get(DOCS_URL, include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        assets = root + ASSETS_URL
        head = (
            f'<link rel="stylesheet" href="{assets}/swagger-ui.css">\n<link rel="icon" href="{assets}/favicon.png">\n'
        )
        body = (
            f'<div id="swagger-ui" data-openapi-url="{html.escape(root + openapi_url)}"></div>\n'
            f'<script src="{assets}/swagger-ui-bundle.js"></script>\n'
            f'<script src="{assets}/swagger-init.js"></script>\n'
        )
        return HTMLResponse(_page(f"{app.title} - Swagger UI", head, body))

    @app.get(REDOC_URL, include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        assets = root + ASSETS_URL
        head = f'<link rel="icon" href="{assets}/favicon.png">\n'
        body = (
            f'<redoc spec-url="{html.escape(root + openapi_url)}"></redoc>\n'
            f'<script src="{assets}/redoc.standalone.js"></script>\n'
        )
        policy = html_policy([]).replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
        policy += "; worker-src 'self' blob:"  # its search index runs in a worker made from a blob
        headers = {"Content-Security-Policy": policy}
        return HTMLResponse(_page(f"{app.title} - ReDoc", head, body), headers=headers)

    app.state.docs_assets = folder
    return True


class DocsAssetsMiddleware:
    """Serves GET /docs/assets/<file>: the installed Swagger UI and ReDoc files, and the Swagger UI start script."""

    def __init__(self, app, folder: Path | None):
        self.app = app
        self.files = StaticFiles(directory=folder) if folder is not None else None

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if self.files is None or not path.startswith(ASSETS_URL + "/"):
            await self.app(scope, receive, send)
            return
        if path == ASSETS_URL + "/swagger-init.js":
            response = Response(SWAGGER_INIT, media_type="text/javascript")
        else:
            name = path[len(ASSETS_URL) + 1 :]
            if name not in _ASSETS:
                await self.app(scope, receive, send)
                return
            response = self.files
            scope = {**scope, "path": "/" + name, "root_path": ""}
        await response(scope, receive, send)
