"""`normalize`: one `SourceRow` in, one `Canonical` or `Rejection` out, never an exception.

Checks run in this order, and the first failure is the row's reason:

1. `data` is JSON (else `unrecognized_payload`) and an object (else `unrecognized_payload`);
2. a family recognises it (`registry.detect`, else `unrecognized_payload`) and extracts
   its fields (XML: `payload_too_large`, `unsafe_xml`, `malformed_xml`);
3. the merchant column (`invalid_merchant`, then `invalid_country` for
   `merchant.country`), then XML `MerchID` vs `merchant.id`, compared as trimmed strings
   (`merchant_mismatch`);
4. amount syntax (`invalid_amount`), currency (`invalid_currency`), amount scale against
   the currency's minor unit (`invalid_amount`);
5. `country` (`invalid_country`);
6. every text that is stored must be storable by Postgres (`invalid_text`): the row's
   own texts, merchant id/name, provider, provider_status, and every string anywhere in
   the `data` document (so `raw` can be stored as `jsonb`).

Currency and country code rules are in `codes`, amount rules in `amounts`.

Totality: validation raises the internal `Reject`; anything else escaping (a bug) is
caught by a last-resort handler and turned into `unrecognized_payload` with an
"internal error" detail, so one poisonous row can never stop replication.
"""

from __future__ import annotations

from collections.abc import Callable

from streamer._speedups import hot
from streamer.normalize import amounts, codes, json_payload, registry
from streamer.normalize.errors import Reject, describe
from streamer.normalize.merchant import parse_merchant
from streamer.normalize.records import Canonical, Rejection, SourceRow
from streamer.normalize.text import document_is_storable, first_unstorable, is_storable

INTERNAL_ERROR_PREFIX = "internal error"
_new_tuple = tuple.__new__


def pure_normalize(row: SourceRow) -> Canonical | Rejection:
    """Normalize one source row; total: returns a `Rejection` instead of raising.

    The specification; `normalize` is this or its compiled twin (`streamer._speedups`)."""
    try:
        return _normalize(row)
    except Reject as rejected:
        reason, detail = rejected.reason, rejected.detail
    except Exception as exc:  # last resort: see module docstring
        reason, detail = "unrecognized_payload", f"{INTERNAL_ERROR_PREFIX}: {type(exc).__name__}"
    return Rejection(row.source_id, row.transactional_id, row.merchant, row.data, reason, detail)


def _normalize(row: SourceRow) -> Canonical:
    text = row.data
    try:
        data, exact = json_payload.loads(text)
    except json_payload.InvalidJson:
        raise Reject("unrecognized_payload", "data is not valid JSON") from None
    if not isinstance(data, dict):
        raise Reject("unrecognized_payload", f"data is not a JSON object: {describe(data)}")
    family = registry.detect(data)
    fields = family.extract(data)
    if not exact and json_payload.needs_exact(fields.amount, text):
        try:
            data = json_payload.loads_exact(text)
        except json_payload.InvalidJson:
            raise Reject("unrecognized_payload", "data is not valid JSON") from None
        if not isinstance(data, dict):  # cannot happen: same text, same structure
            raise Reject("unrecognized_payload", "data is not a JSON object")
        fields = family.extract(data)
        exact = True

    merchant_id, merchant_name, merchant_country = parse_merchant(row.merchant)
    ref = fields.merchant_ref
    if ref is not None and ref.strip() != merchant_id.strip():
        raise Reject(
            "merchant_mismatch",
            f"payload merchant {describe(ref)} != merchant.id {describe(merchant_id)}",
        )

    amount = amounts.parse_amount(fields.amount, fields.amount_field)
    currency, minor_unit = codes.parse_currency(fields.currency)
    amounts.check_scale(amount, minor_unit, currency, fields.amount_field)
    country = codes.parse_country(fields.country, "country")

    _check_storable(row, merchant_id, merchant_name, fields.provider, fields.provider_status)
    # `raw` must be storable as text and as jsonb. orjson refuses raw control characters
    # and lone surrogates (literal or escaped), so only a document that needed the stdlib
    # parser, or one with a \u0000 escape, can hold an unstorable string.
    if (exact or "\\u0000" in text) and not (is_storable(text) and document_is_storable(data)):
        raise Reject("invalid_text", "data contains NUL or a lone surrogate")

    # tuple.__new__ skips the namedtuple's Python-level constructor (hot path); the
    # values are in the declared field order.
    return _new_tuple(
        Canonical,
        (
            row.source_id,
            row.transactional_id,
            merchant_id,
            merchant_name,
            merchant_country,
            fields.provider,
            fields.source_format,
            amount[0],
            currency,
            fields.status,
            fields.provider_status,
            country,
            fields.processing_ms,
            text,
            row.created_at,
        ),
    )


def _check_storable(
    row: SourceRow, merchant_id: str, name: str | None, provider: str, status: str | None
) -> None:
    """`invalid_text` unless every stored free text is storable (one scan when it is)."""
    joined = (
        row.source_id
        + row.transactional_id
        + merchant_id
        + (name or "")
        + provider
        + (status or "")
        + (row.created_at or "")
    )
    if is_storable(joined):
        return
    culprit = first_unstorable(
        (
            ("source_id", row.source_id),
            ("transactional_id", row.transactional_id),
            ("merchant.id", merchant_id),
            ("merchant.name", name),
            ("provider", provider),
            ("provider_status", status),
            ("source_created_at", row.created_at),
        )
    )
    raise Reject("invalid_text", f"{culprit} contains NUL or a lone surrogate")


normalize: Callable[[SourceRow], Canonical | Rejection] = pure_normalize
"""`pure_normalize`, or its compiled twin when built (same results: tests/unit/test_speedups.py)."""
if hot is not None:
    hot.bind(pure_normalize)
    normalize = hot.normalize
