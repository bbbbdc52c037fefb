"""The internal rejection signal and the helper that renders offending values in details.

Validation code deep inside the normalizer raises `Reject`; only `pipeline.normalize`
catches it and turns it into a `Rejection` row. Raising keeps the happy path free of
result-type checks at every step, and the cost is paid only by rejected rows.
"""

from __future__ import annotations

from decimal import Decimal

MAX_ECHO = 100
"""Longest slice of an offending value copied into a rejection detail."""


class Reject(Exception):
    """Abort normalization of one row with a reason from `REJECTION_REASONS`."""

    __slots__ = ("detail", "reason")

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail


def describe(value: object) -> str:
    """Short, bounded rendering of a JSON value for a detail text.

    Containers are named, not printed: they can be large or deeply nested (repr of a
    1000-level list could itself recurse too deep).
    """
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        if len(value) > MAX_ECHO:
            return repr(value[:MAX_ECHO]) + "..."
        return repr(value)
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, int | float | Decimal):
        text = str(value)
        return text if len(text) <= MAX_ECHO else text[:MAX_ECHO] + "..."
    return f"a {type(value).__name__}"
