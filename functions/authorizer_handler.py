"""AuthorizerFunction: the API Gateway REQUEST authorizer (mmrag.lambda_handlers.authorizer)."""

from mmrag.lambda_handlers.authorizer import handler

__all__ = ["handler"]
