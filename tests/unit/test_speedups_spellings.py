"""The compiled JSON scanner against the pure normalizer, on hand-spelled payload texts.

`streamer/_speedups/_json.pyx` reads payload text itself instead of taking orjson's
dict, so what matters is not the value but its spelling: whitespace between tokens, key
order, duplicate keys, escapes, number forms (trailing zeros, exponents, leading zeros,
signs, long digit runs), nesting, trailing bytes. Each payload below is written token by
token from such choices; the compiled normalizer must give exactly the pure result.
The suite runs 400 examples a test; `STREAMER_FUZZ_EXAMPLES=10000` for a long run.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamer.normalize import SourceRow
from streamer.normalize.pipeline import pure_normalize

from .test_speedups import FUZZ, exact, hot

pytestmark = pytest.mark.skipif(hot is None, reason="compiled speedups not built")

MERCHANT = json.dumps({"id": "m-1", "name": "Shopito", "country": "PE"})
spaces = st.sampled_from(["", "", "", " ", "  ", "\n", "\t", "\r\n", " \n "])

number_literals = st.one_of(
    st.sampled_from(
        [
            "25.84",
            "25.840",
            "25.8400000",
            "100.0",
            "100.00",
            "100",
            "0",
            "-0",
            "0.0",
            "0.5",
            "-1.5",
            "1e2",
            "1E2",
            "1.5e+2",
            "2.5E-3",
            "01",
            "1.",
            ".5",
            "-",
            "1.2.3",
            "123456789012.345",
            "1234567890123.456",
            "12345678901234567890",
            "999999999999999",
            "9999999999999999.5",
            "1.000000000000001",
            "+1",
            "0x10",
        ]
    ),
    st.integers(-(10**20), 10**20).map(str),
    st.integers(0, 18)
    .flatmap(lambda places: st.decimals(allow_nan=False, allow_infinity=False, places=places))
    .map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
)
string_literals = st.one_of(
    st.sampled_from(
        [
            '"USD"',
            '"usd"',
            '"EUR "',
            '"CL"',
            '"ZZ"',
            '"APPROVED"',
            '"00_SUCCESS"',
            '"Stripe"',
            '"STRIPE "',
            '"PayU"',
            '""',
            '"U\\u0053D"',
            '"\\/"',
            '"a\\"b"',
            '"\\u0000"',
            '"\u00e9"',
            '"tab\there"',
            '"12.50"',
            '"422.45"',
            '" 1.0"',
        ]
    ),
    st.text(st.characters(codec="ascii"), max_size=8).map(json.dumps),
)
scalar_literals = st.one_of(
    number_literals, string_literals, st.sampled_from(["true", "false", "null", "nul", "[]"])
)
keys = st.sampled_from(
    [
        "amt",
        "p_id",
        "provider",
        "exec_ms",
        "st_code",
        "server_txt",
        "status",
        "card_country",
        "origin_iso",
        "currency",
        "type",
        "content",
        "x",
        "Amt",
        "am\\u0074",
    ]
)


@st.composite
def objects(draw: st.DrawFn, depth: int = 0) -> str:
    """A JSON object (or something close to one) spelled member by member."""
    members = []
    for _ in range(draw(st.integers(0, 7))):
        key = draw(keys)
        if depth == 0 and draw(st.integers(0, 4)) == 0:
            key, value = "amount_details", draw(objects(depth=1) | scalar_literals)
        elif depth == 0 and draw(st.integers(0, 9)) == 0:
            value = draw(objects(depth=1) | st.just("[1, 2]"))
        else:
            value = draw(scalar_literals)
        if depth == 1 and draw(st.booleans()):
            key = draw(st.sampled_from(["value", "currency"]))
        members.append(f'{draw(spaces)}"{key}"{draw(spaces)}:{draw(spaces)}{value}{draw(spaces)}')
    close = draw(st.sampled_from(["}", "}", "}", ",}", "} x", "}}", ""]))
    return "{" + ",".join(members) + draw(spaces) + close


amounts = st.one_of(
    st.integers(1, 10**17).map(str),
    st.builds(
        lambda whole, fraction, zeros: f"{whole}.{fraction}{'0' * zeros}",
        st.integers(1, 10**14),
        st.integers(0, 10**6),
        st.integers(0, 3),
    ),
    st.floats(min_value=0.01, max_value=1e16).map(repr),
    number_literals,
    st.sampled_from(['"12.50"', '"422.45"', '"7"']),
)


@st.composite
def valid_shapes(draw: st.DrawFn) -> str:
    """A Stripe- or PayU-like payload the fast path should accept, spelled freely."""
    country = draw(st.sampled_from(['"ES"', '"AR"', '"co"', '"PER"', '"UK"', "null"]))
    if draw(st.booleans()):
        members = {
            "amt": draw(amounts),
            "p_id": draw(st.sampled_from(['"Stripe"', '"stripe"', '"STRIPE "', '"x"'])),
            "exec_ms": draw(st.sampled_from(["402", "0", "-1", "2147483648", "null", "4.5"])),
            "st_code": draw(st.sampled_from(["1", "0", '"1"', "null", "true", "1.0"])),
            "server_txt": draw(st.sampled_from(['"00_SUCCESS"', '"51 NO FUNDS"', "null", "5"])),
            "card_country": country,
        }
        if draw(st.booleans()):
            members["currency"] = draw(st.sampled_from(['"USD"', '"eur"', '"CLP"', '"XAU"']))
    else:
        currency = draw(st.sampled_from(['"USD"', '"CLP"', '"BHD"', '"usd"', "null"]))
        details = f'{{{draw(spaces)}"value":{draw(spaces)}{draw(amounts)},"currency":{currency}}}'
        members = {
            "status": draw(st.sampled_from(['"APPROVED"', '"DECLINED"', '"weird"', "null"])),
            "provider": draw(st.sampled_from(['"PayU"', '"payu "', "null", "3"])),
            "origin_iso": country,
            "amount_details": details,
        }
    order = draw(st.permutations(list(members)))
    parts = [f'{draw(spaces)}"{k}"{draw(spaces)}:{draw(spaces)}{members[k]}' for k in order]
    return "{" + ",".join(parts) + draw(spaces) + "}"


families = st.one_of(
    valid_shapes(),
    objects(),
    st.builds(
        lambda head, body: "{" + head + body[1:],
        st.sampled_from(['"amt": 25.84, ', '"type": "XML_BLOB", ', '"amount_details": {}, ']),
        objects(),
    ),
)


@FUZZ
@given(text=families)
def test_fuzz_spelled_payloads(text: str) -> None:
    row = SourceRow("s", "t", text, MERCHANT, None)
    assert hot is not None
    assert exact(hot.normalize(row)) == exact(pure_normalize(row)), text


@pytest.mark.parametrize(
    "text",
    [
        '{"amt": 25.84, "p_id": "Stripe", "exec_ms": 402, "st_code": 1,'
        ' "server_txt": "00_SUCCESS", "card_country": "ES"}',
        '{"amt":25.840,"p_id":"stripe","currency":"usd"}',
        '{ "amt" : 100.00 , "p_id" : "Stripe" }',
        '{"amt": 1e2, "p_id": "Stripe"}',
        '{"amt": 25.84, "amt": 30.5, "p_id": "Stripe"}',
        '{"amt": 25.84, "amt": 30, "p_id": "Stripe"}',
        '{"amt": 25.84, "p_id": "Stripe", "p_id": 5}',
        '{"amt": 1234567890123456.5, "p_id": "Stripe"}',
        '{"amt": 12.5, "p_id": "Stripe", "note": "1234567890123456"}',
        '{"status": "APPROVED", "provider": "PayU", "origin_iso": "AR",'
        ' "amount_details": {"value": "422.45", "currency": "USD"}}',
        '{"status":"APPROVED","provider":"PayU","amount_details":{"value":422.45,"currency":"USD"}}',
        '{"provider": "PayU", "amount_details": {"value": 10, "currency": "CLP", "value": 3}}',
        '{"provider": "PayU", "amount_details": "10"}',
        '{"type": "XML_BLOB", "content": "<Tx><MerchID>m-1</MerchID><Val>1.00</Val></Tx>"}',
        '{"type": "XML_BLOB", "content": "<Tx><MerchID>m-1<\\/MerchID><Val>1.00</Val></Tx>"}',
        '{"amt": 5, "p_id": "Stripe"} ',
        '{"amt": 5, "p_id": "Stripe"} {}',
        '{"amt": 5, "p_id": "Stripe",}',
        '{"amt": -5.5, "p_id": "Stripe"}',
        '{"amt": 0.0, "p_id": "Stripe"}',
        # a number that overflows a double: orjson refuses the text, the pure code
        # re-reads it exactly (-0 stays "-0"); the scanner must not read it either
        '{"amt": 5, "p_id": "Stripe", "server_txt": -0, "x": 1' + "0" * 400 + "}",
        '{"amt": 5, "p_id": "Stripe", "st_code": -0, "x": 1' + "0" * 400 + "}",
        '{"provider": "PayU", "status": -0, "amount_details": {"value": 7}, "x": 1'
        + "0" * 400
        + "}",
        '{"amt": "5", "p_id": "Stripe", "status": -0, "x": 1' + "0" * 400 + ".5}",
    ],
)
def test_spellings_at_the_edges(text: str) -> None:
    row = SourceRow("s", "t", text, MERCHANT, None)
    assert hot is not None
    assert exact(hot.normalize(row)) == exact(pure_normalize(row))
