"""X-RateLimit-* headers on every response of a rate-limited request, whatever produced it (a route's JSON, a file, a
stream, or an error handler). The caller dependency (api/deps.py) leaves the key's state in the request's scope;
this pure ASGI middleware copies it onto the response's headers."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders

from mmrag.core.ratelimit import RateState

STATE_KEY = "rate_limit"


class RateLimitHeadersMiddleware:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})

        async def send_with_limits(message):
            if message["type"] == "http.response.start":
                rate = state.get(STATE_KEY)
                if isinstance(rate, RateState):
                    headers = MutableHeaders(scope=message)
                    for name, value in rate.headers().items():
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_limits)
