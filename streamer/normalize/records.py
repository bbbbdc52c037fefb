"""Record types that cross the normalizer boundary (pure: no I/O imports)."""

from __future__ import annotations

from decimal import Decimal
from typing import Final, NamedTuple


class SourceRow(NamedTuple):
    """One inserted `raw_transactions` row, as decoded from pgoutput text format.

    JSON columns stay as the JSON text Postgres sent, so `raw` can be stored as received
    and parsing happens once, inside the normalizer.
    """

    source_id: str
    transactional_id: str
    data: str
    merchant: str
    created_at: str | None


class Canonical(NamedTuple):
    """A normalized transaction; field order is the target COPY column order."""

    source_id: str
    transactional_id: str
    merchant_id: str
    merchant_name: str | None
    merchant_country: str | None
    provider: str
    source_format: str
    amount: Decimal
    currency: str | None
    status: str
    provider_status: str | None
    country: str | None
    processing_ms: int | None
    raw: str
    source_created_at: str | None


class Rejection(NamedTuple):
    """A row that cannot be normalized; field order is the rejected-table COPY order."""

    source_id: str
    transactional_id: str
    merchant: str
    raw: str
    reason: str
    detail: str


REJECTION_REASONS: Final = frozenset(
    {
        "invalid_amount",
        "invalid_currency",
        "invalid_country",
        "invalid_merchant",
        "merchant_mismatch",
        "unsafe_xml",
        "malformed_xml",
        "payload_too_large",
        "unrecognized_payload",
        "invalid_text",
        "malformed_record",
        "target_refused",
    }
)
"""Every reason a row can be rejected with; `target_refused` is set by the sink when the
target database refuses a row (constraint added by an operator), never by the normalizer;
`malformed_record` is set by the file source for a line or row that cannot be parsed."""

STATUSES: Final = frozenset(
    {"approved", "declined", "pending", "error", "refunded", "cancelled", "unknown"}
)
