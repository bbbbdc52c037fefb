"""What a payload family hands back, and the field readers JSON families share.

A family module only *locates* values (`Extracted`); validation that is the same for
every family (amount, currency, country, merchant, storable text) happens once, in
`pipeline`. Adding a provider therefore means writing an `extract` function and
declaring how the family is recognised (`Family`), nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any, Final, NamedTuple

from streamer.normalize.errors import Reject, describe

JsonObject = dict[str, Any]

UNKNOWN_PROVIDER: Final = "unknown"
INT32_MAX: Final = 2**31 - 1


class Extracted(NamedTuple):
    """Values located in one payload; raw where `pipeline` still has to validate them."""

    provider: str
    source_format: str
    amount: object
    amount_field: str
    currency: object
    status: str
    provider_status: str | None
    country: object
    processing_ms: int | None
    merchant_ref: str | None
    """The merchant id the payload itself names (XML `MerchID`), checked against the
    merchant column; None when the payload names none."""


class Family(NamedTuple):
    """One payload family, as listed in `registry.FAMILIES`.

    `claims` recognises the family for sure (its discriminator or amount key is present);
    `markers` are weaker keys used only when no family claims the payload, so a payload
    that is clearly of a family but lacks its amount is rejected as `invalid_amount`
    instead of `unrecognized_payload`.
    """

    name: str
    claims: Callable[[JsonObject], bool]
    markers: frozenset[str]
    extract: Callable[[JsonObject], Extracted]


def provider_of(data: JsonObject) -> str:
    """`provider`, else `p_id`, trimmed and lower-cased; `unknown` when neither is given.

    A non-string provider is `unrecognized_payload`: we cannot tell whose payload it is.
    """
    value = data.get("provider")
    if value is None:
        value = data.get("p_id")
        if value is None:
            return UNKNOWN_PROVIDER
    if not isinstance(value, str):
        raise Reject("unrecognized_payload", f"provider is not a string: {describe(value)}")
    return normalize_provider(value)


def normalize_provider(value: str) -> str:
    """Trimmed, lower-cased provider name; blank means `unknown`."""
    return value.strip().lower() or UNKNOWN_PROVIDER


def status_text(value: object) -> str | None:
    """`provider_status` as stored: strings as given, numbers as `str(number)`,
    anything else (null, booleans, objects, arrays) as None."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | Decimal):
        return str(value)
    return None


def processing_ms(value: object) -> int | None:
    """A timing in ms: non-negative, integral and within int32, else None.

    A bad timing never rejects a row: it is diagnostic data, not money. Plain decimal
    digits in a string count too (CSV cells are text: `"402"` is 402).
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        if not (0 < len(text) <= 10 and text.isascii() and text.isdigit()):
            return None
        number = int(text)
        return number if number <= INT32_MAX else None
    if isinstance(value, int):
        return value if 0 <= value <= INT32_MAX else None
    if isinstance(value, float):
        return int(value) if 0 <= value <= INT32_MAX and value.is_integer() else None
    if (
        isinstance(value, Decimal)
        and value.is_finite()  # NaN would signal InvalidOperation in the comparisons
        and 0 <= value <= INT32_MAX
        and value == value.to_integral_value()
    ):
        return int(value)
    return None
