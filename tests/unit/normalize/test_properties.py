"""Totality: whatever the input, `normalize` returns a well-formed result and never raises."""

from __future__ import annotations

import json
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamer.normalize import (
    REJECTION_REASONS,
    STATUSES,
    Canonical,
    Rejection,
    SourceRow,
    normalize,
)
from streamer.normalize.pipeline import INTERNAL_ERROR_PREFIX

from .helpers import MERCHANT, XML_CONTENT, XML_MERCHANT_ID

NORMALIZER_REASONS = REJECTION_REASONS - {"target_refused", "malformed_record"}
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Any code point, including NUL and lone surrogates.
any_char = st.characters(codec=None, categories=None, exclude_categories=())
any_text = st.text(any_char, max_size=20)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    any_text,
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(any_text, children, max_size=4),
    ),
    max_leaves=12,
)


def dumps(value: object) -> str:
    """JSON text; ensure_ascii keeps lone surrogates as escapes like a client would send."""
    return json.dumps(value)


def check(result: Canonical | Rejection, row: SourceRow) -> None:
    if isinstance(result, Rejection):
        assert result.reason in NORMALIZER_REASONS
        assert not result.detail.startswith(INTERNAL_ERROR_PREFIX), result.detail
        assert len(result.detail) < 400
        assert (result.source_id, result.transactional_id) == (row.source_id, row.transactional_id)
        assert (result.raw, result.merchant) == (row.data, row.merchant)
        return
    assert isinstance(result, Canonical)
    assert result.status in STATUSES
    assert result.source_format in {"json", "xml"}
    assert isinstance(result.amount, Decimal)
    assert result.amount.is_finite()
    assert not result.amount.is_signed()
    assert result.amount < Decimal(10) ** 18
    assert result.raw == row.data
    assert result.provider == result.provider.strip().lower()
    assert result.provider
    for text in (result.merchant_id, result.merchant_name, result.provider, result.provider_status):
        if text is not None:
            text.encode("utf-8")  # no lone surrogates
            assert "\x00" not in text
    assert result.currency is None or (len(result.currency) == 3 and result.currency.isupper())
    for country in (result.country, result.merchant_country):
        assert country is None or (len(country) == 2 and country.isupper())
    assert result.processing_ms is None or 0 <= result.processing_ms < 2**31


def run(data: str, merchant: str) -> None:
    row = SourceRow("s", "t", data, merchant, None)
    check(normalize(row), row)


@FAST
@given(data=json_values, merchant=json_values)
def test_arbitrary_json(data: object, merchant: object) -> None:
    run(dumps(data), dumps(merchant))
    run(dumps(data), dumps(MERCHANT))
    run(dumps({"amt": 1}), dumps(merchant))


@FAST
@given(data=st.text(any_char, max_size=60), merchant=st.text(any_char, max_size=60))
def test_arbitrary_text(data: str, merchant: str) -> None:
    run(data, merchant)
    run(data, dumps(MERCHANT))


family_keys = st.sampled_from(
    [
        "amt",
        "p_id",
        "provider",
        "status",
        "st_code",
        "server_txt",
        "exec_ms",
        "card_country",
        "origin_iso",
        "currency",
        "amount_details",
        "type",
        "content",
    ]
)
field_values = st.one_of(
    json_values,
    st.sampled_from(
        ["Stripe", "PayU", "XML_BLOB", "USD", "jpy", "ES", "UK", "00_SUCCESS", "DECLINED"]
    ),
    st.sampled_from(["12.5", "0", "-0", "1e3", "10.005", " 7 ", "NaN", "9" * 30]),
    st.decimals(allow_nan=False, allow_infinity=False).map(float),
    st.fixed_dictionaries(
        {},
        optional={
            "value": st.one_of(json_values, st.sampled_from(["1.25", "3"])),
            "currency": st.sampled_from(["USD", "KWD", "JPY", "xx", None]),
        },
    ),
)
VALID_JSON_PAYLOADS = [
    {"amt": 25.84, "p_id": "Stripe", "st_code": 1, "card_country": "ES"},
    {"provider": "PayU", "status": "APPROVED", "amount_details": {"value": 1, "currency": "USD"}},
]
# Arbitrary family-shaped dicts, plus valid payloads with one or two fields mutated, so
# accepted rows are generated too (not only rejections).
targeted = st.one_of(
    st.dictionaries(family_keys, field_values, max_size=8),
    st.builds(
        lambda base, extra: {**base, **extra},
        st.sampled_from(VALID_JSON_PAYLOADS),
        st.dictionaries(family_keys, field_values, max_size=2),
    ),
)

xml_tags = st.sampled_from(["MerchID", "Org", "Val", "Stat", "Cur", "Currency", "Provider", "X"])
xml_texts = st.one_of(
    st.text(any_char, max_size=12),
    st.sampled_from(["129.97", "CL", "APPROVED", "USD", "&a;", "<b/>", XML_MERCHANT_ID, "]]>"]),
)
xml_elements = st.lists(st.tuples(xml_tags, xml_texts), max_size=4).map(
    lambda items: "".join(f"<{tag}>{text}</{tag}>" for tag, text in items)
)
xml_bodies = st.tuples(st.sampled_from(["", "<Val>129.97</Val>"]), xml_elements).map("".join)
xml_prefixes = st.sampled_from(["", '<?xml version="1.0"?>', "<!DOCTYPE Tx>", "<!-- c -->"])
xml_contents = st.one_of(
    st.just(XML_CONTENT),
    st.text(any_char, max_size=80),
    st.tuples(xml_prefixes, st.sampled_from(["Tx", "tx", "Foo"]), xml_bodies).map(
        lambda parts: f"{parts[0]}<{parts[1]}>{parts[2]}</{parts[1]}>"
    ),
)
merchants = st.one_of(
    st.just({"id": XML_MERCHANT_ID, "name": "Shopito", "country": "PE"}),
    st.fixed_dictionaries(
        {"id": st.one_of(json_values, st.just(XML_MERCHANT_ID))},
        optional={"name": json_values, "country": st.one_of(json_values, st.just("CO"))},
    ),
    json_values,
)


@FAST
@given(data=targeted, merchant=merchants)
def test_targeted_json_families(data: dict[str, object], merchant: object) -> None:
    run(dumps(data), dumps(merchant))


@FAST
@given(content=xml_contents, merchant=merchants, extra=targeted)
def test_targeted_xml_blobs(content: str, merchant: object, extra: dict[str, object]) -> None:
    run(dumps({"type": "XML_BLOB", "content": content}), dumps(merchant))
    run(dumps({**extra, "type": "XML_BLOB", "content": content}), dumps(merchant))


def test_families_are_reached() -> None:
    """Guard for the strategies above: they must produce accepted rows of each family."""
    seen: set[str] = set()

    @settings(max_examples=120, deadline=None, database=None, derandomize=True)
    @given(data=targeted, content=xml_contents)
    def probe(data: dict[str, object], content: str) -> None:
        for text in (dumps(data), dumps({"type": "XML_BLOB", "content": content})):
            result = normalize(SourceRow("s", "t", text, dumps({"id": XML_MERCHANT_ID}), None))
            if isinstance(result, Canonical):
                seen.add(result.source_format)
            else:
                seen.add(result.reason)

    probe()
    assert {"json", "xml", "invalid_amount", "unrecognized_payload"} <= seen, seen
