"""The DynamoDB calls every store makes the same way, through the low-level client: batched writes and strongly
consistent batched reads that retry what DynamoDB hands back unprocessed, paginated queries, aliased projections."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from mmrag.adapters.aws.dynamo_codec import Item, decode_item, encode_item

BATCH_WRITE = 25  # BatchWriteItem maximum
BATCH_GET = 100  # BatchGetItem maximum
_RETRIES = 8


def _backoff(attempt: int) -> None:
    if attempt >= _RETRIES:
        raise RuntimeError("DynamoDB kept returning unprocessed items; giving up")
    time.sleep(min(0.05 * 2**attempt, 2.0))


def batch_write(client: Any, table: str, requests: Sequence[dict[str, Any]]) -> None:
    """PutRequest / DeleteRequest dicts, 25 per call, retrying whatever DynamoDB hands back unprocessed."""
    for i in range(0, len(requests), BATCH_WRITE):
        pending = list(requests[i : i + BATCH_WRITE])
        attempt = 0
        while pending:
            resp = client.batch_write_item(RequestItems={table: pending})
            pending = resp.get("UnprocessedItems", {}).get(table, [])
            if pending:
                _backoff(attempt)
                attempt += 1


def put_requests(items: Iterable[Item]) -> list[dict[str, Any]]:
    return [{"PutRequest": {"Item": encode_item(item)}} for item in items]


def delete_requests(keys: Iterable[Item]) -> list[dict[str, Any]]:
    return [{"DeleteRequest": {"Key": encode_item(key)}} for key in keys]


def batch_get(client: Any, table: str, keys: Sequence[Item], attributes: Sequence[str] = ()) -> list[Item]:
    """Strongly consistent reads, 100 keys per call, retrying unprocessed keys. Order is not kept."""
    out: list[Item] = []
    unique = list({json.dumps(k, sort_keys=True): k for k in keys}.values())  # duplicates are a ValidationError
    for i in range(0, len(unique), BATCH_GET):
        request: dict[str, Any] = {"Keys": [encode_item(k) for k in unique[i : i + BATCH_GET]], "ConsistentRead": True}
        if attributes:
            request["ProjectionExpression"], request["ExpressionAttributeNames"] = projection(attributes)
        attempt = 0
        while request["Keys"]:
            resp = client.batch_get_item(RequestItems={table: request})
            out.extend(decode_item(raw) for raw in resp.get("Responses", {}).get(table, []))
            request = resp.get("UnprocessedKeys", {}).get(table) or {"Keys": []}
            if request["Keys"]:
                _backoff(attempt)
                attempt += 1
    return out


def query_all(client: Any, **kwargs: Any) -> Iterator[Item]:
    """Every item of a Query, following LastEvaluatedKey."""
    for page in client.get_paginator("query").paginate(**kwargs):
        for raw in page.get("Items", []):
            yield decode_item(raw)


def projection(attributes: Sequence[str]) -> tuple[str, dict[str, str]]:
    """A ProjectionExpression with every name aliased, so reserved words (status, source, position ...) are safe."""
    names = {f"#p{i}": a for i, a in enumerate(attributes)}
    return ", ".join(names), names
