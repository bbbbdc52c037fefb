"""The `merchant` column: a JSON object with `id`, optional `name` and `country`.

Rules (all failures are `invalid_merchant`):

* the text must be a JSON object;
* `id` must be a non-blank string (kept as given, not trimmed) or a finite JSON number
  (stored as its exact JSON text: `123`, `12.50`; booleans are not numbers);
* `name` is a string (stored as given, control characters included) or null/absent;
* `country` is validated like any country (`codes.parse_country`: `invalid_country`).

Parsing is memoized (`functools.lru_cache`): the column repeats the same few merchants
across many rows, and a cache hit costs one string hash instead of a JSON parse.
Rejections raise, so they are never cached.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

from streamer.normalize.codes import parse_country
from streamer.normalize.errors import Reject, describe
from streamer.normalize.json_payload import InvalidJson, loads, loads_exact

Merchant = tuple[str, str | None, str | None]
"""(id, name, alpha-2 country) of a validated merchant column."""

CACHE_SIZE = 4096


def _id_text(value: object) -> str:
    if isinstance(value, str):
        if not value.strip():
            raise Reject("invalid_merchant", "merchant.id is blank")
        return value
    if isinstance(value, bool):
        raise Reject("invalid_merchant", "merchant.id is a boolean")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal) and value.is_finite():
        return str(value)
    if value is None:
        raise Reject("invalid_merchant", "merchant.id is missing or null")
    raise Reject("invalid_merchant", f"merchant.id is not a string or number: {describe(value)}")


@lru_cache(maxsize=CACHE_SIZE)
def parse_merchant(text: str) -> Merchant:
    """Validate the merchant column text; raises `Reject` on any structural problem."""
    try:
        value, exact = loads(text)
        if isinstance(value, dict) and not exact and isinstance(value.get("id"), float):
            value = loads_exact(text)  # a float id must be kept as its exact literal
    except InvalidJson:
        raise Reject("invalid_merchant", "merchant is not valid JSON") from None
    if not isinstance(value, dict):
        raise Reject("invalid_merchant", f"merchant is not a JSON object: {describe(value)}")
    name = value.get("name")
    if name is not None and not isinstance(name, str):
        raise Reject("invalid_merchant", f"merchant.name is not a string: {describe(name)}")
    merchant_id = _id_text(value.get("id"))
    return merchant_id, name, parse_country(value.get("country"), "merchant.country")
