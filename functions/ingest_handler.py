"""IngestFunction (and IngestImageFunction): S3 objects and upload jobs from SQS -> documents (mmrag.aws.ingest)."""

from mmrag.aws.ingest import handler

__all__ = ["handler"]
