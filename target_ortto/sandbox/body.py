"""Reading a request body's options, and refusing the whole request when one is wrong."""

from __future__ import annotations

from typing import Any

from .fields import is_int

MAX_BATCH = 100


class ApiError(Exception):
    """A request Ortto refuses as a whole (HTTP 4xx), with Ortto's message."""

    def __init__(
        self, message: str, status: int = 400, details: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.details = details


def int_option(body: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = body.get(key, default)
    if not is_int(value) or not low <= value <= high:
        raise ApiError(f"{key} must be an integer from {low} to {high}")
    return value


def choice(body: dict[str, Any], key: str, allowed: tuple[int, ...], default: int) -> int:
    value = body.get(key, default)
    if not is_int(value) or value not in allowed:
        raise ApiError(f"{key} must be one of {', '.join(map(str, allowed))}")
    return value


def flag(body: dict[str, Any], key: str) -> bool:
    value = body.get(key, False)
    if not isinstance(value, bool):
        raise ApiError(f"{key} must be a boolean")
    return value


def batch(body: dict[str, Any], key: str) -> list[Any]:
    items = body.get(key)
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH:
        raise ApiError(f"{key} must be an array of 1 to {MAX_BATCH} items")
    return items
