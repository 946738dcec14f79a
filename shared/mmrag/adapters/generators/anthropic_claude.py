"""Claude through Anthropic's Messages API, with the official `anthropic` SDK (1.x and later are built on httpx2).

SDK notes that shaped this adapter:
- `temperature` is no longer a parameter of `messages.create`/`messages.stream` (removed in SDK 1.0: current models
  ignore or reject sampling settings). Older models still honour it, so it goes through `extra_body`; a model whose
  400 names `temperature` is remembered and asked again without it.
- Our own `httpx2.Client(trust_env=False)` is passed in, so HTTP(S)_PROXY and friends from the environment are never
  used; an explicit `api_key` also stops the SDK from reading ANTHROPIC_API_KEY or credential profiles.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import anthropic
import httpx2

from mmrag.core.generation import GenImage, GenRequest, GenResult, ProviderUnavailable, image_format

DEFAULT_MODELS = ["claude-sonnet-5-5", "claude-haiku-5-5", "claude-opus-5-5", "claude-sonnet-4-6", "claude-haiku-4-5"]
_T = TypeVar("_T")


class AnthropicGenerator:
    provider = "anthropic"

    def __init__(
        self,
        api_key: str,
        models: list[str] | None = None,
        base_url: str | None = None,
        timeout: float = 60,
        *,
        max_retries: int = 2,
    ):
        self._api_key = api_key
        self._models = list(dict.fromkeys([*(models or []), *DEFAULT_MODELS]))
        timeouts = httpx2.Timeout(timeout, connect=min(timeout, 10.0))
        self._client = anthropic.Anthropic(
            api_key=api_key,
            base_url=base_url,
            timeout=timeouts,
            max_retries=max_retries,
            http_client=httpx2.Client(trust_env=False, timeout=timeouts, follow_redirects=True),
        )
        self._no_temperature: set[str] = set()

    def models(self) -> list[str]:
        return list(self._models)

    def supports_images(self, model: str) -> bool:
        return model.startswith("claude-")

    def close(self) -> None:
        self._client.close()

    def generate(self, request: GenRequest) -> GenResult:
        params = _params(request)
        try:
            message = self._send(request, lambda extra: self._client.messages.create(**params, extra_body=extra))
        except (anthropic.APIError, httpx2.TransportError) as err:
            raise self._unavailable(err) from err
        return _result(message, request.model)

    def stream(self, request: GenRequest) -> Iterator[str | GenResult]:
        params = _params(request)
        try:
            with contextlib.ExitStack() as stack:
                events = self._send(
                    request,
                    lambda extra: stack.enter_context(self._client.messages.stream(**params, extra_body=extra)),
                )
                yield from events.text_stream
                message = events.get_final_message()
        # httpx2 errors can escape the SDK when the connection dies mid-body
        except (anthropic.APIError, httpx2.TransportError) as err:
            raise self._unavailable(err) from err
        yield _result(message, request.model)

    def _send(self, request: GenRequest, call: Callable[[dict[str, Any] | None], _T]) -> _T:
        extra = None if request.model in self._no_temperature else {"temperature": request.temperature}
        try:
            return call(extra)
        except anthropic.BadRequestError as err:
            if extra is None or "temperature" not in (err.api_message or err.message).lower():
                raise
            self._no_temperature.add(request.model)
            return call(None)

    def _unavailable(self, err: Exception) -> ProviderUnavailable:
        message = _describe(err)
        if self._api_key:
            message = message.replace(self._api_key, "***")
        return ProviderUnavailable(message)


def _params(request: GenRequest) -> dict[str, Any]:
    params: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.max_tokens,
        "messages": [_message(m.role, m.text, m.images) for m in request.messages],
    }
    if request.system:
        params["system"] = request.system
    return params


def _message(role: str, text: str, images: list[GenImage]) -> dict[str, Any]:
    if not images:
        return {"role": role, "content": text}
    # images before the text, as Anthropic recommends; an empty text block would be a 400
    content: list[dict[str, Any]] = [
        {"type": "image", "source": {"type": "base64", "media_type": _media_type(image), "data": _b64(image.data)}}
        for image in images
    ]
    if text:
        content.append({"type": "text", "text": text})
    return {"role": role, "content": content}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _media_type(image: GenImage) -> str:
    return "image/" + image_format(image, "Claude")


def _result(message: Any, model: str) -> GenResult:
    usage = message.usage
    input_tokens = None
    if usage is not None:
        # with prompt caching, input_tokens only counts the uncached part
        input_tokens = (
            usage.input_tokens + (usage.cache_creation_input_tokens or 0) + (usage.cache_read_input_tokens or 0)
        )
    return GenResult(
        text="".join(block.text for block in message.content if block.type == "text"),
        model=message.model or model,
        input_tokens=input_tokens,
        output_tokens=usage.output_tokens if usage is not None else None,
        stop_reason=message.stop_reason,
    )


def _describe(err: Exception) -> str:
    if isinstance(err, anthropic.APITimeoutError):
        return "Anthropic API timed out: no answer within the configured timeout"
    if isinstance(err, anthropic.APIConnectionError | httpx2.TransportError):
        cause = err.__cause__ if isinstance(err, anthropic.APIConnectionError) and err.__cause__ else err
        return f"cannot reach the Anthropic API: {type(cause).__name__}: {cause}"
    if not isinstance(err, anthropic.APIStatusError):
        return f"Anthropic API call failed: {err}"
    status, kind = err.status_code, err.type or ""
    detail = (err.api_message or err.message or "").strip()[:500]
    where = f"HTTP {status}" if status >= 400 else "in the stream"
    label = f"({where}{', ' + kind if kind else ''})"
    if kind == "authentication_error" or status == 401:
        return f"Anthropic rejected the API key {label}: {detail}"
    if kind == "permission_error" or status == 403:
        return f"Anthropic denied access to this API key {label}: {detail}"
    if kind == "rate_limit_error" or status == 429:
        return f"Anthropic rate limit or quota exceeded {label}: {detail}"
    if kind == "overloaded_error" or status == 529:
        return f"Anthropic is overloaded, try again later {label}: {detail}"
    if kind in ("api_error", "timeout_error") or status >= 500 or status < 400:
        return f"Anthropic server error {label}: {detail}"
    return f"Anthropic rejected the request {label}: {detail}"
