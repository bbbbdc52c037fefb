"""The merchant column: structure, id forms, name, and the XML cross-check."""

from __future__ import annotations

import pytest

from streamer.normalize.merchant import parse_merchant

from .helpers import MERCHANT, STRIPE, XML_MERCHANT_ID, accepted, reason, xml


@pytest.mark.parametrize(
    "merchant",
    [
        "not json",
        "",
        "null",
        "[]",
        '["id"]',
        '"06cbe458"',
        "42",
        '{"id": 1',
        "{}",
        {"name": "no id"},
        {"id": None},
        {"id": ""},
        {"id": "   "},
        {"id": True},
        {"id": False},
        {"id": []},
        {"id": {"uuid": "x"}},
        '{"id": NaN}',
        '{"id": Infinity}',
        dict(MERCHANT, name=5),
        dict(MERCHANT, name=True),
        dict(MERCHANT, name=["Falabella"]),
        dict(MERCHANT, name={}),
    ],
)
def test_invalid_merchant(merchant: object) -> None:
    assert reason(STRIPE, merchant) == "invalid_merchant"


@pytest.mark.parametrize(
    ("merchant", "expected"),
    [
        ('{"id": 123}', "123"),
        ('{"id": 0}', "0"),
        ('{"id": -5}', "-5"),
        ('{"id": 12.50}', "12.50"),  # exact JSON text, not the float repr "12.5"
        ('{"id": 0.10000000000000000555}', "0.10000000000000000555"),
        ('{"id": 18446744073709551616}', "18446744073709551616"),
        ('{"id": ' + "7" * 5000 + "}", "7" * 5000),
        ('{"id": " padded "}', " padded "),  # stored as given
        ('{"id": "m1", "id": "m2"}', "m2"),  # duplicate keys: the last one wins
    ],
)
def test_merchant_id_forms(merchant: str, expected: str) -> None:
    assert accepted(STRIPE, merchant).merchant_id == expected


def test_name_and_country_are_optional() -> None:
    result = accepted(STRIPE, {"id": "m1"})
    assert (result.merchant_name, result.merchant_country) == (None, None)
    result = accepted(STRIPE, {"id": "m1", "name": None, "country": None, "extra": [1]})
    assert (result.merchant_name, result.merchant_country) == (None, None)
    assert accepted(STRIPE, {"id": "m1", "name": ""}).merchant_name == ""


def test_merchant_parse_is_cached_but_rejections_are_not() -> None:
    text = '{"id": "cached-merchant", "country": "esp"}'
    assert parse_merchant(text) == ("cached-merchant", None, "ES")
    hits = parse_merchant.cache_info().hits
    assert parse_merchant(text) == ("cached-merchant", None, "ES")
    assert parse_merchant.cache_info().hits == hits + 1
    assert reason(STRIPE, '{"id": ""}') == "invalid_merchant"
    assert reason(STRIPE, '{"id": ""}') == "invalid_merchant"


# --- XML MerchID vs merchant.id ------------------------------------------------------


def xml_with_merchant(merch_id: str) -> dict[str, str]:
    return xml(f"<Tx><MerchID>{merch_id}</MerchID><Val>1</Val></Tx>")


@pytest.mark.parametrize(
    ("merch_id", "merchant"),
    [
        (XML_MERCHANT_ID, {"id": XML_MERCHANT_ID}),
        (f"  {XML_MERCHANT_ID}\n", {"id": XML_MERCHANT_ID}),
        (XML_MERCHANT_ID, {"id": f" {XML_MERCHANT_ID} "}),
        ("123", '{"id": 123}'),
        ("12.50", '{"id": 12.50}'),
    ],
)
def test_merchant_ref_matches(merch_id: str, merchant: object) -> None:
    assert accepted(xml_with_merchant(merch_id), merchant).source_format == "xml"


@pytest.mark.parametrize(
    ("merch_id", "merchant"),
    [
        ("other", {"id": XML_MERCHANT_ID}),
        (XML_MERCHANT_ID.upper(), {"id": XML_MERCHANT_ID}),
        ("12.5", '{"id": 12.50}'),
        ("0123", '{"id": 123}'),
    ],
)
def test_merchant_mismatch(merch_id: str, merchant: object) -> None:
    assert reason(xml_with_merchant(merch_id), merchant) == "merchant_mismatch"


def test_missing_or_empty_merch_id_skips_the_check() -> None:
    for content in ("<Tx><Val>1</Val></Tx>", "<Tx><MerchID/><Val>1</Val></Tx>"):
        assert accepted(xml(content), {"id": "anything"}).merchant_id == "anything"
