"""The hostile corpus through the real stream: inserted as raw JSON text between valid rows,
every row lands exactly once in the table its expectation names, and the stream goes on."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from streamer.ops.synthetic import SEED_ROWS
from tests.data.hostile_payloads import CORPUS, STORABLE, Case
from tests.integration.conftest import Lab

FIELDS = (
    "merchant_id",
    "merchant_name",
    "merchant_country",
    "provider",
    "source_format",
    "amount",
    "currency",
    "status",
    "provider_status",
    "country",
)
SUMMARY = re.compile(r"rows normalized (\d+), rows rejected (\d+)")


def summary(lab: Lab) -> tuple[int, int]:
    result = lab.cli("run", "--once")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-2000:]
    assert "Traceback" not in output
    match = SUMMARY.search(result.stdout)
    assert match, result.stdout
    return int(match[1]), int(match[2])


def accepted_rows(lab: Lab) -> dict[str, dict[str, Any]]:
    columns = ", ".join(FIELDS)
    rows = lab.sql(lab.target_url, f"SELECT source_id::text, {columns} FROM transactions")
    return {row[0]: dict(zip(FIELDS, row[1:], strict=True)) for row in rows}


def rejected_rows(lab: Lab) -> dict[str, tuple[str, str]]:
    """source_id -> (reason, raw as text)."""
    rows = lab.sql(
        lab.target_url, "SELECT source_id::text, reason, raw::text FROM transactions_rejected"
    )
    return {row[0]: (row[1], row[2]) for row in rows}


def test_unstorable_flag_matches_postgres(lab: Lab) -> None:
    """The corpus flag is honest: Postgres refuses exactly the entries marked unstorable."""
    with psycopg.connect(lab.source_url, autocommit=True) as conn:
        for case in CORPUS:
            if case.storable:
                conn.execute("SELECT %s::jsonb, %s::jsonb", (case.data, case.merchant))
                continue
            with pytest.raises((psycopg.Error, UnicodeEncodeError)):
                conn.execute("SELECT %s::jsonb, %s::jsonb", (case.data, case.merchant))


def test_hostile_corpus_between_valid_rows(lab: Lab) -> None:
    assert lab.cli("init").returncode == 0
    rows: list[tuple[Any, Any]] = []
    kinds: list[Case | None] = []  # None: a valid seed row
    for index, entry in enumerate(STORABLE):
        rows += [SEED_ROWS[index % len(SEED_ROWS)], (entry.data, entry.merchant)]
        kinds += [None, entry]
    rows.append(SEED_ROWS[0])
    kinds.append(None)
    ids = lab.insert(rows, per_txn=50)  # a few source transactions, poison in each

    normalized, rejected = summary(lab)

    accepted, refused = accepted_rows(lab), rejected_rows(lab)
    assert not set(accepted) & set(refused)
    assert set(accepted) | set(refused) == set(ids)  # nothing missing, nothing extra
    assert (normalized, rejected) == (len(accepted), len(refused))
    for source_id, case in zip(ids, kinds, strict=True):
        if case is None:
            assert source_id in accepted, refused.get(source_id, ("?",))[0]
            continue
        expect = case.stream_expect
        if not expect.accepted:
            assert source_id in refused, f"{case.name}: accepted, expected {expect.reason}"
            assert refused[source_id][0] == expect.reason, (case.name, refused[source_id][0])
            continue
        assert source_id in accepted, f"{case.name}: rejected {refused[source_id][0]}"
        stored = accepted[source_id]
        for key, wanted in expect.fields.items():
            if key == "amount":
                assert stored[key] == Decimal(str(wanted)), (case.name, stored[key])
            else:  # exact text: control characters, bidi overrides, "\N", 1 MB
                assert stored[key] == wanted, f"{case.name}.{key}: {str(stored[key])[:80]!r}"

    # the rejected rows keep the payload as received, for replay
    raw_by_id = dict(lab.sql(lab.source_url, "SELECT id::text, data::text FROM raw_transactions"))
    assert [sid for sid, (_, raw) in refused.items() if raw != raw_by_id[sid]] == []

    # the stream never stopped: nothing is redelivered, and later rows still flow
    assert summary(lab) == (0, 0)
    later = lab.insert(list(SEED_ROWS))
    assert summary(lab) == (len(SEED_ROWS), 0)
    assert set(later) <= set(lab.target_ids())
    assert len(lab.target_ids()) == len(accepted) + len(SEED_ROWS)
