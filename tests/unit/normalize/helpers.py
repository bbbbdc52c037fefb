"""Row builders shared by the normalizer tests."""

from __future__ import annotations

import json

from streamer.normalize import Canonical, Rejection, SourceRow, normalize

MERCHANT_ID = "06cbe458-8bfd-408b-81d4-215a5b1b4594"
MERCHANT = {"id": MERCHANT_ID, "name": "Falabella", "country": "CO"}
XML_MERCHANT_ID = "2040ca76-48fa-4daa-b29d-2ebb956fd1ee"
XML_MERCHANT = {"id": XML_MERCHANT_ID, "name": "Shopito", "country": "PE"}

STRIPE = {
    "amt": 25.84,
    "p_id": "Stripe",
    "exec_ms": 402,
    "st_code": 1,
    "server_txt": "00_SUCCESS",
    "card_country": "ES",
}
PAYU = {
    "status": "APPROVED",
    "provider": "PayU",
    "origin_iso": "AR",
    "amount_details": {"value": 422.45, "currency": "USD"},
}
XML_CONTENT = (
    f"<Tx><MerchID>{XML_MERCHANT_ID}</MerchID><Org>CL</Org>"
    "<Val>129.97</Val><Stat>APPROVED</Stat></Tx>"
)


def as_text(value: object) -> str:
    """JSON text as Postgres jsonb prints it (`", "` and `": "` separators); strings are
    taken as already-encoded JSON text, and top-level keys whose value is `...` are left
    out (so tests can say "this key is absent")."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        value = {key: item for key, item in value.items() if item is not ...}
    return json.dumps(value)


def make_row(data: object, merchant: object = MERCHANT, created_at: str | None = None) -> SourceRow:
    return SourceRow("src-1", "tx-1", as_text(data), as_text(merchant), created_at)


def xml(content: str) -> dict[str, str]:
    return {"type": "XML_BLOB", "content": content}


def accepted(data: object, merchant: object = MERCHANT, created_at: str | None = None) -> Canonical:
    result = normalize(make_row(data, merchant, created_at))
    assert isinstance(result, Canonical), result
    return result


def rejected(data: object, merchant: object = MERCHANT, created_at: str | None = None) -> Rejection:
    result = normalize(make_row(data, merchant, created_at))
    assert isinstance(result, Rejection), result
    assert not result.detail.startswith("internal error"), result
    return result


def reason(data: object, merchant: object = MERCHANT, created_at: str | None = None) -> str:
    return rejected(data, merchant, created_at).reason


def stripe(**changes: object) -> dict[str, object]:
    """The Stripe seed payload with keys replaced (or removed when given `...`)."""
    payload = dict(STRIPE, **changes)
    return {key: value for key, value in payload.items() if value is not ...}


def payu(**changes: object) -> dict[str, object]:
    """The PayU seed payload with keys replaced (or removed when given `...`)."""
    payload = dict(PAYU, **changes)
    return {key: value for key, value in payload.items() if value is not ...}
