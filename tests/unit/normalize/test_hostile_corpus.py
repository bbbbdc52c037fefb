"""The hostile-payload corpus (`tests/data/hostile_payloads.py`) through the pure normalizer:
every entry gets exactly its expected outcome, in bounded time and memory."""

from __future__ import annotations

import time
import tracemalloc
from decimal import Decimal

import pytest

from streamer.normalize import REJECTION_REASONS, Canonical, Rejection, SourceRow, normalize
from streamer.normalize.merchant import parse_merchant
from streamer.normalize.pipeline import INTERNAL_ERROR_PREFIX
from tests.data.hostile_payloads import CORPUS, STORABLE, Case, Outcome

MAX_SECONDS = 1.0
MAX_PEAK_BYTES = 50 * 1024 * 1024
REQUIRED_CATEGORIES = {
    "xml_dtd",
    "xml_malformed",
    "deep_nesting",
    "data_not_object",
    "merchant_not_object",
    "amount",
    "scale",
    "country",
    "currency",
    "text",
    "huge",
    "nul_surrogate",
}


def row(case: Case) -> SourceRow:
    return SourceRow("src-hostile", "tx-hostile", case.data, case.merchant, None)


def short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 120 else f"{text[:120]}... ({len(text)} chars)"


def assert_outcome(result: Canonical | Rejection, expect: Outcome, name: str) -> None:
    """`result` matches `expect`; messages never print whole megabyte payloads."""
    if expect.accepted:
        assert isinstance(result, Canonical), f"{name}: rejected {short(result[4:])}"
        for key, wanted in expect.fields.items():
            got = getattr(result, key)
            if key == "amount":
                assert isinstance(got, Decimal) and got == Decimal(str(wanted)), (name, got)
            else:
                assert got == wanted, f"{name}.{key}: {short(got)} != {short(wanted)}"
        return
    assert isinstance(result, Rejection), f"{name}: accepted, expected {expect.reason}"
    assert result.reason == expect.reason, f"{name}: {result.reason} ({result.detail})"


def test_corpus_shape() -> None:
    names = [case.name for case in CORPUS]
    assert len(CORPUS) >= 30
    assert len(set(names)) == len(names)
    assert {case.category for case in CORPUS} >= REQUIRED_CATEGORIES
    for case in CORPUS:
        assert case.expect.accepted or case.expect.reason in REJECTION_REASONS, case
        assert case.expect.accepted or not case.expect.fields, case
    # both outcomes and every normalizer reason are represented, storable and not
    reasons = {case.expect.reason for case in STORABLE}
    assert None in reasons
    # target_refused is set by the sink, malformed_record by the file source
    assert reasons >= REJECTION_REASONS - {"target_refused", "invalid_text", "malformed_record"}
    assert "invalid_text" in {case.expect.reason for case in CORPUS if not case.storable}
    # the bombs are real: entity declarations whose expansion would dwarf the memory bound
    for name in ("billion_laughs", "quadratic_blowup", "external_entity_file"):
        assert "<!ENTITY" in next(case.data for case in CORPUS if case.name == name)


@pytest.mark.parametrize("case", CORPUS, ids=[case.name for case in CORPUS])
def test_expected_outcome(case: Case) -> None:
    parse_merchant.cache_clear()
    result = normalize(row(case))
    assert_outcome(result, case.expect, case.name)
    if isinstance(result, Rejection):
        assert not result.detail.startswith(INTERNAL_ERROR_PREFIX), result.detail
        assert len(result.detail) < 400  # offending values are echoed in bounded slices
        assert (result.raw, result.merchant) == (case.data, case.merchant)  # kept verbatim
    else:
        assert result.raw == case.data


@pytest.mark.parametrize("case", CORPUS, ids=[case.name for case in CORPUS])
def test_bounded_time_and_memory(case: Case) -> None:
    parse_merchant.cache_clear()  # measure the real parse, not a cache hit
    started = time.perf_counter()
    normalize(row(case))
    elapsed = time.perf_counter() - started
    parse_merchant.cache_clear()
    tracemalloc.start()
    try:
        normalize(row(case))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < MAX_SECONDS, f"{case.name}: {elapsed:.3f} s"
    assert peak < MAX_PEAK_BYTES, f"{case.name}: peak {peak / 1e6:.1f} MB"
