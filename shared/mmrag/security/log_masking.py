"""Keeps credentials out of log lines: the signature of a signed URL (ours or S3's) and a Bearer key. uvicorn's access
log prints each request's path with its query string, so a signed picture URL would otherwise be replayable by
anyone who reads the log."""

from __future__ import annotations

import logging
import re

_SECRET_QUERY = re.compile(r"(?i)([?&](?:sig|x-amz-signature|x-amz-credential|x-amz-security-token)=)[^&\s\"']*")
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s\"',;]+")
MASK = "***"

# the loggers that print request lines
LOGGERS = ("uvicorn.access", "uvicorn.error")


def mask(text: str) -> str:
    return _BEARER.sub(rf"\g<1>{MASK}", _SECRET_QUERY.sub(rf"\g<1>{MASK}", text))


class MaskSecrets(logging.Filter):
    """Masks the record's message and its string arguments before any handler formats them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = mask(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(mask(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: mask(v) if isinstance(v, str) else v for k, v in record.args.items()}
        return True


def install(loggers: tuple[str, ...] = LOGGERS) -> None:
    """Idempotent. A filter on the logger itself survives uvicorn's logging.config.dictConfig, which replaces the
    handlers of the loggers it configures but keeps their filters."""
    for name in loggers:
        logger = logging.getLogger(name)
        if not any(isinstance(f, MaskSecrets) for f in logger.filters):
            logger.addFilter(MaskSecrets())
