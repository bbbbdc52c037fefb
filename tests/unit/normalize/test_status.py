"""Status mapping: word table, ISO 8583 leading codes, and Stripe's precedence."""

from __future__ import annotations

import pytest

from streamer.normalize import STATUSES, status

from .helpers import accepted, payu, stripe, xml

WORDS = {
    "approved": [
        "APPROVED",
        "SUCCESS",
        "SUCCEEDED",
        "AUTHORIZED",
        "AUTHORISED",
        "CAPTURED",
        "PAID",
        "COMPLETED",
    ],
    "declined": ["DECLINED", "REJECTED", "DENIED", "REFUSED"],
    "pending": ["PENDING", "PROCESSING", "IN_PROGRESS", "CREATED"],
    "error": ["ERROR", "TIMEOUT"],
    "refunded": ["REFUNDED", "PARTIALLY_REFUNDED"],
    "cancelled": ["CANCELLED", "CANCELED", "VOIDED", "VOID"],
}
WORD_CASES = [(word, expected) for expected, words in WORDS.items() for word in words]


@pytest.mark.parametrize(("word", "expected"), WORD_CASES)
def test_word_table(word: str, expected: str) -> None:
    for spelling in (word, word.lower(), word.title(), word.replace("_", " "), word.swapcase()):
        assert status.classify(spelling) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("in progress", "pending"),
        ("In-Progress", "pending"),
        ("partially refunded", "refunded"),
        ("Partially-Refunded", "refunded"),
        ("  approved\t", "approved"),
        ("00", "approved"),
        ("00_SUCCESS", "approved"),
        ("08 HONOUR WITH ID", "approved"),
        ("10-PARTIAL", "approved"),
        ("11", "approved"),
        ("05_DO_NOT_HONOR", "declined"),
        ("51 INSUFFICIENT FUNDS", "declined"),
        ("99", "declined"),
        ("91 ISSUER UNAVAILABLE", "error"),
        ("96_SYSTEM_MALFUNCTION", "error"),
        (" 00_SUCCESS", "approved"),
        ("05_APPROVED", "declined"),  # the code decides, not the word
        ("000", "unknown"),
        ("00SUCCESS", "unknown"),
        ("0", "unknown"),
        ("5_DECLINED", "unknown"),
        ("00.5", "unknown"),
        ("\u0660\u0660_SUCCESS", "unknown"),  # Arabic-Indic zeros are not ASCII digits
        ("\u017fuccess", "unknown"),  # long s upper-cases to S
        ("IN__PROGRESS", "unknown"),
        ("APPROVED!", "unknown"),
        ("", "unknown"),
        ("whatever", "unknown"),
        (None, "unknown"),
    ],
)
def test_classify(text: str | None, expected: str) -> None:
    assert status.classify(text) == expected


@pytest.mark.parametrize(
    ("server_txt", "st_code", "expected"),
    [
        ("00_SUCCESS", 0, "approved"),  # leading code beats st_code
        ("05_DO_NOT_HONOR", 1, "declined"),
        ("DECLINED", 1, "approved"),  # st_code beats the word table
        ("REFUNDED", 0, "declined"),
        ("DECLINED", ..., "declined"),  # word table when there is no st_code
        ("DECLINED", 2, "declined"),  # unknown st_code is ignored
        ("DECLINED", True, "declined"),  # booleans are not st_codes
        ("DECLINED", None, "declined"),
        ("???", 1, "approved"),
        (..., 1, "approved"),
        (..., 0, "declined"),
        (..., "1", "approved"),
        (..., "0", "declined"),
        (..., 1.0, "unknown"),
        (..., "yes", "unknown"),
        (..., ..., "unknown"),
        ("???", 7, "unknown"),
    ],
)
def test_stripe_precedence(server_txt: object, st_code: object, expected: str) -> None:
    assert accepted(stripe(server_txt=server_txt, st_code=st_code)).status == expected


@pytest.mark.parametrize(
    ("value", "provider_status", "expected"),
    [
        ("Approved ", "Approved ", "approved"),
        (91, "91", "error"),
        (5, "5", "unknown"),
        (1.5, "1.5", "unknown"),
        (True, None, "unknown"),
        (None, None, "unknown"),
        ({"code": "00"}, None, "unknown"),
        (["APPROVED"], None, "unknown"),
    ],
)
def test_payu_status_and_provider_status(
    value: object, provider_status: str | None, expected: str
) -> None:
    result = accepted(payu(status=value))
    assert (result.provider_status, result.status) == (provider_status, expected)


def test_stripe_provider_status_is_server_txt_only() -> None:
    result = accepted(stripe(server_txt=..., st_code=1))
    assert (result.provider_status, result.status) == (None, "approved")


def test_xml_status() -> None:
    result = accepted(xml("<Tx><Val>1</Val><Stat> 91 ISSUER UNAVAILABLE </Stat></Tx>"), {"id": "m"})
    assert (result.status, result.provider_status) == ("error", "91 ISSUER UNAVAILABLE")
    missing = accepted(xml("<Tx><Val>1</Val></Tx>"), {"id": "m"})
    assert (missing.status, missing.provider_status) == ("unknown", None)


def test_every_result_is_a_known_status() -> None:
    produced = {status.classify(word) for word, _ in WORD_CASES} | {status.classify("x")}
    assert produced == STATUSES
