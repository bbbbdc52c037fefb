"""PayU-like JSON payloads: `provider`, `status`, `origin_iso`, and the amount inside
`amount_details` (`value`, `currency`).

`amount_details` must be an object (else `invalid_amount`); a currency inside it wins
over a top-level `currency`. Status is the generic rule (leading ISO 8583 code, then the
word table). Stripe-shape keys are read as fallbacks (`server_txt`, `card_country`,
`exec_ms`), so a payload mixing the two shapes keeps its information.
"""

from __future__ import annotations

from typing import Final

from streamer.normalize import status
from streamer.normalize.errors import Reject, describe
from streamer.normalize.fields import (
    Extracted,
    Family,
    JsonObject,
    processing_ms,
    provider_of,
    status_text,
)

_AMOUNT_FIELD: Final = "amount_details.value"


def claims(data: JsonObject) -> bool:
    """PayU-like for sure: the `amount_details` key is present."""
    return "amount_details" in data


def extract(data: JsonObject) -> Extracted:
    """Locate the PayU-like fields; validation happens in `pipeline`."""
    details = data.get("amount_details")
    if details is None:
        amount: object = None
        currency = data.get("currency")
    elif isinstance(details, dict):
        amount = details.get("value")
        currency = details.get("currency")
        if currency is None:
            currency = data.get("currency")
    else:
        raise Reject("invalid_amount", f"amount_details is not an object: {describe(details)}")
    # Hot path: fallbacks are inlined rather than looped over.
    provider_status = data.get("status")
    if provider_status is None:
        provider_status = data.get("server_txt")
    if not isinstance(provider_status, str):
        provider_status = status_text(provider_status)
    country = data.get("origin_iso")
    if country is None:
        country = data.get("card_country")
    return Extracted(  # positional: about twice as fast as keywords, field order as declared
        provider_of(data),
        "json",
        amount,
        _AMOUNT_FIELD,
        currency,
        status.classify(provider_status),
        provider_status,
        country,
        processing_ms(data.get("exec_ms")),
        None,
    )


FAMILY: Final = Family(
    name="payu",
    claims=claims,
    markers=frozenset({"provider", "status", "origin_iso"}),
    extract=extract,
)
