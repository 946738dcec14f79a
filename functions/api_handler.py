"""DocumentsFunction, SearchFunction, QaFunction, SessionsFunction: the mmrag API through Mangum
(mmrag.lambda_handlers.api)."""

from mmrag.lambda_handlers.api import handler

__all__ = ["handler"]
