"""Currency (ISO 4217) and country (ISO 3166-1) code lookups.

Validation rules: currencies are ISO 4217 alphabetic codes in any ASCII case, not
trimmed (`"EUR "` is invalid), stored upper-case; numeric codes (`"840"`) and non-strings
are invalid. Countries are ISO 3166-1 alpha-2 or alpha-3 codes in any ASCII case (plus
`UK` for GB), not trimmed, stored as alpha-2. For both, null/absent means None.

Both tables are built once at import from the `iso4217` and `pycountry` data, with every
ASCII upper/lower-case spelling of each code as its own key. A lookup is then one dict
probe: no `str.upper()` per row, and no Unicode case-mapping surprises (the dotless
`"\\u0131".upper()` is `"I"`, so upper-casing first would accept `"\\u0131n"` as India).
"""

from __future__ import annotations

from itertools import product
from typing import Final, NamedTuple

import pycountry
from iso4217 import Currency

from streamer.normalize.errors import Reject, describe


class CurrencyInfo(NamedTuple):
    """An ISO 4217 code and its minor unit (None where ISO says "N.A.", e.g. XAU)."""

    code: str
    minor_unit: int | None


def _spellings(code: str) -> list[str]:
    """All ASCII case variants of `code` ("usd", "Usd", ... "USD")."""
    return ["".join(chars) for chars in product(*((c.lower(), c.upper()) for c in code))]


def _build_currencies() -> dict[str, CurrencyInfo]:
    table: dict[str, CurrencyInfo] = {}
    for currency in Currency:
        info = CurrencyInfo(currency.code.upper(), currency.exponent)
        for spelling in _spellings(info.code):
            table[spelling] = info
    return table


COUNTRY_ALIASES: Final = {"UK": "GB"}
"""Non-ISO codes we accept anyway because payloads use them (ISO reserves UK for GB)."""


def _build_countries() -> dict[str, str]:
    table: dict[str, str] = {}
    pairs: list[tuple[str, str]] = [(alias, a2) for alias, a2 in COUNTRY_ALIASES.items()]
    for country in pycountry.countries:
        alpha_2 = str(country.alpha_2).upper()
        pairs.append((alpha_2, alpha_2))
        pairs.append((str(country.alpha_3).upper(), alpha_2))
    for code, alpha_2 in pairs:
        for spelling in _spellings(code):
            table[spelling] = alpha_2
    return table


_CURRENCIES: Final = _build_currencies()
_COUNTRIES: Final = _build_countries()


def currency_info(code: str) -> CurrencyInfo | None:
    """The ISO 4217 entry for `code` (any ASCII case, no surrounding space), else None."""
    return _CURRENCIES.get(code)


def country_alpha2(code: str) -> str | None:
    """The alpha-2 code for an alpha-2/alpha-3 `code` (any ASCII case), else None."""
    return _COUNTRIES.get(code)


def parse_currency(value: object) -> tuple[str | None, int | None]:
    """(code, minor unit) of a currency value; (None, None) when null/absent."""
    if value is None:
        return None, None
    info = _CURRENCIES.get(value) if isinstance(value, str) else None
    if info is None:
        raise Reject("invalid_currency", f"not an ISO 4217 code: {describe(value)}")
    return info


def parse_country(value: object, field: str) -> str | None:
    """Alpha-2 code of a country value; None when null/absent."""
    if value is None:
        return None
    alpha_2 = _COUNTRIES.get(value) if isinstance(value, str) else None
    if alpha_2 is None:
        raise Reject("invalid_country", f"{field}: not an ISO 3166-1 code: {describe(value)}")
    return alpha_2
