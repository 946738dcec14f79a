"""The one container of a Lambda execution environment, built on the first invocation (not at import, so that the
import stays cheap and a misconfiguration shows up as an error response with a log line, not an init crash).

scripts/invoke.py and the tests replace how it is built with `configure(factory)`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

_lock = threading.Lock()
_container: Any = None
_factory: Callable[[], Any] | None = None


def default_factory() -> Any:
    from mmrag.adapters.aws.container import AwsContainer
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
