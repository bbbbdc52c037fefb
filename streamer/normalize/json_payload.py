"""JSON text parsing with an orjson fast path and an exact (Decimal) slow path.

Why two parsers: orjson is several times faster than `json`, but it decodes every
non-integer number to a float (and integers beyond 64 bits to floats too), so an amount
literal such as `0.10000000000000000555` silently becomes 0.1. Amounts must be exact.

How exactness is guaranteed:

* `loads` tries orjson; if orjson refuses the text (NaN tokens, lone-surrogate escapes,
  nesting deeper than 1024, infinite numbers, ...) it falls back to `loads_exact`.
* `loads_exact` is stdlib `json` with `parse_float=Decimal`, integers of more than 18
  characters as `Decimal` (so a 5,000-digit literal never meets Python's int-string
  limit), and NaN/Infinity tokens as Decimal NaN/Infinity (rejected later as amounts).
* After orjson, `needs_exact` decides whether the amount value can be trusted.
  A float equals its literal when the literal has at most 15 significant digits (two
  distinct such decimals always map to distinct doubles, so `repr` gives the literal
  back). Checking the float's *repr* is not enough: `0.10000000000000000555` parses to
  the double whose repr is `0.1`. So the *text* is checked: a literal with 16 or more
  significant digits contains a run of at least 16 characters from `0-9.`; we count
  digits/dots in the whole text with one C-level `bytes.translate` and run the regex
  only if there are 16 or more. A zero amount is always re-checked as well (orjson
  loses the sign of `-0` and underflows `1e-400` to 0.0). If any check fires, the whole
  document is re-parsed with `loads_exact`.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Final

import orjson

_LONG_INT_CHARS: Final = 18


class InvalidJson(ValueError):
    """The text is not a JSON document both parsers accept."""


def _parse_int(text: str) -> int | Decimal:
    """Small integers stay `int` (cheap, hashable ids); long ones become `Decimal`, and so
    does `-0`, whose sign an `int` would lose."""
    if len(text) <= _LONG_INT_CHARS and text != "-0":
        return int(text)
    return Decimal(text)


def _parse_constant(name: str) -> Decimal:
    """NaN/Infinity tokens survive parsing so an amount can be rejected as `invalid_amount`."""
    return Decimal(name)


_EXACT_DECODER: Final = json.JSONDecoder(
    parse_float=Decimal, parse_int=_parse_int, parse_constant=_parse_constant
)


def loads(text: str) -> tuple[object, bool]:
    """Parse `text`; returns (value, exact) where exact means no float can be present."""
    try:
        return orjson.loads(text), False
    except orjson.JSONDecodeError:
        return loads_exact(text), True


def loads_exact(text: str) -> object:
    """Parse `text` with every non-integer number (and every long integer) as `Decimal`."""
    try:
        return _EXACT_DECODER.decode(text)
    except (ValueError, TypeError, RecursionError) as exc:
        raise InvalidJson(f"invalid JSON: {type(exc).__name__}") from None


_NUMBER_CHARS: Final = b"0123456789."
_SIGNIFICANT: Final = 16
_LONG_NUMBER: Final = re.compile(rb"[0-9.]{16}")


def _may_hold_long_number(text: str) -> bool:
    """True if `text` may contain a number literal with 16+ significant digits."""
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) - len(raw.translate(None, _NUMBER_CHARS)) < _SIGNIFICANT:
        return False
    return _LONG_NUMBER.search(raw) is not None


def needs_exact(amount: object, text: str) -> bool:
    """Whether an orjson-decoded `amount` might differ from its literal in `text`."""
    if isinstance(amount, float):
        return amount == 0.0 or _may_hold_long_number(text)
    if isinstance(amount, int) and not isinstance(amount, bool):
        return amount == 0 and "-" in text
    return False
