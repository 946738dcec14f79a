"""DocumentsFunction, SearchFunction, QaFunction, SessionsFunction: the mmrag API through Mangum (mmrag.aws.api)."""

from mmrag.aws.api import handler

__all__ = ["handler"]
