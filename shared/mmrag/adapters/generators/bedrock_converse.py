"""Bedrock models through the model-agnostic Converse / ConverseStream APIs of boto3's `bedrock-runtime` client.

Without an injected client, one is made on first use (so a missing region or credentials surfaces as a clear
ProviderUnavailable on the first call, not at start-up), with boto3's usual credential chain and proxy settings.
Errors inside a ConverseStream arrive as exception events that botocore raises as `EventStreamError`, a ClientError
whose code is camelCase (`throttlingException`), unlike the PascalCase codes of ordinary errors.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ReadTimeoutError,
)

from mmrag.core.generation import GenImage, GenRequest, GenResult, ProviderUnavailable, image_format

DEFAULT_MODELS = [
    "anthropic.claude-3-5-sonnet-20241022-v2:0",
    "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    "amazon.nova-pro-v1:0",
    "amazon.nova-lite-v1:0",
]
_VISION_MARKERS = ("claude", "nova-pro", "nova-lite", "nova-premier")

_ACCESS = {
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "ExpiredTokenException",
    "ExpiredToken",
    "InvalidClientTokenId",
}
_THROTTLED = {"ThrottlingException", "ServiceQuotaExceededException", "TooManyRequestsException"}
_OUTAGE = {
    "ServiceUnavailableException",
    "InternalServerException",
    "ModelTimeoutException",
    "ModelErrorException",
    "ModelStreamErrorException",
}


class BedrockGenerator:
    provider = "bedrock"

    def __init__(self, client: Any = None, region: str | None = None, models: list[str] | None = None):
        self._client = client
        self._region = region
        self._models = list(models) if models else list(DEFAULT_MODELS)
        self._lock = threading.Lock()

    def models(self) -> list[str]:
        return list(self._models)

    def supports_images(self, model: str) -> bool:
        return any(marker in model.lower() for marker in _VISION_MARKERS)

    def generate(self, request: GenRequest) -> GenResult:
        try:
            response = self._runtime().converse(**_params(request))
        except (ClientError, BotoCoreError) as err:
            raise ProviderUnavailable(_describe(err, request.model)) from err
        message = (response.get("output") or {}).get("message") or {}
        usage = response.get("usage") or {}
        return GenResult(
            text="".join(block.get("text", "") for block in message.get("content") or []),
            model=request.model,
            input_tokens=_input_tokens(usage),
            output_tokens=usage.get("outputTokens"),
            stop_reason=response.get("stopReason"),
        )

    def stream(self, request: GenRequest) -> Iterator[str | GenResult]:
        parts: list[str] = []
        stop_reason, usage = None, {}
        events = None
        try:
            events = self._runtime().converse_stream(**_params(request))["stream"]
            for event in events:
                if "contentBlockDelta" in event:
                    text = event["contentBlockDelta"].get("delta", {}).get("text")
                    if text:
                        parts.append(text)
                        yield text
                elif "messageStop" in event:
                    stop_reason = event["messageStop"].get("stopReason")
                elif "metadata" in event:
                    usage = event["metadata"].get("usage") or usage
        except (ClientError, BotoCoreError) as err:
            raise ProviderUnavailable(_describe(err, request.model)) from err
        finally:
            if events is not None:
                events.close()
        yield GenResult(
            text="".join(parts),
            model=request.model,
            input_tokens=_input_tokens(usage),
            output_tokens=usage.get("outputTokens"),
            stop_reason=stop_reason,
        )

    def _runtime(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import boto3
                    from botocore.config import Config

                    config = Config(
                        retries={"mode": "standard", "max_attempts": 3}, connect_timeout=10, read_timeout=120
                    )
                    self._client = boto3.client("bedrock-runtime", region_name=self._region, config=config)
        return self._client


def _params(request: GenRequest) -> dict[str, Any]:
    params: dict[str, Any] = {
        "modelId": request.model,
        "messages": [_message(m.role, m.text, m.images) for m in request.messages],
        "inferenceConfig": {"maxTokens": request.max_tokens, "temperature": request.temperature},
    }
    if request.system:
        params["system"] = [{"text": request.system}]
    return params


def _message(role: str, text: str, images: list[GenImage]) -> dict[str, Any]:
    content: list[dict[str, Any]] = [
        {"image": {"format": _format(image), "source": {"bytes": image.data}}} for image in images
    ]
    # Converse rejects blank text blocks
    if text or not content:
        content.append({"text": text})
    return {"role": role, "content": content}


def _format(image: GenImage) -> str:
    return image_format(image, "Bedrock")


def _input_tokens(usage: dict[str, Any]) -> int | None:
    if usage.get("inputTokens") is None:
        return None
    # with prompt caching, inputTokens only counts the uncached part
    return usage["inputTokens"] + usage.get("cacheReadInputTokens", 0) + usage.get("cacheWriteInputTokens", 0)


def _describe(err: ClientError | BotoCoreError, model: str) -> str:
    if isinstance(err, ClientError):
        error = err.response.get("Error") or {}
        raw_code = str(error.get("Code") or "")
        code = raw_code[:1].upper() + raw_code[1:]
        detail = str(error.get("Message") or "").strip()[:500]
        status = (err.response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0
        label = f"({code}{f', HTTP {status}' if status else ''})"
        if code in _ACCESS:
            return f"Bedrock denied access to {model} {label}: {detail} - check the AWS credentials and model access"
        if code in _THROTTLED:
            return f"Bedrock rate limit or quota exceeded for {model} {label}: {detail}"
        if code == "ModelNotReadyException":
            return f"Bedrock model {model} is not ready yet, try again shortly {label}: {detail}"
        if code in _OUTAGE or status >= 500:
            return f"Bedrock is unavailable for {model} {label}: {detail}"
        return f"Bedrock rejected the request for {model} {label}: {detail}"
    if isinstance(err, NoCredentialsError | PartialCredentialsError):
        return f"Bedrock cannot be called: no usable AWS credentials ({err})"
    if isinstance(err, NoRegionError):
        return "Bedrock cannot be called: no AWS region configured (set region or AWS_REGION)"
    if isinstance(err, ConnectTimeoutError | ReadTimeoutError):
        return f"Bedrock timed out: {err}"
    if isinstance(err, EndpointConnectionError):
        return f"cannot reach Bedrock: {err}"
    return f"Bedrock call failed: {type(err).__name__}: {err}"
