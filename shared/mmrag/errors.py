"""Errors the core raises; the API turns each into the contract's envelope (section 4.2)."""

from __future__ import annotations


class MMRagError(Exception):
    status = 500
    code = "INTERNAL_ERROR"

    def __init__(self, message: str, detail: str | None = None):
        super().__init__(message)
        self.message = message
        self.detail = detail or message


class InvalidParameter(MMRagError):
    status, code = 400, "INVALID_PARAMETER"


class Unauthorized(MMRagError):
    status, code = 401, "UNAUTHORIZED"


class Forbidden(MMRagError):
    status, code = 403, "FORBIDDEN"


class NotFound(MMRagError):
    status, code = 404, "NOT_FOUND"


class Conflict(MMRagError):
    """The resource is in a state that does not allow the request now (e.g. reprocessing a processing document)."""

    status, code = 409, "CONFLICT"


class FileTooLarge(MMRagError):
    status, code = 413, "FILE_TOO_LARGE"


class UnsupportedFormat(MMRagError):
    status, code = 415, "UNSUPPORTED_FORMAT"


class RateLimited(MMRagError):
    status, code = 429, "RATE_LIMIT_EXCEEDED"

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class ServiceUnavailable(MMRagError):
    status, code = 503, "SERVICE_UNAVAILABLE"


class ModelUnavailable(ServiceUnavailable):
    """A model the work needs cannot be loaded (not on disk, no download): requests fail at once with the reason and
    the fix; ingestion jobs wait for the model instead of failing."""


class ProcessingError(Exception):
    """A document cannot be processed (corrupt file, too many pixels...): the job fails with this message."""
