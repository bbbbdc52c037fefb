"""End-to-end behaviour of `normalize`: seed rows, family detection, text and timing rules."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal

import pytest

from streamer.normalize import (
    KNOWN_PROVIDERS,
    REJECTION_REASONS,
    Canonical,
    Rejection,
    SourceRow,
    normalize,
    pipeline,
    registry,
)

from .helpers import (
    MERCHANT,
    MERCHANT_ID,
    PAYU,
    STRIPE,
    XML_CONTENT,
    XML_MERCHANT,
    XML_MERCHANT_ID,
    accepted,
    as_text,
    make_row,
    payu,
    reason,
    rejected,
    stripe,
    xml,
)

# --- the seed rows from the contract -------------------------------------------------


def test_seed_stripe_row() -> None:
    row = SourceRow("s1", "t1", as_text(STRIPE), as_text(MERCHANT), "2024-05-01 10:00:00+00")
    result = normalize(row)
    assert result == Canonical(
        source_id="s1",
        transactional_id="t1",
        merchant_id=MERCHANT_ID,
        merchant_name="Falabella",
        merchant_country="CO",
        provider="stripe",
        source_format="json",
        amount=Decimal("25.84"),
        currency=None,
        status="approved",
        provider_status="00_SUCCESS",
        country="ES",
        processing_ms=402,
        raw=row.data,
        source_created_at="2024-05-01 10:00:00+00",
    )
    assert str(result.amount) == "25.84"


def test_seed_xml_row() -> None:
    result = accepted(xml(XML_CONTENT), XML_MERCHANT)
    assert result.source_format == "xml"
    assert result.provider == "unknown"
    assert result.amount == Decimal("129.97")
    assert result.status == "approved"
    assert result.provider_status == "APPROVED"
    assert result.country == "CL"
    assert result.merchant_id == XML_MERCHANT_ID
    assert result.merchant_name == "Shopito"
    assert result.merchant_country == "PE"
    assert result.currency is None
    assert result.processing_ms is None


def test_seed_payu_row() -> None:
    result = accepted(PAYU)
    assert result.provider == "payu"
    assert result.source_format == "json"
    assert result.amount == Decimal("422.45")
    assert result.currency == "USD"
    assert result.status == "approved"
    assert result.provider_status == "APPROVED"
    assert result.country == "AR"
    assert result.processing_ms is None


def test_seed_unsafe_xml_row() -> None:
    content = (
        '<?xml version="1.0"?><!DOCTYPE Tx [<!ENTITY a "x">]>'
        f"<Tx><MerchID>{XML_MERCHANT_ID}</MerchID><Org>&a;</Org><Val>1</Val></Tx>"
    )
    assert reason(xml(content), XML_MERCHANT) == "unsafe_xml"


def test_raw_is_the_data_text_unchanged() -> None:
    text = '{ "amt" : 1.50 ,"p_id":"Stripe" }'
    result = accepted(text)
    assert result.raw == text
    assert result.amount == Decimal("1.50")


def test_rejection_carries_the_row() -> None:
    row = SourceRow("s9", "t9", '{"amt": -1}', '{"id": 7}', None)
    result = normalize(row)
    assert result == Rejection("s9", "t9", '{"id": 7}', '{"amt": -1}', "invalid_amount", result[5])


# --- every rejection reason ----------------------------------------------------------

REASON_EXAMPLES: dict[str, tuple[object, object]] = {
    "invalid_amount": (stripe(amt="12,50"), MERCHANT),
    "invalid_currency": (stripe(currency="US$"), MERCHANT),
    "invalid_country": (stripe(card_country="EU"), MERCHANT),
    "invalid_merchant": (STRIPE, {"name": "no id"}),
    "merchant_mismatch": (xml(XML_CONTENT), MERCHANT),
    "unsafe_xml": (xml('<!DOCTYPE Tx SYSTEM "http://evil/x.dtd"><Tx/>'), MERCHANT),
    "malformed_xml": (xml("<Tx><Val>1</Tx>"), MERCHANT),
    "payload_too_large": (xml("<Tx>" + " " * 300_000 + "</Tx>"), MERCHANT),
    "unrecognized_payload": ({"hello": "world"}, MERCHANT),
    "invalid_text": (stripe(server_txt="00\u0000"), MERCHANT),
}


@pytest.mark.parametrize(("expected", "example"), REASON_EXAMPLES.items())
def test_each_reason(expected: str, example: tuple[object, object]) -> None:
    data, merchant = example
    assert reason(data, merchant) == expected


def test_examples_cover_every_normalizer_reason() -> None:
    assert set(REASON_EXAMPLES) == REJECTION_REASONS - {"target_refused", "malformed_record"}


# --- family detection ----------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        "[]",
        "[1, 2]",
        '"text"',
        "42",
        "null",
        "true",
        "",
        "   ",
        "not json",
        '{"amt": 1',
        '{"amt": 1} trailing',
        "\ufeff{}",
        {},
        {"hello": "world"},
        {"type": "xml_blob", "content": "<Tx/>"},  # discriminator is case-sensitive
        {"amount": 10, "currency": "USD"},
    ],
)
def test_unrecognized_payload(data: object) -> None:
    assert reason(data) == "unrecognized_payload"


def test_xml_discriminator_wins() -> None:
    data = dict(xml(f"<Tx><Val>1</Val><MerchID>{MERCHANT_ID}</MerchID></Tx>"), amt=99)
    result = accepted(data)
    assert (result.source_format, result.amount) == ("xml", Decimal(1))


def test_amount_details_wins_over_amt() -> None:
    result = accepted({"amt": 1, "amount_details": {"value": 2}})
    assert result.amount == Decimal(2)


def test_provider_comes_from_the_payload_not_the_shape() -> None:
    mixed = {"provider": "PayU", "amt": 5, "status": "DECLINED", "origin_iso": "ARG"}
    result = accepted(mixed)
    assert (result.provider, result.amount, result.status, result.country) == (
        "payu",
        Decimal(5),
        "declined",
        "AR",
    )
    assert result.provider_status == "DECLINED"


def test_stripe_keys_as_fallback_in_payu_shape() -> None:
    data = {"p_id": "Stripe", "amount_details": {"value": 3}, "server_txt": "05", "exec_ms": 9}
    result = accepted(data)
    assert (result.provider, result.status, result.processing_ms) == ("stripe", "declined", 9)


def test_payu_top_level_currency_fallback() -> None:
    assert accepted(payu(amount_details={"value": 1}, currency="eur")).currency == "EUR"
    both = payu(amount_details={"value": 1, "currency": "USD"}, currency="EUR")
    assert accepted(both).currency == "USD"


@pytest.mark.parametrize(
    "data",
    [
        stripe(amt=...),  # recognised by its other keys, amount missing
        payu(amount_details=...),
        {"p_id": "Stripe", "amount": 10},
        {"provider": "PayU", "status": "APPROVED"},
        payu(amount_details=None),
        payu(amount_details={"currency": "USD"}),
        payu(amount_details=[422.45]),
        payu(amount_details="422.45"),
    ],
)
def test_family_without_amount_is_invalid_amount(data: object) -> None:
    assert reason(data) == "invalid_amount"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Stripe", "stripe"),
        ("  STRIPE\t", "stripe"),
        ("PayU", "payu"),
        ("Adyen", "adyen"),
        ("   ", "unknown"),
        ("", "unknown"),
        (None, "unknown"),
        (..., "unknown"),
    ],
)
def test_provider_normalization(value: object, expected: str) -> None:
    assert accepted(stripe(p_id=value)).provider == expected


def test_provider_key_wins_over_p_id() -> None:
    assert accepted(stripe(provider="PayU")).provider == "payu"
    assert accepted(stripe(provider=None)).provider == "stripe"


@pytest.mark.parametrize("value", [1, 1.5, True, ["stripe"], {"name": "stripe"}])
def test_non_string_provider_is_unrecognized(value: object) -> None:
    assert reason(stripe(p_id=value)) == "unrecognized_payload"


def test_known_providers() -> None:
    assert {"stripe", "payu", "unknown"} <= KNOWN_PROVIDERS
    assert all(p == p.strip().lower() for p in KNOWN_PROVIDERS)
    families = {family.name for family in registry.FAMILIES}
    assert families == {"stripe", "payu", "xml"}


# --- processing_ms -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (402, 402),
        (0, 0),
        (2**31 - 1, 2**31 - 1),
        (402.0, 402),
        (2**31, None),
        (-1, None),
        (402.5, None),
        ("402", 402),  # CSV cells are text (issue 12)
        (" 402 ", 402),
        ("2147483648", None),
        ("-1", None),
        ("4e2", None),
        ("402.0", None),
        ("٤٠٢", None),  # non-ASCII digits
        (True, None),
        (None, None),
        ([402], None),
        (..., None),
    ],
)
def test_processing_ms(value: object, expected: int | None) -> None:
    assert accepted(stripe(exec_ms=value)).processing_ms == expected


@pytest.mark.parametrize(
    ("literal", "expected"),
    [("1e400", None), ("NaN", None), ("99999999999999999999999", None), ("-0", 0), ("7", 7)],
)
def test_processing_ms_from_exact_parser(literal: str, expected: int | None) -> None:
    # each literal makes orjson fail, so the stdlib (Decimal) parser supplies exec_ms
    data = '{"amt": 1, "exec_ms": ' + literal + ', "x": NaN}'
    assert accepted(data).processing_ms == expected


# --- storable text -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "merchant"),
    [
        (STRIPE, dict(MERCHANT, id="a\u0000b")),
        (STRIPE, dict(MERCHANT, name="Fala\u0000bella")),
        (STRIPE, '{"id": "m1", "name": "bad \\ud800 surrogate"}'),
        (STRIPE, '{"id": "m1\\udfff"}'),
        (stripe(p_id="str\u0000ipe"), MERCHANT),
        (stripe(server_txt="\u0000"), MERCHANT),
        (payu(status="APPROVED\udc00"), MERCHANT),  # json.dumps writes the escape
        ('{"amt": 1, "status": "x\\ud83d"}', MERCHANT),
        ('{"amt": 1, "note": "\ud800"}', MERCHANT),  # literal lone surrogate in raw
        # raw must be storable as jsonb: escapes decoding to NUL/lone surrogates anywhere
        ('{"amt": 1, "note": "\\u0000"}', MERCHANT),
        ('{"amt": 1, "note": ["ok", {"deep": "\\ud800"}]}', MERCHANT),
        ('{"amt": 1, "\\udc00": true}', MERCHANT),
    ],
)
def test_invalid_text(data: object, merchant: object) -> None:
    assert reason(data, merchant) == "invalid_text"


def test_invalid_text_in_row_fields() -> None:
    row = make_row(STRIPE)
    for bad in (row._replace(source_id="s\u0000"), row._replace(created_at="2024\ud800")):
        result = normalize(bad)
        assert isinstance(result, Rejection)
        assert result.reason == "invalid_text"


def test_legal_odd_text_is_stored_as_given() -> None:
    name = "Shop\u202e\u0007\u200b\t\nName \U0001f600"
    result = accepted(STRIPE, dict(MERCHANT, name=name))
    assert result.merchant_name == name
    pair = accepted('{"amt": 1, "server_txt": "ok \\ud83d\\ude00"}')  # valid escaped pair
    assert pair.provider_status == "ok \U0001f600"
    escaped_backslash = accepted('{"amt": 1, "note": "C:\\\\u0000"}')  # text "C:\u0000"
    assert escaped_backslash.amount == 1


# --- totality and purity -------------------------------------------------------------


def test_internal_errors_become_rejections(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(data: object) -> object:
        raise RuntimeError("bug")

    monkeypatch.setattr(registry, "detect", boom)
    result = pipeline.pure_normalize(make_row(STRIPE))  # the compiled twin does not call it
    assert isinstance(result, Rejection)
    assert result.reason == "unrecognized_payload"
    assert result.detail.startswith(pipeline.INTERNAL_ERROR_PREFIX)


def test_detail_is_short_for_huge_values() -> None:
    result = rejected(stripe(amt="9" * 100_000))
    assert result.reason == "invalid_amount"
    assert len(result.detail) < 300


def test_package_is_pure() -> None:
    code = (
        "import sys, streamer.normalize\n"
        "bad = {'psycopg', 'prometheus_client', 'sqlalchemy'} & set(sys.modules)\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
