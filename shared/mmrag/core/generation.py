"""The generator port: what an answer provider (Claude, Bedrock, OpenAI-compatible, extractive) receives and returns."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from mmrag.errors import InvalidParameter, MMRagError


@dataclass
class GenImage:
    data: bytes  # PNG or JPEG bytes
    mime: str = "image/png"


@dataclass
class GenMessage:
    role: str  # user | assistant
    text: str
    images: list[GenImage] = field(default_factory=list)


@dataclass
class Evidence:
    """One numbered source as the answerer sees it (LLM providers get it inside the prompt instead)."""

    number: int
    text: str
    score: float = 0.0


@dataclass
class GenRequest:
    system: str
    messages: list[GenMessage]
    model: str
    temperature: float = 0.2
    max_tokens: int = 1024
    # structured copies of what the prompt holds, for answerers that work without a language model
    question: str = ""
    evidence: list[Evidence] = field(default_factory=list)
    language: str = "en"


@dataclass
class GenResult:
    text: str
    model: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    stop_reason: str | None = None


MODEL_IMAGE_FORMATS = ("png", "jpeg", "gif", "webp")


def image_format(image: GenImage, provider: str) -> str:
    """png | jpeg | gif | webp. The bytes win over the declared mime, because the APIs check one against the other."""
    from mmrag.ingest.sniff import sniff

    sniffed = sniff(image.data)
    if sniffed in MODEL_IMAGE_FORMATS:
        return sniffed
    declared = image.mime.lower().removeprefix("image/").replace("jpg", "jpeg")
    if declared in MODEL_IMAGE_FORMATS:
        return declared
    raise InvalidParameter(f"unsupported image type {image.mime!r}: {provider} takes PNG, JPEG, GIF or WebP")


class ProviderUnavailable(MMRagError):
    """The provider cannot be reached or refused the call (auth, quota, outage): 503 with a clear message."""

    status, code = 503, "SERVICE_UNAVAILABLE"


class Generator(Protocol):
    provider: str

    def models(self) -> list[str]:
        """Model ids this provider accepts in generation_config.model (the first is its default)."""
        ...

    def supports_images(self, model: str) -> bool: ...

    def generate(self, request: GenRequest) -> GenResult: ...

    def stream(self, request: GenRequest) -> Iterator[str | GenResult]:
        """Yields text deltas as they arrive, then exactly one GenResult (full text and usage)."""
        ...
