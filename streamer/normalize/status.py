"""Mapping of provider status texts onto the canonical `STATUSES`.

Rules, in order:

1. A leading ISO 8583 response code decides: exactly two ASCII digits at the start,
   followed by the end of the text or a separator (`_`, space, `-`). Codes 00, 08, 10, 11
   are approved, 91 and 96 are error, any other code is declined.
2. Otherwise the whole text is looked up in the word table, case-insensitively, with
   spaces and hyphens read as underscores ("in progress" == "IN_PROGRESS").
3. Otherwise the status is `unknown` (the row is still accepted).

Surrounding white space is ignored for classification; callers keep the original text as
`provider_status`. Family-specific signals (Stripe's `st_code`) are combined by the family
module, which calls `leading_code` and `from_word` separately.
"""

from __future__ import annotations

from typing import Final

UNKNOWN: Final = "unknown"

_WORDS: Final = {
    "approved": (
        *("APPROVED", "SUCCESS", "SUCCEEDED", "AUTHORIZED"),
        *("AUTHORISED", "CAPTURED", "PAID", "COMPLETED"),
    ),
    "declined": ("DECLINED", "REJECTED", "DENIED", "REFUSED"),
    "pending": ("PENDING", "PROCESSING", "IN_PROGRESS", "CREATED"),
    "error": ("ERROR", "TIMEOUT"),
    "refunded": ("REFUNDED", "PARTIALLY_REFUNDED"),
    "cancelled": ("CANCELLED", "CANCELED", "VOIDED", "VOID"),
}

_APPROVED_CODES: Final = frozenset({"00", "08", "10", "11"})
_ERROR_CODES: Final = frozenset({"91", "96"})


def _code_status(code: str) -> str:
    if code in _APPROVED_CODES:
        return "approved"
    return "error" if code in _ERROR_CODES else "declined"


_CODES: Final = {f"{n:02d}": _code_status(f"{n:02d}") for n in range(100)}
"""Status of every two-digit ISO 8583 response code."""
_CODE_SEPARATORS: Final = frozenset("_ -")


def _build_word_table() -> dict[str, str]:
    """Canonical keys plus the spellings seen in practice, so most lookups need no
    normalization at all (one dict probe on the text as given)."""
    table: dict[str, str] = {}
    for status, words in _WORDS.items():
        for word in words:
            for variant in {word, word.replace("_", " "), word.replace("_", "-")}:
                for spelling in (variant, variant.lower(), variant.capitalize(), variant.title()):
                    table[spelling] = status
    return table


_WORD_TABLE: Final = _build_word_table()


def leading_code(text: str) -> str | None:
    """Status decided by a leading ISO 8583 response code, or None if there is none."""
    status = _CODES.get(text[:2])
    if status is None:
        if not text[:1].isspace():
            return None
        text = text.strip()
        status = _CODES.get(text[:2])
        if status is None:
            return None
    if len(text) > 2 and text[2] not in _CODE_SEPARATORS:
        return None
    return status


def from_word(text: str) -> str | None:
    """Status for a plain status word, or None if the word is not in the table."""
    status = _WORD_TABLE.get(text)
    if status is not None:
        return status
    text = text.strip()
    if not text.isascii():  # keeps Unicode case-mapping tricks (long s: "\u017fuccess") out
        return None
    return _WORD_TABLE.get(text.upper().replace(" ", "_").replace("-", "_"))


def classify(text: str | None) -> str:
    """Canonical status of a provider status text: leading code, then word, else unknown."""
    if text is None:
        return UNKNOWN
    return leading_code(text) or from_word(text) or UNKNOWN
