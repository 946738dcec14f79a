"""AskStreamFunction: the same app under uvicorn, for answers streamed as Server-Sent Events.

Python Lambda functions have no native response streaming, so this function runs the Lambda Web Adapter (a layer,
AWS_LWA_INVOKE_MODE=response_stream): the adapter starts `run.sh` (uvicorn serving `app` below on 127.0.0.1), turns
each invocation into an HTTP request to it and streams the response body back while it is produced. API Gateway's
integrations for POST /api/v1/qa/ask-stream and /qa/chat-stream use response transfer mode STREAM, so the stream
reaches the client through the same API, authorizer and usage plans as every other route.

`app` builds the container and the FastAPI app on the first request, so uvicorn starts (and the adapter's readiness
check passes) before any AWS client exists.
"""

from __future__ import annotations

import threading
from typing import Any

from mmrag.lambda_handlers import runtime


class LazyApp:
    def __init__(self) -> None:
        self._app: Any = None
        self._lock = threading.Lock()

    def _get(self) -> Any:
        if self._app is None:
            with self._lock:
                if self._app is None:
                    from mmrag.lambda_handlers.api import asgi_app

                    self._app = asgi_app(runtime.container())
        return self._app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":  # nothing to start or stop: answer uvicorn at once
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await self._get()(scope, receive, send)


app = LazyApp()
