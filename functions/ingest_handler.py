"""IngestFunction (and IngestImageFunction): S3 objects and upload jobs from SQS -> documents
(mmrag.lambda_handlers.ingest)."""

from mmrag.lambda_handlers.ingest import handler

__all__ = ["handler"]
