"""AuthorizerFunction: the API Gateway (REST) Lambda REQUEST authorizer.

Identity sources (template.yaml): the Authorization header plus the route ($context.resourcePath and httpMethod), so
API Gateway caches one answer per key and route for the cache TTL, and a cached answer always carries the right
rate-limit class.

- `Authorization: Bearer <key>` -> SHA-256 -> DynamoKeyStore.find_by_hash (a strongly consistent GetItem; keys are
  stored hashed, never in clear). Bootstrap keys from MMRAG_API_KEYS are accepted too (tests, first deployment).
- A known, not revoked key: an IAM policy that allows every method of this API stage, the context
  {tenant, key_id, endpoint_class} the integrations read (mmrag.adapters.aws.identity), and `usageIdentifierKey`: the
  API
  Gateway API key of this mmrag key and the route's endpoint class, whose usage plan enforces that class's limits
  (API key source AUTHORIZER).
- A missing, malformed, unknown or revoked key: `raise Exception("Unauthorized")`, which API Gateway answers with
  401 (the UNAUTHORIZED gateway response renders the contract's error envelope). A known key on a route this table
  does not know gets an explicit Deny (403).
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from mmrag.adapters.aws.api_routes import find, usage_key_value
from mmrag.core.api_keys import hash_api_key

logger = Logger()
metrics = Metrics()

UNAUTHORIZED = "Unauthorized"  # the exact message API Gateway turns into a 401

_key_store: Any = None


def key_store() -> Any:
    global _key_store
    if _key_store is None:
        from mmrag.adapters.aws.dynamo_keys import DynamoKeyStore

        _key_store = DynamoKeyStore(os.environ.get("MMRAG_API_KEYS_TABLE", "mmrag-api-keys"))
    return _key_store


def set_key_store(store: Any) -> None:
    """Tests and mmrag_dev's sandbox: use this key store instead of the one from the environment."""
    global _key_store
    _key_store = store


@lru_cache(maxsize=4)
def _bootstrap_from(raw: str) -> dict[str, str]:
    """MMRAG_API_KEYS ('key=tenant,key2=tenant2') by key hash; parsed here to keep pydantic out of this function."""
    out: dict[str, str] = {}
    for part in raw.split(","):
        key, sep, tenant = part.strip().partition("=")
        if sep and key.strip() and tenant.strip():
            out[hash_api_key(key.strip())] = tenant.strip()
    return out


def _bootstrap() -> dict[str, str]:
    return _bootstrap_from(os.environ.get("MMRAG_API_KEYS", ""))


def bearer_token(event: dict[str, Any]) -> str | None:
    headers = event.get("headers") or {}
    value = next((v for k, v in headers.items() if k.lower() == "authorization"), None)
    if not isinstance(value, str):
        return None
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 512:
        return None
    return token


def tenant_for_hash(key_hash: str) -> str | None:
    bootstrap = _bootstrap()
    if key_hash in bootstrap:
        return bootstrap[key_hash]
    record = key_store().find_by_hash(key_hash)
    if record is None or record.revoked:
        return None
    return record.tenant


def stage_arn(method_arn: str) -> str:
    """arn:aws:execute-api:REGION:ACCOUNT:API/STAGE/METHOD/path -> arn:aws:execute-api:REGION:ACCOUNT:API/STAGE/*"""
    prefix, _, rest = method_arn.partition(":execute-api:")
    parts = rest.split("/")
    if not prefix or len(parts) < 2:
        raise ValueError(f"not an execute-api method ARN: {method_arn!r}")
    return f"{prefix}:execute-api:{parts[0]}/{parts[1]}/*"


def policy(principal: str, effect: str, resource: str, **extra: Any) -> dict[str, Any]:
    return {
        "principalId": principal,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}],
        },
        **extra,
    }


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics(raise_on_empty_metrics=False)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    token = bearer_token(event)
    if token is None:
        metrics.add_metric(name="AuthorizerMissingKey", unit=MetricUnit.Count, value=1)
        raise Exception(UNAUTHORIZED)  # noqa: TRY002 - API Gateway matches this exact message
    key_hash = hash_api_key(token)
    key_id = key_hash[:16]  # the same id mmrag.api.deps derives from the key
    tenant = tenant_for_hash(key_hash)
    if tenant is None:
        logger.info("unknown or revoked API key", extra={"key_id": key_id})
        metrics.add_metric(name="AuthorizerDenied", unit=MetricUnit.Count, value=1)
        raise Exception(UNAUTHORIZED)  # noqa: TRY002
    route = find(str(event.get("httpMethod", "")), str(event.get("resource", "")))
    if route is None or route.endpoint_class is None:
        logger.warning("no rate-limit class for this route", extra={"resource": event.get("resource")})
        return policy(key_id, "Deny", event["methodArn"])
    logger.append_keys(tenant=tenant, key_id=key_id, endpoint_class=route.endpoint_class)
    return policy(
        key_id,
        "Allow",
        stage_arn(event["methodArn"]),
        context={"tenant": tenant, "key_id": key_id, "endpoint_class": route.endpoint_class},
        usageIdentifierKey=usage_key_value(key_hash, route.endpoint_class),
    )
