"""AuthorizerFunction: the API Gateway REQUEST authorizer (mmrag.aws.authorizer)."""

from mmrag.aws.authorizer import handler

__all__ = ["handler"]
