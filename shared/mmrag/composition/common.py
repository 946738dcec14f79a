"""Wiring both platforms share: the answer providers and the answer service, built the same way everywhere."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mmrag.core.answering import AnswerService, GeneratorRegistry
from mmrag.core.documents import decode_image_value
from mmrag.settings import Settings


def build_generators(settings: Settings, extractive: Any) -> list[Any]:
    """Answer providers from configuration; the configured one comes first, the extractive answerer is always there."""
    generators: list[Any] = []
    wanted = settings.answer_provider
    if wanted in ("auto", "anthropic") and settings.anthropic_api_key:
        from mmrag.adapters.generators.anthropic_claude import AnthropicGenerator

        generators.append(
            AnthropicGenerator(
                api_key=settings.anthropic_api_key,
                models=settings.list_of(settings.anthropic_models) or None,
                base_url=settings.anthropic_base_url or None,
            )
        )
    if wanted in ("auto", "openai") and settings.openai_base_url:
        from mmrag.adapters.generators.openai_compatible import OpenAICompatibleGenerator

        generators.append(
            OpenAICompatibleGenerator(
                base_url=settings.openai_base_url,
                api_key=settings.openai_api_key or None,
                models=settings.list_of(settings.openai_models) or ["glm-4v-flash"],
                vision_models=settings.list_of(settings.openai_vision_models) or None,
            )
        )
    if wanted == "bedrock" or (wanted == "auto" and settings.bedrock_models):
        from mmrag.adapters.generators.bedrock_converse import BedrockGenerator

        generators.append(
            BedrockGenerator(
                region=settings.bedrock_region or None, models=settings.list_of(settings.bedrock_models) or None
            )
        )
    if wanted not in ("auto", "extractive", "anthropic", "openai", "bedrock"):
        raise ValueError(f"unknown MMRAG_ANSWER_PROVIDER {wanted!r}")
    if wanted in ("anthropic", "openai", "bedrock") and not generators:
        raise ValueError(f"MMRAG_ANSWER_PROVIDER={wanted} but its settings are missing (see the README)")
    generators.append(extractive)
    return generators


def generator_registry(settings: Settings, extractive: Any) -> GeneratorRegistry:
    return GeneratorRegistry(build_generators(settings, extractive), settings.answer_model or None)


def query_image_decoder(settings: Settings, fetch: Callable[[str, int], bytes]) -> Callable[[str], Any]:
    """A query picture from base64 or an http(s) URL (fetched through the SSRF guard), pixel-limited."""

    def decode(value: str) -> Any:
        return decode_image_value(value, fetch, settings.max_upload_bytes, settings.max_image_pixels)

    return decode


def answer_service(c: Any) -> AnswerService:
    """The answer service over a container's search, blobs, sessions, providers and CLIP pair."""
    return AnswerService(
        c.search,
        c.blobs,
        c.sessions,
        c.generators,
        c.decode_query_image,
        lambda img: c.clip.embed_images([img])[0],
    )
