"""The one container of a Lambda execution environment, built on the first invocation (not at import, so that the
import stays cheap and a misconfiguration shows up as an error response with a log line, not an init crash).

mmrag_dev's sandbox (`make invoke`) and the tests replace how it is built with `configure(factory)`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

_lock = threading.Lock()
_container: Any = None
_factory: Callable[[], Any] | None = None


def default_factory() -> Any:
    from mmrag.composition.aws import AwsContainer
    from mmrag.settings import Settings

    return AwsContainer(Settings())


def configure(factory: Callable[[], Any] | None) -> None:
    """Use `factory` to build the container from now on (None: the default); drops the current one."""
    global _factory, _container
    with _lock:
        _factory = factory
        _container = None


def reset() -> None:
    """Forget the built container (the next invocation builds a new one)."""
    global _container
    with _lock:
        _container = None


def container() -> Any:
    global _container
    if _container is None:
        with _lock:
            if _container is None:
                _container = (_factory or default_factory)()
    return _container


IDEMPOTENCY_TTL_S = 7 * 24 * 3600
_idempotency: dict[str | None, Any] = {}


class Idempotency:
    """Powertools idempotency on the container's table: one config per event key path (the handler registers the
    Lambda context on it) and the functions it wraps, each wrapped once."""

    def __init__(self, container: Any, key_path: str | None = None):
        from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig

        self.container = container
        self.persistence = DynamoDBPersistenceLayer(
            table_name=container.config.idempotency_table, boto3_client=container.client("dynamodb")
        )
        extra = {"event_key_jmespath": key_path} if key_path else {}
        self.config = IdempotencyConfig(
            expires_after_seconds=IDEMPOTENCY_TTL_S, raise_on_no_idempotency_key=True, **extra
        )
        self._wrapped: dict[Callable[..., Any], Callable[..., Any]] = {}

    def wrap(self, fn: Callable[..., Any], keyword: str) -> Callable[..., Any]:
        if fn not in self._wrapped:
            from aws_lambda_powertools.utilities.idempotency import idempotent_function

            decorate = idempotent_function(
                data_keyword_argument=keyword, persistence_store=self.persistence, config=self.config
            )
            self._wrapped[fn] = decorate(fn)
        return self._wrapped[fn]


def idempotency(key_path: str | None = None) -> Idempotency:
    """The Idempotency of the current container (rebuilt when the container is)."""
    current = container()
    idem = _idempotency.get(key_path)
    if idem is None or idem.container is not current:
        idem = _idempotency[key_path] = Idempotency(current, key_path)
    return idem
