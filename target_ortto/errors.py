"""Errors whose messages tell the user what happened and what to do.

Every error the target raises on purpose is an `OrttoError`: the CLI prints its
message without a traceback and exits non-zero.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit


class OrttoError(Exception):
    """An error with a message meant for the person running the pipeline."""


class ConfigError(OrttoError):
    """The settings are wrong (found at start, or at the SCHEMA of the stream they concern)."""


class InputError(OrttoError):
    """A line of the tap's output is not a Singer message target-ortto can read."""


class StreamError(OrttoError):
    """A stream cannot be loaded as declared (routing, schema, mapping)."""


class InvalidRecordError(OrttoError):
    """A record could not be written and `on_invalid_record` is `fail`."""


class ApiError(OrttoError):
    """Ortto refused a request, or could not be reached after every retry.

    `status` is Ortto's HTTP status when it answered one."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AuthError(ApiError):
    """Ortto rejected the API key (wrong key, or a key of another region)."""


def shown_url(url: object) -> str:
    """A URL as messages may show it: a `user:password@` in it replaced."""
    text = str(url)
    parts = urlsplit(text)
    if "@" not in parts.netloc:
        return text
    return parts._replace(netloc="[REDACTED]@" + parts.netloc.rsplit("@", 1)[1]).geturl()


def key_pattern(secret: str) -> re.Pattern[str]:
    """Where `secret` stands on its own in text or a JSON line: as written and as JSON
    escapes it, never inside a longer word (a one-letter key must not turn `method` into
    `m[REDACTED]thod`). Replace its matches with `[REDACTED]` and no token is the key."""
    forms = {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    alternatives = "|".join(re.escape(form) for form in sorted(forms, key=len, reverse=True))
    return re.compile(rf"(?<![\w-])(?:{alternatives})(?![\w-])")


def key_bytes_pattern(secret: str) -> re.Pattern[bytes]:
    """`key_pattern` for an answer's raw bytes (UTF-8)."""
    return re.compile(key_pattern(secret).pattern.encode())
