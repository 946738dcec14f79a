"""Any server speaking OpenAI's Chat Completions wire format, over plain httpx (no `openai` SDK).

Tested shapes: Zhipu GLM (https://open.bigmodel.cn/api/paas/v4, e.g. glm-4v-flash), Qwen-VL through DashScope's
compatible mode (https://dashscope.aliyuncs.com/compatible-mode/v1), Ollama (http://localhost:11434/v1) and vLLM
(http://host:8000/v1). Known quirks:
- `stream_options: {"include_usage": true}` is how OpenAI, DashScope, vLLM and recent Ollama report usage in a
  stream (a last chunk with `choices: []`); some servers and gateways reject the field with a 400/422. Such an answer
  is retried once without it, and the adapter stops sending it (or pass `stream_usage=False`). Zhipu puts `usage`
  on the final chunk without being asked; both are read.
- Images go as `{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}`. Zhipu's own GLM-4V
  examples send the bare base64 string instead; if a GLM vision model answers error 1210 for data URLs, set
  `bare_base64_images=True`.
- Text-only messages are sent with a plain string `content` (older Ollama and text-only GLM models reject the list
  form); the list form is used only when a message carries images.
- Error bodies differ: `{"error": {"message": ...}}` (OpenAI, DashScope, Ollama), `{"error": {"code": "1211",
  "message": ...}}` (Zhipu), `{"object": "error", "message": ...}` (vLLM); all are read.
- Ollama needs no key: pass `api_key=None` and no Authorization header is sent.
- Reasoning models may stream `delta.reasoning_content`; only `delta.content` is part of the answer.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx

from mmrag.core.generation import GenImage, GenRequest, GenResult, ProviderUnavailable, image_format

# model-name tokens that mark a vision model, used only when vision_models is not configured
_VISION_TOKEN = re.compile(r"^(vlm|vision|llava|v|\d+v|.*vl)$")


class OpenAICompatibleGenerator:
    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        models: list[str],
        vision_models: list[str] | None = None,
        timeout: float = 60,
        provider: str = "openai-compatible",
        *,
        stream_usage: bool = True,
        bare_base64_images: bool = False,
    ):
        if not models:
            raise ValueError("an OpenAI-compatible generator needs at least one model")
        self.provider = provider
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._api_key = api_key or None
        self._models = list(models)
        self._vision_models = set(vision_models) if vision_models is not None else None
        self._stream_usage = stream_usage
        self._bare_base64 = bare_base64_images
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            trust_env=False, headers=headers, timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0))
        )

    def models(self) -> list[str]:
        return list(self._models)

    def supports_images(self, model: str) -> bool:
        if self._vision_models is not None:
            return model in self._vision_models
        return any(_VISION_TOKEN.match(token) for token in re.split(r"[-_.:/\s]+", model.lower()) if token)

    def close(self) -> None:
        self._http.close()

    def generate(self, request: GenRequest) -> GenResult:
        try:
            response = self._http.post(self._url, json=self._body(request, stream=False))
        except httpx.HTTPError as err:
            raise self._unreachable(err) from err
        if response.status_code >= 400:
            raise self._rejected(response.status_code, response.text)
        try:
            data = response.json()
            choice = data["choices"][0]
            text = _content_text(choice["message"].get("content"))
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as err:
            raise self._unavailable(f"returned an unexpected answer: {response.text[:300]}") from err
        usage = data.get("usage") or {}
        return GenResult(
            text=text,
            model=data.get("model") or request.model,
            input_tokens=usage.get("prompt_tokens"),
            output_tokens=usage.get("completion_tokens"),
            stop_reason=choice.get("finish_reason"),
        )

    def stream(self, request: GenRequest) -> Iterator[str | GenResult]:
        parts: list[str] = []
        model, stop_reason, usage = request.model, None, {}
        done = False
        try:
            response = self._open_stream(request)
            try:
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue  # blank separators, ": keep-alive" comments, event:/id: fields
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        done = True
                        break
                    chunk = self._chunk(payload)
                    model = chunk.get("model") or model
                    usage = chunk.get("usage") or usage
                    for choice in chunk.get("choices") or []:
                        stop_reason = choice.get("finish_reason") or stop_reason
                        delta = _content_text((choice.get("delta") or {}).get("content"))
                        if delta:
                            parts.append(delta)
                            yield delta
            finally:
                response.close()
        except httpx.HTTPError as err:
            raise self._unreachable(err) from err
        if not done and stop_reason is None:
            raise self._unavailable("closed the stream before it finished")
        yield GenResult(
            text="".join(parts),
            model=model,
            input_tokens=usage.get("prompt_tokens"),
            output_tokens=usage.get("completion_tokens"),
            stop_reason=stop_reason,
        )

    def _open_stream(self, request: GenRequest) -> httpx.Response:
        while True:
            sending_usage = self._stream_usage
            body = self._body(request, stream=True)
            response = self._http.send(self._http.build_request("POST", self._url, json=body), stream=True)
            if response.status_code < 400:
                return response
            text = response.read().decode("utf-8", "replace")
            response.close()
            if sending_usage and response.status_code in (400, 422) and "stream_options" in text:
                self._stream_usage = False
                continue
            raise self._rejected(response.status_code, text)

    def _body(self, request: GenRequest, *, stream: bool) -> dict[str, Any]:
        messages = [{"role": "system", "content": request.system}] if request.system else []
        messages += [self._message(m.role, m.text, m.images) for m in request.messages]
        body: dict[str, Any] = {
            "model": request.model,
            "messages": messages,
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
            "stream": stream,
        }
        if stream and self._stream_usage:
            body["stream_options"] = {"include_usage": True}
        return body

    def _message(self, role: str, text: str, images: list[GenImage]) -> dict[str, Any]:
        if not images:
            return {"role": role, "content": text}
        content: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": self._url_for(i)}} for i in images]
        if text:
            content.append({"type": "text", "text": text})
        return {"role": role, "content": content}

    def _url_for(self, image: GenImage) -> str:
        data = base64.b64encode(image.data).decode("ascii")
        return data if self._bare_base64 else f"data:{_media_type(image)};base64,{data}"

    def _chunk(self, payload: str) -> dict[str, Any]:
        try:
            chunk = json.loads(payload)
        except ValueError as err:
            raise self._unavailable(f"sent a malformed stream chunk: {payload[:200]}") from err
        if not isinstance(chunk, dict):
            raise self._unavailable(f"sent a malformed stream chunk: {payload[:200]}")
        # vLLM, OpenRouter and others report failures after the 200 as an error chunk
        if chunk.get("error") or chunk.get("object") == "error":
            raise self._unavailable(f"failed in the stream: {_error_message(chunk, payload)}")
        return chunk

    def _unreachable(self, err: httpx.HTTPError) -> ProviderUnavailable:
        if isinstance(err, httpx.TimeoutException):
            return self._unavailable(f"timed out ({type(err).__name__})")
        return self._unavailable(f"cannot be reached: {type(err).__name__}: {err}")

    def _rejected(self, status: int, text: str) -> ProviderUnavailable:
        try:
            detail = _error_message(json.loads(text), text)
        except ValueError:
            detail = text.strip()[:300] or "(empty body)"
        if status == 401:
            cause = "rejected the API key"
        elif status == 403:
            cause = "denied access"
        elif status == 404:
            cause = "does not know this model or path (check base_url and the model name)"
        elif status == 429:
            cause = "rate limit or quota exceeded"
        elif status >= 500:
            cause = "server error"
        else:
            cause = "rejected the request"
        return self._unavailable(f"{cause} (HTTP {status}): {detail}")

    def _unavailable(self, message: str) -> ProviderUnavailable:
        message = f"{self.provider} at {self._url} {message}"
        if self._api_key:
            message = message.replace(self._api_key, "***")
        return ProviderUnavailable(message)


def _error_message(body: Any, raw: str) -> str:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            message = error.get("message") or error.get("msg") or json.dumps(error, ensure_ascii=False)
            code = error.get("code") or error.get("type")
            return f"{message} [{code}]" if code else str(message)
        if isinstance(error, str):
            return error
        for key in ("message", "detail", "msg"):
            if body.get(key):
                return str(body[key])
    return raw.strip()[:300]


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    # a few servers answer with a list of parts instead of a string
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))


def _media_type(image: GenImage) -> str:
    return "image/" + image_format(image, "the server")
