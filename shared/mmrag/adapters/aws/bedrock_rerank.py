"""Reranking on AWS through Amazon Bedrock's Rerank API (`bedrock-agent-runtime` Rerank), and which reranker names the
AWS backend serves.

`BedrockReranker(model_id)` has the interface the search core's `Rerankers` expects of a cross-encoder: `.name`,
`.load()`, `.health()` and `.score(query, texts) -> list[float]`, one float per text, in order.

Scores. The search core passes what `score()` returns through a sigmoid (a cross-encoder's logits become 0..1).
Bedrock answers with a `relevanceScore` already in 0..1, so `score()` returns its logit, ln(p / (1 - p)): then
sigmoid(score) == relevanceScore (to float rounding, ~1e-16) and the `rerank` score a client sees is Bedrock's own.
p is clamped to [0, 1] first; 0 and 1 become -50 / +50, the ends of the core's sigmoid (≈2e-22 and exactly 1.0).

The request (checked against botocore's service model bedrock-agent-runtime 2023-07-26):
    queries=[{"type": "TEXT", "textQuery": {"text": query}}]                       # exactly one query
    sources=[{"type": "INLINE", "inlineDocumentSource": {"type": "TEXT", "textDocument": {"text": t}}}, ...]
    rerankingConfiguration={"type": "BEDROCK_RERANKING_MODEL", "bedrockRerankingConfiguration": {
        "numberOfResults": len(sources),
        "modelConfiguration": {"modelArn": "arn:aws:bedrock:<region>::foundation-model/<model id>"}}}
The answer lists `results` [{index, relevanceScore}] best first; they are put back in the order of the texts by
`index`. Limits of the API: 1..1000 sources per call (larger inputs go in batches of 1000, which the search never
needs: it reranks at most 100), texts of 1..32,000 characters (longer ones are cut; blank ones are not sent and score
as 0, the API refuses empty text). Pricing counts a "query" per call of up to 100 documents.

Failures (throttling, quotas, access, outages, timeouts, an answer that does not cover every text) raise
`ServiceUnavailable` with the model, the region and Bedrock's code and message; the search core turns any exception
from `score()` into `rerank_error` (fail_strategy "degrade") or a 503 ("error").

IAM: the caller needs `bedrock:Rerank` (no resource-level permissions) and `bedrock:InvokeModel` on the model's
foundation-model ARN; Cohere Rerank 3.5 is a Marketplace model whose access an administrator enables once.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Sequence
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ReadTimeoutError,
)

from mmrag.errors import ServiceUnavailable

log = logging.getLogger(__name__)

SERVICE = "bedrock-agent-runtime"
DEFAULT_MODELS = ("amazon.rerank-v1:0", "cohere.rerank-v3-5:0")
# Where each model is offered (Bedrock user guide, "Supported Regions and models for reranking"); only used to explain
# a refusal, never to refuse a call, so a region added later works without a code change.
KNOWN_REGIONS = {
    "amazon.rerank-v1:0": ("ap-northeast-1", "ca-central-1", "eu-central-1", "us-west-2"),
    "cohere.rerank-v3-5:0": ("ap-northeast-1", "ca-central-1", "eu-central-1", "us-east-1", "us-west-2"),
}
MAX_SOURCES = 1000  # RerankSourcesList max, and numberOfResults max
MAX_TEXT_CHARS = 32_000  # RerankTextDocumentTextString max (query and documents)
LOGIT_LIMIT = 50.0  # the search core's sigmoid clamps its input to +-50

_ACCESS = frozenset(
    {
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "ExpiredToken",
        "InvalidClientTokenId",
        "MissingAuthenticationToken",
    }
)
_THROTTLED = frozenset({"ThrottlingException", "ServiceQuotaExceededException", "TooManyRequestsException"})
_OUTAGE = frozenset(
    {"InternalServerException", "BadGatewayException", "DependencyFailedException", "ServiceUnavailableException"}
)
_REFUSED = frozenset({"ValidationException", "ResourceNotFoundException"})


def default_client(region: str | None = None) -> Any:
    """A client with short timeouts: a rerank call takes well under a second, and the search waits `timeout_ms` for
    it (5 s by default) on one of only two scoring threads, so a stuck call must not outlive a few searches."""
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=3, read_timeout=10, retries={"mode": "standard", "max_attempts": 2})
    return boto3.client(SERVICE, region_name=region or None, config=config)


class LazyClient:
    """One bedrock-agent-runtime client shared by every rerank model, made on first use (no AWS call at start-up)."""

    def __init__(
        self, region: str | None = None, client: Any = None, factory: Callable[[str | None], Any] | None = None
    ):
        self.region = region or None
        self._client = client
        self._factory = factory or default_client
        self._lock = threading.Lock()

    def __call__(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._factory(self.region)
        return self._client


def model_arn(model_id: str, region: str) -> str:
    """The foundation-model ARN the Rerank API wants (a full ARN is passed through)."""
    if model_id.startswith("arn:"):
        return model_id
    if region.startswith("cn-"):
        partition = "aws-cn"
    elif region.startswith("us-gov-"):
        partition = "aws-us-gov"
    else:
        partition = "aws"
    return f"arn:{partition}:bedrock:{region}::foundation-model/{model_id}"


def relevance_to_logit(relevance: float) -> float:
    """ln(p / (1 - p)) of a relevance in 0..1, so that the core's sigmoid gives p back; clamped to +-LOGIT_LIMIT."""
    p = min(max(float(relevance), 0.0), 1.0)
    if p <= 0.0:
        return -LOGIT_LIMIT
    if p >= 1.0:
        return LOGIT_LIMIT
    return min(max(math.log(p) - math.log1p(-p), -LOGIT_LIMIT), LOGIT_LIMIT)


def cut(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    """At most `limit` UTF-16 code units (what a 32,000-character limit counts on the service side), never splitting
    a surrogate pair."""
    if len(text) * 2 <= limit:  # fast path: even all-astral text fits
        return text
    units = 0
    for i, ch in enumerate(text):
        units += 2 if ord(ch) > 0xFFFF else 1
        if units > limit:
            return text[:i]
    return text


class BedrockReranker:
    """One Bedrock rerank model; `client` is a bedrock-agent-runtime client or a LazyClient (shared)."""

    def __init__(self, model_id: str, region: str | None = None, client: Any = None, *, batch_size: int = MAX_SOURCES):
        if not 1 <= batch_size <= MAX_SOURCES:
            raise ValueError(f"batch_size must be 1..{MAX_SOURCES}")
        self.name = model_id
        self.batch_size = batch_size
        self._client = client if client is not None else LazyClient(region)  # region: only to make the client
        self.state = "not loaded"
        self.last_error: str | None = None

    # ------------------------------------------------------------------ the Rerankers interface
    def load(self) -> None:
        """Nothing to load: a probe call would be billed as a query. Access problems show on the first search."""

    def health(self) -> dict[str, Any]:
        out: dict[str, Any] = {"service": "bedrock", "model": self.name, "region": self.region, "state": self.state}
        if self.last_error:
            out["error"] = self.last_error
        return out

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        """Logits of Bedrock's relevance scores, one per text, in the order of `texts` (see the module notes)."""
        relevance = self.relevance(query, texts)
        return [relevance_to_logit(p) for p in relevance]

    # ------------------------------------------------------------------ Bedrock
    @property
    def region(self) -> str:
        """The client's region (the model ARN's), or the region it will be made in."""
        lazy = self._client if isinstance(self._client, LazyClient) else None
        client = lazy._client if lazy is not None else self._client
        if client is not None:
            return str(client.meta.region_name or "")
        return (lazy.region or "") if lazy is not None else ""

    def runtime(self) -> Any:
        return self._client() if isinstance(self._client, LazyClient) else self._client

    def relevance(self, query: str, texts: Sequence[str]) -> list[float]:
        """Bedrock's relevanceScore (0..1) per text, in order; blank texts score 0 and are not sent."""
        scores = [0.0] * len(texts)
        sent = [i for i, t in enumerate(texts) if t and t.strip()]
        if not sent:
            return scores
        query = cut(query or "")
        if not query.strip():
            raise ValueError("Bedrock rerank needs query text (a search by picture alone has nothing to rerank with)")
        runtime = self.runtime()
        for start in range(0, len(sent), self.batch_size):
            batch = sent[start : start + self.batch_size]
            got = self._call(runtime, query, [cut(texts[i]) for i in batch])
            for i, p in zip(batch, got, strict=True):
                scores[i] = p
        self.state, self.last_error = "loaded", None
        return scores

    def request(self, query: str, documents: Sequence[str], region: str) -> dict[str, Any]:
        return {
            "queries": [{"type": "TEXT", "textQuery": {"text": query}}],
            "sources": [
                {"type": "INLINE", "inlineDocumentSource": {"type": "TEXT", "textDocument": {"text": d}}}
                for d in documents
            ],
            "rerankingConfiguration": {
                "type": "BEDROCK_RERANKING_MODEL",
                "bedrockRerankingConfiguration": {
                    "numberOfResults": len(documents),
                    "modelConfiguration": {"modelArn": model_arn(self.name, region)},
                },
            },
        }

    def _call(self, runtime: Any, query: str, documents: list[str]) -> list[float]:
        region = str(runtime.meta.region_name or "")
        params = self.request(query, documents, region)
        found: dict[int, float] = {}
        try:
            # every result fits one answer (numberOfResults = len(documents)); the paginator follows a nextToken anyway
            for page in runtime.get_paginator("rerank").paginate(**params):
                for result in page.get("results") or []:
                    index, value = result.get("index"), result.get("relevanceScore")
                    if not isinstance(index, int) or not 0 <= index < len(documents) or index in found:
                        raise self._bad_answer(region, f"result index {index!r} out of range or repeated")
                    if not isinstance(value, int | float) or not math.isfinite(value):
                        raise self._bad_answer(region, f"relevanceScore {value!r} of result {index}")
                    found[index] = float(value)
        except ParamValidationError:
            raise  # a bug in the request, not an outage
        except (ClientError, BotoCoreError) as err:
            self.state = "error"
            failure = ServiceUnavailable(self._describe(err, region), _detail(err))
            self.last_error = failure.message
            raise failure from err
        if len(found) != len(documents):
            raise self._bad_answer(region, f"{len(found)} results for {len(documents)} documents")
        return [found[i] for i in range(len(documents))]

    def _bad_answer(self, region: str, why: str) -> ServiceUnavailable:
        self.state = "error"
        self.last_error = f"Bedrock rerank {self.name} ({region}): unexpected answer ({why})"
        return ServiceUnavailable(self.last_error)

    def _describe(self, err: Exception, region: str) -> str:
        where = f"{self.name} in {region or 'no region'}"
        if isinstance(err, ClientError):
            error = err.response.get("Error") or {}
            code = str(error.get("Code") or "")
            message = str(error.get("Message") or "").strip()[:300]
            status = (err.response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0
            label = f"({code}{f', HTTP {status}' if status else ''}: {message})"
            if code in _THROTTLED:
                return f"Bedrock is throttling rerank requests for {where}, retry later {label}"
            if code in _ACCESS:
                return (
                    f"Bedrock denied access to {where} {label} - the role needs bedrock:Rerank and "
                    "bedrock:InvokeModel on the model, and the account needs access to the model"
                )
            if code in _OUTAGE or status >= 500:
                return f"Bedrock rerank is unavailable for {where} {label}"
            if code in _REFUSED:
                offered = KNOWN_REGIONS.get(self.name)
                hint = ""
                if offered and region not in offered:
                    hint = f" - {self.name} is offered in {', '.join(offered)} (set MMRAG_BEDROCK_RERANK_REGION)"
                return f"Bedrock refused the rerank request for {where} {label}{hint}"
            return f"Bedrock rerank failed for {where} {label}"
        if isinstance(err, NoCredentialsError | PartialCredentialsError):
            return f"Bedrock rerank ({self.name}) cannot be called: no usable AWS credentials"
        if isinstance(err, NoRegionError):
            return f"Bedrock rerank ({self.name}) cannot be called: no region (set MMRAG_BEDROCK_RERANK_REGION)"
        if isinstance(err, ConnectTimeoutError | ReadTimeoutError):
            return f"Bedrock rerank timed out for {where}"
        if isinstance(err, EndpointConnectionError):
            return f"cannot reach Bedrock rerank for {where}"
        return f"Bedrock rerank failed for {where}: {type(err).__name__}"


def _detail(err: Exception) -> str:
    if isinstance(err, ClientError):
        error = err.response.get("Error") or {}
        return f"{error.get('Code', '')}: {error.get('Message', '')}"[:500]
    return f"{type(err).__name__}: {err}"[:500]


# ---------------------------------------------------------------------------------------------------- names on AWS
def aws_rerankers(
    default: str,
    bedrock_models: Sequence[str],
    sagemaker_name: str,
    sagemaker_reranker: Any,
    client: Any,
) -> Any:
    """The search core's `Rerankers` for the AWS backend. Served names, and nothing else (anything else is 400):
    - every model of `bedrock_models` (MMRAG_BEDROCK_RERANK_MODELS), through the Rerank API (`client`: a
      bedrock-agent-runtime client or a LazyClient);
    - `sagemaker_name` (MMRAG_SAGEMAKER_RERANK_MODEL), the cross-encoder of the SageMaker endpoint, when there is an
      endpoint reranker and the name is not empty.
    The contract's short names resolve first (Rerankers.ALIASES: `ms-marco-minilm` is the SageMaker cross-encoder;
    `bge-reranker-v2` names a model no AWS service here hosts, so it is 400). `default` is what `rerank: true`
    without `rerank_model` uses; a default that is not served fails each rerank with a message (no crash)."""
    from mmrag.core.search import Rerankers

    bedrock = {name: BedrockReranker(name, client=client) for name in bedrock_models}
    served = list(bedrock)
    if sagemaker_reranker is not None and sagemaker_name and sagemaker_name not in bedrock:
        served.append(sagemaker_name)

    def factory(name: str) -> Any:
        if name in bedrock:
            return bedrock[name]
        if name == sagemaker_name and name in served:
            return sagemaker_reranker
        raise ValueError(f"rerank model {name!r} is not served on AWS; served: {', '.join(served) or 'none'}")

    default = Rerankers.ALIASES.get(default, default)
    if default not in served:
        log.error("MMRAG_RERANK_MODEL %r is not served on AWS (served: %s): rerank: true will fail", default, served)
    return Rerankers(default, factory, served)
