"""Exact money parsing: JSON/XML amount values to `Decimal`, never via float arithmetic.

Accepted:

* a JSON number (int, or a float that `json_payload` guarantees equals its literal, or a
  `Decimal` from the exact parser). Exponent notation in a JSON *number* is judged by
  value (`1E+2` is 100): the fast parser cannot see the notation, and Postgres `jsonb`
  never emits it anyway;
* a string of ASCII digits with an optional `.digits` fraction, optionally surrounded by
  JSON white space (space, tab, CR, LF). Both sides of the dot need a digit (`"5."` and
  `".5"` are rejected).

Rejected (`invalid_amount`): missing/null, booleans, objects/arrays, any negative sign
(including `-0`), signs/exponents/underscores/non-ASCII digits in strings, NaN and
Infinity, more than `MAX_INTEGER_DIGITS` integer digits, and more fraction digits than
the currency's minor unit allows. Fraction digits are counted by value (trailing zeros
do not count: `"10.50"` is fine for USD, `"100.0"` for JPY), because a float fast-path
value cannot tell `10.5` from `10.50`; nothing is ever rounded. When no minor unit applies
(no currency, or an ISO code whose minor unit is "N.A." such as XAU) the fraction is only
capped at `MAX_FRACTION_DIGITS` as a sanity bound.
"""

from __future__ import annotations

from decimal import Context, Decimal
from typing import Final

from streamer.normalize.errors import Reject, describe

MAX_INTEGER_DIGITS: Final = 18
MAX_FRACTION_DIGITS: Final = 32
"""Fraction cap when the currency does not define a minor unit."""

_INTEGER_LIMIT: Final = 10**MAX_INTEGER_DIGITS
_JSON_SPACE: Final = " \t\n\r"
_PLAIN_REPR_LIMIT: Final = 1e16
"""Below this, a positive float's repr is plain or a small negative exponent (1e-05)."""
_ONE: Final = Decimal(1)
_CONTEXT: Final = Context(prec=40)
"""Explicit context: quantize must not depend on whatever the thread's context is."""
_ZERO: Final = Decimal(0)


def _reject(field: str, problem: str, value: object) -> Reject:
    return Reject("invalid_amount", f"{field}: {problem}: {describe(value)}")


Amount = tuple[Decimal, int]
"""An exact amount and its significant fraction digits (for the minor-unit check); a
plain tuple because it is built on every row."""


def parse_amount(value: object, field: str) -> Amount:
    """The exact, non-negative amount held by a JSON/XML value (scale checked later)."""
    if isinstance(value, float):
        if 0.0 < value < _PLAIN_REPR_LIMIT:
            text = repr(value)  # shortest round-trip form: no trailing zeros but "x.0"
            if "e" not in text:
                fraction = text.partition(".")[2]
                return (Decimal(text), 0 if fraction == "0" else len(fraction))
        return _checked_decimal(Decimal(repr(value)), field, value)
    if isinstance(value, bool):
        raise _reject(field, "boolean is not an amount", value)
    if isinstance(value, int):
        if value < 0:
            raise _reject(field, "negative amount", value)
        if value >= _INTEGER_LIMIT:
            raise _reject(field, f"more than {MAX_INTEGER_DIGITS} integer digits", value)
        return (Decimal(value), 0)
    if isinstance(value, str):
        return _parse_text(value, field)
    if isinstance(value, Decimal):
        return _checked_decimal(value, field, value)
    if value is None:
        raise Reject("invalid_amount", f"{field}: missing or null")
    raise _reject(field, "not a number or decimal string", value)


def _parse_text(text: str, field: str) -> Amount:
    stripped = text.strip(_JSON_SPACE)
    integer, dot, fraction = stripped.partition(".")
    if not stripped.isascii() or not integer.isdigit() or (dot and not fraction.isdigit()):
        raise _reject(field, "not a plain decimal (digits with optional .fraction)", text)
    if len(integer.lstrip("0")) > MAX_INTEGER_DIGITS:
        raise _reject(field, f"more than {MAX_INTEGER_DIGITS} integer digits", text)
    return (Decimal(stripped), len(fraction.rstrip("0")))


def _checked_decimal(number: Decimal, field: str, original: object) -> Amount:
    _, digits, exponent = number.as_tuple()
    if not isinstance(exponent, int):  # "n", "N" or "F": NaN, sNaN, Infinity
        raise _reject(field, "not a finite number", original)
    if number.is_signed():
        raise _reject(field, "negative amount", original)
    if not number:
        return (number if exponent <= 0 else _ZERO, 0)
    if number.adjusted() >= MAX_INTEGER_DIGITS:
        raise _reject(field, f"more than {MAX_INTEGER_DIGITS} integer digits", original)
    if exponent >= 0:
        return (number.quantize(_ONE, context=_CONTEXT), 0)  # 1E+2 -> 100: the stored text is plain
    trailing_zeros = len(digits) - len(bytes(digits).rstrip(b"\0"))
    return (number, max(-exponent - trailing_zeros, 0))


def check_scale(amount: Amount, minor_unit: int | None, currency: str | None, field: str) -> None:
    """Reject amounts that need more fraction digits than the currency has."""
    value, digits = amount
    if minor_unit is None:
        if digits > MAX_FRACTION_DIGITS:
            raise Reject(
                "invalid_amount",
                f"{field}: {digits} fraction digits (at most {MAX_FRACTION_DIGITS})",
            )
        return
    if digits > minor_unit:
        raise Reject(
            "invalid_amount",
            f"{field}: {describe(value)} has {digits} fraction digits, "
            f"{currency} allows {minor_unit}",
        )
