"""verify's accounting of one chunk (pure): matched, missing, not yet due, extra, in both
tables, the --since scope and --skip-processed; and the capped listing."""

from __future__ import annotations

from typing import Any

from streamer.ops.verify import LIST_LIMIT, IdList, Report, merge_chunk

A, B, C, D, E = (f"{n}0000000-0000-0000-0000-000000000000" for n in range(1, 6))


def source(source_id: str, in_scope: bool = True, due: bool = True, processed: bool = False) -> Any:
    return (source_id, in_scope, due, processed)


def tx(source_id: str, in_scope: bool = True) -> Any:
    return (source_id, True, in_scope)


def rej(source_id: str) -> Any:
    return (source_id, False, None)


def merged(targets: list[Any], sources: list[Any]) -> Report:
    report = Report("slot")
    merge_chunk(report, targets, sources)
    return report


def test_matching_sets() -> None:
    report = merged([tx(A), rej(B)], [source(A), source(B)])
    assert report.ok and report.matched == 2 and report.source_rows == 2
    assert (report.target_transactions, report.target_rejected) == (1, 1)


def test_missing_extra_and_duplicated() -> None:
    report = merged([tx(A), rej(A), tx(D)], [source(A), source(B)])
    assert not report.ok
    assert report.missing.ids == [B] and report.extra.ids == [D]
    assert report.duplicated.ids == [A] and report.matched == 1


def test_absent_rows_that_are_not_due_are_pending_not_missing() -> None:
    report = merged([], [source(A, due=False)])
    assert report.ok and report.pending == 1 and report.missing.count == 0


def test_since_scope_applies_to_source_and_normalized_rows() -> None:
    # C: old source row missing from the target; D: old normalized row, source deleted;
    # E: rejected row without a source row (no creation time): still extra.
    report = merged([tx(A), tx(D, in_scope=False), rej(E)], [source(A), source(C, in_scope=False)])
    assert report.source_rows == 1 and report.missing.count == 0
    assert report.extra.ids == [E]


def test_skip_processed() -> None:
    report = merged([], [source(A, processed=True), source(B)])
    assert report.skipped_processed == 1 and report.missing.ids == [B]


def test_listing_is_capped_counting_is_not() -> None:
    found = IdList()
    for n in range(LIST_LIMIT + 5):
        found.add(str(n))
    assert found.count == LIST_LIMIT + 5 and len(found.ids) == LIST_LIMIT


def test_json_and_text_name_the_ids() -> None:
    report = merged([tx(D)], [source(B)])
    data = report.as_json()
    assert data["ok"] is False and data["target_rows"] == 1
    assert data["missing"] == {"count": 1, "ids": [B]} and data["extra"]["ids"] == [D]
    text = "\n".join(report.lines())
    assert B in text and D in text and "MISMATCH" in text
