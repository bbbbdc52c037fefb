"""Amount rules: exact parsing, rejected forms, minor units, and the float fast path."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.normalize import amounts, json_payload
from streamer.normalize.errors import Reject

from .helpers import accepted, payu, reason, rejected, stripe


def stripe_text(amount_literal: str, currency: str | None = None) -> str:
    """A Stripe-like payload with the amount literal spliced in verbatim."""
    extra = "" if currency is None else f', "currency": "{currency}"'
    return f'{{"amt": {amount_literal}, "p_id": "Stripe"{extra}}}'


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (25.84, "25.84"),
        (0, "0"),
        (0.0, "0"),
        (7, "7"),
        (0.5, "0.5"),
        (1e-05, "0.00001"),
        ("0", "0"),
        ("12.50", "12.50"),
        ("  12.50 \n", "12.50"),
        ("\t7\r", "7"),
        ("007", "7"),
        ("999999999999999999", "999999999999999999"),
        ("999999999999999999.99", "999999999999999999.99"),
        (999999999999999999, "999999999999999999"),
        (1.5e15, "1500000000000000"),
    ],
)
def test_accepted_amounts(value: object, expected: str) -> None:
    assert accepted(stripe(amt=value)).amount == Decimal(expected)


@pytest.mark.parametrize(
    ("literal", "expected"),
    [
        ("1E+2", "100"),
        ("1e2", "100"),
        ("2.5E1", "25"),
        ("0.0", "0"),
        ("0E+5", "0"),
        ("25.840", "25.84"),
    ],
)
def test_json_number_literals_judged_by_value(literal: str, expected: str) -> None:
    result = accepted(stripe_text(literal))
    assert result.amount == Decimal(expected)
    assert "E" not in str(result.amount)


@pytest.mark.parametrize(
    "value",
    [
        ...,
        None,
        True,
        False,
        {},
        {"value": 1},
        [],
        [1],
        -1,
        -0.5,
        "-1",
        "-0",
        "- 1",
        "+5",
        "1e3",
        "1E3",
        "NaN",
        "nan",
        "Infinity",
        "-Infinity",
        "inf",
        "sNaN",
        "\u0661\u0662\u0663",  # Arabic-Indic digits
        "\uff11\uff12\uff13",  # full-width digits
        "1_000",
        "1,000",
        "12,50",
        "",
        "   ",
        "5.",
        ".5",
        "1.2.3",
        "0x10",
        "1\u00a0",  # non-breaking space is not JSON white space
        "\u20015",
        1000000000000000000,
        "1000000000000000000",
        "0001000000000000000000",
        10**40,
        "9" * 5000,
        "9" * 5000 + ".5",
        "1." + "1" * 33,
    ],
)
def test_rejected_amounts(value: object) -> None:
    assert reason(stripe(amt=value)) == "invalid_amount"


@pytest.mark.parametrize(
    "literal",
    [
        "-0",
        "-0.0",
        "-0.00",
        "-1",
        "-25.84",
        "NaN",
        "Infinity",
        "-Infinity",
        "1e400",
        "1e-400",
        "1" * 5000,
        "1" * 5000 + ".5",
        "0." + "0" * 5000 + "1",
        "18446744073709551616",
        "1E+18",
        "true",
        "null",
    ],
)
def test_rejected_amount_literals(literal: str) -> None:
    assert reason(stripe_text(literal)) == "invalid_amount"


def test_huge_literal_does_not_hit_int_string_limit() -> None:
    result = rejected(stripe_text("9" * 5000))
    assert result.reason == "invalid_amount"
    assert "integer digits" in result.detail


@pytest.mark.parametrize(
    ("amount", "currency", "ok"),
    [
        ("10.00", "USD", True),
        ("10.5", "USD", True),
        ("10.005", "USD", False),
        (10.005, "USD", False),
        ("10.050", "usd", True),  # trailing zero is not a significant digit
        ("100", "JPY", True),
        ("100.0", "JPY", True),
        ("100.5", "JPY", False),
        (100.5, "jpy", False),
        ("1.005", "KWD", True),
        ("1.0005", "KWD", False),
        ("1.0001", "CLF", True),
        ("1.123456", "XAU", True),  # no minor unit in ISO 4217
        ("0.001", "USD", False),
        ("0.000", "JPY", True),
    ],
)
def test_minor_unit(amount: object, currency: str, ok: bool) -> None:
    data = payu(amount_details={"value": amount, "currency": currency})
    if ok:
        assert accepted(data).amount == Decimal(str(amount))
    else:
        assert reason(data) == "invalid_amount"


def test_amount_syntax_checked_before_currency() -> None:
    assert reason(stripe(amt="abc", currency="US$")) == "invalid_amount"
    assert reason(stripe(amt="10.005", currency="US$")) == "invalid_currency"


# --- exactness of the float fast path -------------------------------------------------


@pytest.mark.parametrize(
    "literal",
    [
        "0.10000000000000000555",  # the double nearest to it prints as 0.1
        "0.29999999999999998889776975",
        "12345678901234567.5",
        "1234567890.1234567",
        "25.84",
        "0.1",
    ],
)
def test_amount_equals_its_literal(literal: str) -> None:
    result = accepted(stripe_text(literal))
    assert result.amount == Decimal(literal)
    assert str(result.amount) == literal


def test_long_literal_checked_against_currency_exactly() -> None:
    assert reason(stripe_text("0.10000000000000000555", "USD")) == "invalid_amount"
    assert reason(stripe_text("12345678901234567.5", "JPY")) == "invalid_amount"
    assert accepted(stripe_text("12345678901234567.5", "USD")).amount == Decimal(
        "12345678901234567.5"
    )


def test_long_number_elsewhere_forces_exact_path() -> None:
    text = '{"amt": 0.10000000000000000555, "p_id": "Stripe", "ref": "4242424242424242"}'
    assert accepted(text).amount == Decimal("0.10000000000000000555")


def test_nested_long_literal_in_payu() -> None:
    text = '{"provider": "PayU", "amount_details": {"value": 0.30000000000000000444}}'
    assert accepted(text).amount == Decimal("0.30000000000000000444")


@pytest.mark.parametrize(
    ("amount", "text", "expected"),
    [
        (25.84, '{"amt": 25.84}', False),
        (0.1, '{"amt": 0.10000000000000000555}', True),
        (0.1, '{"amt": 0.1, "id": 12345678901234567}', True),
        (0.0, '{"amt": 1e-400}', True),
        (0.0, '{"amt": 0.0}', True),
        (0, '{"amt": -0}', True),
        (0, '{"amt": 0}', False),
        (5, '{"amt": 5}', False),
        ("5", '{"amt": "5"}', False),
        (True, '{"amt": true, "x": -1}', False),
    ],
)
def test_needs_exact(amount: object, text: str, expected: bool) -> None:
    assert json_payload.needs_exact(amount, text) is expected


def test_exact_parser_types() -> None:
    value = json_payload.loads_exact('{"a": 1.5, "b": 7, "c": 1234567890123456789012, "d": NaN}')
    assert isinstance(value, dict)
    assert value["a"] == Decimal("1.5") and isinstance(value["a"], Decimal)
    assert value["b"] == 7 and isinstance(value["b"], int)
    assert value["c"] == Decimal("1234567890123456789012")
    assert value["d"].is_nan()


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, "nope", ""])
def test_exact_parser_failures_are_invalid_json(text: str) -> None:
    with pytest.raises(json_payload.InvalidJson):
        json_payload.loads_exact(text)


@settings(max_examples=200, deadline=None)
@given(
    integer=st.integers(min_value=0, max_value=10**18 - 1),
    fraction=st.text(alphabet="0123456789", max_size=25),
)
def test_any_plain_literal_is_exact(integer: int, fraction: str) -> None:
    literal = f"{integer}.{fraction}" if fraction else str(integer)
    significant = len(fraction.rstrip("0"))
    for text in (stripe_text(literal), stripe_text(f'"{literal}"')):
        result = accepted(text)
        assert result.amount == Decimal(literal)
    usd = stripe_text(literal, "USD")
    if significant <= 2:
        assert accepted(usd).amount == Decimal(literal)
    else:
        assert reason(usd) == "invalid_amount"


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.just(0.0), st.floats(min_value=1e-12, max_value=1e17)))
def test_float_amounts_match_their_json_text(value: float) -> None:
    # 1e-12 keeps every repr within MAX_FRACTION_DIGITS (at most 12 + 16 digits)
    text = stripe_text(repr(value))
    result = accepted(text)
    assert result.amount == Decimal(repr(value))


# --- direct unit checks --------------------------------------------------------------


def test_parse_amount_reports_fraction_digits() -> None:
    assert amounts.parse_amount(25.84, "amt") == (Decimal("25.84"), 2)
    assert amounts.parse_amount(25.0, "amt") == (Decimal("25.0"), 0)
    assert amounts.parse_amount("1.500", "amt") == (Decimal("1.500"), 1)
    assert amounts.parse_amount(Decimal("1.2300"), "amt") == (Decimal("1.2300"), 2)
    assert amounts.parse_amount(Decimal("1E+3"), "amt") == (Decimal(1000), 0)
    assert amounts.parse_amount(1e-05, "amt") == (Decimal("0.00001"), 5)


def test_check_scale_messages() -> None:
    with pytest.raises(Reject) as info:
        amounts.check_scale((Decimal("1.005"), 3), 2, "USD", "amt")
    assert info.value.reason == "invalid_amount"
    assert "USD allows 2" in info.value.detail
    amounts.check_scale((Decimal("1.005"), 3), None, None, "amt")
