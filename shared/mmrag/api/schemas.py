"""Request bodies (pydantic). Field names follow the contract (seeds/003); unknown fields are ignored."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mmrag.core.ranking import DEFAULT_FUSION, DEFAULT_MODALITY_WEIGHTS, FusionStrategy


class DocumentMetadata(BaseModel):
    model_config = ConfigDict(extra="allow")

    title: str | None = None
    source: str | None = None
    tags: list[str] | None = None
    category: str | None = None
    author: str | None = None
    created_at: str | None = None

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        cleaned = [t.strip() for t in v if t.strip()]
        if len(cleaned) > 100:
            raise ValueError("at most 100 tags")
        return list(dict.fromkeys(cleaned))

    @field_validator("created_at")
    @classmethod
    def _date(cls, v: str | None) -> str | None:
        if v is None:
            return v
        from datetime import datetime

        try:
            datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValueError("created_at must be an ISO 8601 date or date-time") from exc
        return v

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class ProcessingOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    extract_images: bool | None = None
    chunk_size: int | None = None
    overlap: int | None = None
    enable_ocr: bool | None = None
    generate_summary: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


DUPLICATES = "the same bytes uploaded again by the same tenant return the earlier document unless this is true"


class UploadRequest(BaseModel):
    document_type: str | None = Field(None, description="text|image|pdf|mixed; taken from the bytes when left out")
    file: str | None = Field(None, description="base64 of the file, or an http(s) URL the server fetches")
    content: str | None = Field(None, description="raw text, instead of file, for document_type 'text'")
    file_name: str | None = Field(None, max_length=1000, description="the file's name (the title when none is given)")
    allow_duplicate: bool = Field(False, description=DUPLICATES)
    metadata: DocumentMetadata = Field(default_factory=DocumentMetadata)
    processing_options: ProcessingOptions = Field(default_factory=ProcessingOptions)


class BatchItem(BaseModel):
    document_type: str | None = None
    file: str | None = None
    content: str | None = None
    file_name: str | None = Field(None, max_length=1000)
    allow_duplicate: bool = False
    metadata: DocumentMetadata = Field(default_factory=DocumentMetadata)
    processing_options: ProcessingOptions | None = None


class BatchUploadRequest(BaseModel):
    documents: list[dict[str, Any]] = Field(..., min_length=1, max_length=100)
    processing_options: ProcessingOptions = Field(default_factory=ProcessingOptions)


class ReprocessRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    processing_options: ProcessingOptions = Field(default_factory=ProcessingOptions)


class MetadataUpdate(BaseModel):
    metadata: DocumentMetadata


class DateRange(BaseModel):
    start: str | None = None
    end: str | None = None


class SearchFiltersIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    document_type: list[str] | str | None = None
    category: str | None = None
    tags: list[str] | None = None
    date_range: DateRange | None = None
    document_ids: list[str] | None = None


class RerankIn(BaseModel):
    """Reranking controls in search_options (as in the sibling API of seeds/002)."""

    rerank: bool = False
    rerank_model: str | None = None
    input_limit: int = Field(20, ge=1, le=100, description="candidates the reranker reads (the first-stage top ones)")
    score_threshold: float | None = Field(None, ge=0, le=1)
    timeout_ms: int = Field(5000, ge=1, le=60000)
    fail_strategy: str = Field("degrade", pattern="^(degrade|error)$")


class TextSearchOptions(RerankIn):
    similarity_threshold: float | None = Field(None, ge=0, le=1)
    include_metadata: bool = True
    include_content: bool = True


class TextSearchRequest(BaseModel):
    query: str = Field(..., min_length=1, max_length=4000)
    top_k: int = Field(10, ge=1, le=100)
    filters: SearchFiltersIn = Field(default_factory=SearchFiltersIn)
    search_options: TextSearchOptions = Field(default_factory=TextSearchOptions)

    @field_validator("query")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("query must not be blank")
        return v


class ImageSearchOptions(BaseModel):
    similarity_threshold: float | None = Field(None, ge=0, le=1)
    include_similar_text: bool = True
    return_image_url: bool = True


class ImageSearchRequest(BaseModel):
    query_type: str = Field(..., pattern="^(image|text)$")
    query_image: str | None = None
    query_text: str | None = Field(None, max_length=4000)
    top_k: int = Field(10, ge=1, le=100)
    filters: SearchFiltersIn = Field(default_factory=SearchFiltersIn)
    search_options: ImageSearchOptions = Field(default_factory=ImageSearchOptions)


class ModalityWeights(BaseModel):
    text: float = Field(DEFAULT_MODALITY_WEIGHTS["text"], ge=0, allow_inf_nan=False)
    image: float = Field(DEFAULT_MODALITY_WEIGHTS["image"], ge=0, allow_inf_nan=False)


class MultimodalOptions(RerankIn):
    fusion_strategy: FusionStrategy = DEFAULT_FUSION
    similarity_threshold: float | None = Field(None, ge=0, le=1)
    group_by_document: bool = False


class MultimodalSearchRequest(BaseModel):
    query_text: str | None = Field(None, max_length=4000)
    query_image: str | None = None
    modality_weights: ModalityWeights = Field(default_factory=ModalityWeights)
    top_k: int = Field(10, ge=1, le=100)
    return_modalities: list[str] = Field(default_factory=lambda: ["text", "image", "mixed"])
    filters: SearchFiltersIn = Field(default_factory=SearchFiltersIn)
    search_options: MultimodalOptions = Field(default_factory=MultimodalOptions)


class SimilarRequest(BaseModel):
    reference_type: str = Field(..., pattern="^(document|chunk|image)$")
    reference_id: str = Field(..., min_length=1)
    top_k: int = Field(5, ge=1, le=100)
    exclude_self: bool = True
    filters: SearchFiltersIn = Field(default_factory=SearchFiltersIn)


class RetrievalConfig(BaseModel):
    top_k: int = Field(5, ge=1, le=50)
    similarity_threshold: float | None = Field(None, ge=0, le=1)
    enable_rerank: bool = False
    search_mode: str = Field("text", pattern="^(text|image|multimodal)$")
    use_history_context: bool = True
    history_weight: float = Field(0.3, ge=0, le=1)


class GenerationConfig(BaseModel):
    model: str | None = None
    temperature: float = Field(0.2, ge=0, le=2)
    max_tokens: int = Field(1024, ge=1, le=8192)
    stream: bool = False


class QaOptions(BaseModel):
    include_sources: bool = True
    include_images: bool = True
    language: str | None = Field(None, pattern="^(en|zh)$")
    save_session: bool = True


class AskRequest(BaseModel):
    question: str = Field(..., max_length=4000)
    question_image: str | None = None
    context_images: list[str] = Field(default_factory=list, max_length=4)
    retrieval_config: RetrievalConfig = Field(default_factory=RetrievalConfig)
    generation_config: GenerationConfig = Field(default_factory=GenerationConfig)
    filters: SearchFiltersIn = Field(default_factory=SearchFiltersIn)
    options: QaOptions = Field(default_factory=QaOptions)

    @field_validator("question")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("question must not be empty")
        return v


class HistoryMessage(BaseModel):
    role: str = Field(..., pattern="^(user|assistant)$")
    content: str = ""
    images: list[str] = Field(default_factory=list)
    sources: list[Any] = Field(default_factory=list)


class ChatRequest(AskRequest):
    session_id: str | None = Field(None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")
    history: list[HistoryMessage] | None = None
