"""TextractCompleteFunction: Textract completions from SQS -> the rest of the document
(mmrag.lambda_handlers.textract_complete)."""

from mmrag.lambda_handlers.textract_complete import handler

__all__ = ["handler"]
