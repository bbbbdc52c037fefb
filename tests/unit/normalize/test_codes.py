"""Currency (ISO 4217) and country (ISO 3166-1) rules."""

from __future__ import annotations

import pytest

from streamer.normalize import codes

from .helpers import MERCHANT, accepted, payu, reason, stripe


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("USD", "USD"),
        ("usd", "USD"),
        ("uSd", "USD"),
        ("JPY", "JPY"),
        ("kwd", "KWD"),
        ("XAU", "XAU"),
        (None, None),
        (..., None),
    ],
)
def test_valid_currency(value: object, expected: str | None) -> None:
    assert accepted(stripe(amt=1, currency=value)).currency == expected


@pytest.mark.parametrize(
    "value",
    [
        "US$",
        "ABC",
        "840",
        840,
        "EUR ",
        " EUR",
        "",
        "EURO",
        "EU",
        "\u0131sk",  # dotless i upper-cases to "ISK": still invalid
        "US\u0000",
        True,
        ["USD"],
        {"code": "USD"},
    ],
)
def test_invalid_currency(value: object) -> None:
    assert reason(stripe(amt=1, currency=value)) == "invalid_currency"
    assert reason(payu(amount_details={"value": 1, "currency": value})) == "invalid_currency"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("ES", "ES"),
        ("es", "ES"),
        ("eS", "ES"),
        ("ESP", "ES"),
        ("esp", "ES"),
        ("UK", "GB"),
        ("uk", "GB"),
        ("GBR", "GB"),
        ("gb", "GB"),
        ("AQ", "AQ"),
        (None, None),
        (..., None),
    ],
)
def test_valid_country(value: object, expected: str | None) -> None:
    assert accepted(stripe(card_country=value)).country == expected
    assert accepted(payu(origin_iso=value)).country == expected
    assert accepted(stripe(), dict(MERCHANT, country=value)).merchant_country == expected


@pytest.mark.parametrize(
    "value",
    ["EU", "", "XX", "E", "ESPA", " ES", "ES ", "724", 724, "\u0131n", True, ["ES"], {}, "ZZZ"],
)
def test_invalid_country(value: object) -> None:
    assert reason(stripe(card_country=value)) == "invalid_country"
    assert reason(payu(origin_iso=value)) == "invalid_country"
    assert reason(stripe(), dict(MERCHANT, country=value)) == "invalid_country"


def test_tables_come_from_the_libraries() -> None:
    assert codes.currency_info("CLF") == codes.CurrencyInfo("CLF", 4)
    assert codes.currency_info("XXX") == codes.CurrencyInfo("XXX", None)
    assert codes.currency_info("eur") == codes.CurrencyInfo("EUR", 2)
    assert codes.country_alpha2("ata") == "AQ"
    assert codes.country_alpha2("Zwe") == "ZW"
    assert codes.country_alpha2("EU") is None
    assert codes.country_alpha2("XK") is None  # Kosovo: user-assigned, not ISO 3166-1
