"""The API functions (DocumentsFunction, SearchFunction, QaFunction, SessionsFunction): the same FastAPI app as
`mmrag serve`, behind API Gateway (REST, Lambda proxy integration), through Mangum.

`handler` builds the app and the AWS container on the first invocation, so importing this module costs only what
the entry point needs (no FastAPI app, no boto3 clients, never the local ML stack). Every function of the group runs
the whole app; API Gateway only sends it its group's routes (template.yaml), so each group gets its own memory,
timeout and IAM permissions without a second code path.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths

from mmrag.lambda_handlers import runtime

logger = Logger()
metrics = Metrics()

UPLOAD_URL_PATH = "/api/v1/documents/upload-url"

_built: tuple[Any, Any] | None = None  # (container, Mangum handler)


def iter_routes(routes: Any) -> Iterator[Any]:
    """Every endpoint route (path, methods, dependant) of an app or router, included routers flattened (FastAPI
    keeps an included router as one entry whose `original_router` holds the routes, with their full paths)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from iter_routes(inner.routes)
        else:
            yield route


def fastapi_app(container: Any) -> Any:
    """The FastAPI app for AWS: create_app, plus the upload-url route until app.py registers it itself."""
    from mmrag.api.app import create_app

    app = create_app(container, manage_lifecycle=False)
    if not any(getattr(r, "path", None) == UPLOAD_URL_PATH for r in iter_routes(app.routes)):
        from mmrag.api.routes import upload_url

        app.include_router(upload_url.router)
    return app


def asgi_app(container: Any) -> Any:
    """The app as API Gateway's integrations see it: the authorizer's identity and the public root path first."""
    from mmrag.adapters.aws.identity import AuthorizerContext

    return AuthorizerContext(fastapi_app(container))


def _mangum() -> Any:
    global _built
    container = runtime.container()
    if _built is None or _built[0] is not container:
        from mangum import Mangum

        _built = (container, Mangum(asgi_app(container), lifespan="off"))
    return _built[1]


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@metrics.log_metrics(capture_cold_start_metric=True, raise_on_empty_metrics=False)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _mangum()(event, context)
