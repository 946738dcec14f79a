"""TextractCompleteFunction: Textract completions from SQS -> the rest of the document (mmrag.aws.textract_complete)."""

from mmrag.aws.textract_complete import handler

__all__ = ["handler"]
