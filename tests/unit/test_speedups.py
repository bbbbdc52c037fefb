"""Differential tests: the compiled twins (`streamer._speedups`) against the pure code.

Every test runs for `pure` and `accelerated` (skipped only where the extension is not
built; `pip install -e .` builds it, so CI runs both). Outputs must be identical: source
rows and decode errors, normalized records and rejection reasons/details, COPY bytes.
The hypothesis tests with `FUZZ` settings are also the fuzz run of the compiled decoder
and normalizer: untrusted bytes must come back as the pure code's result or exception,
never a crash. The suite runs 400 examples each; a long fuzz run:
`STREAMER_FUZZ_EXAMPLES=10000 pytest tests/unit/test_speedups.py -k fuzz`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg._copy_base import format_row_text
from psycopg.adapt import Transformer

from streamer import _speedups
from streamer.normalize import Canonical, Rejection, SourceRow
from streamer.normalize.pipeline import pure_normalize
from streamer.ops.synthetic import PayloadFactory
from streamer.pgoutput.messages import Relation, decode_message
from streamer.pgoutput.relations import _row_builder
from streamer.sink.copy_text import encode_batch
from streamer.sources.batching import BatchBuilder, TxnChunk
from tests.data.hostile_payloads import CORPUS
from tests.support import frames as encode

from .normalize.test_properties import (
    any_char,
    dumps,
    json_values,
    merchants,
    targeted,
    xml_contents,
)
from .pgoutput.test_messages import captured

hot = _speedups.hot
IMPLEMENTATIONS = [
    pytest.param(None, id="pure"),
    pytest.param(
        hot,
        id="accelerated",
        marks=pytest.mark.skipif(hot is None, reason="compiled speedups not built"),
    ),
]
needs_hot = pytest.mark.skipif(hot is None, reason="compiled speedups not built")
FUZZ = settings(
    max_examples=int(os.environ.get("STREAMER_FUZZ_EXAMPLES", "400")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
REPO = Path(__file__).resolve().parents[2]


def normalizer(speedups: Any) -> Callable[[SourceRow], Canonical | Rejection]:
    return pure_normalize if speedups is None else speedups.normalize  # type: ignore[no-any-return]


def exact(value: object) -> object:
    """A comparable form that tells Decimal('1.0') from Decimal('1.00') and types apart."""
    if isinstance(value, tuple):
        return (type(value).__name__, *(exact(v) for v in value))
    return (type(value).__name__, str(value) if isinstance(value, Decimal) else value)


def same_normalize(row: SourceRow) -> Canonical | Rejection:
    expected = pure_normalize(row)
    if hot is not None:
        assert exact(hot.normalize(row)) == exact(expected)
    return expected


# -- normalize ----------------------------------------------------------------------------
@pytest.mark.parametrize("speedups", IMPLEMENTATIONS)
def test_hostile_corpus(speedups: Any) -> None:
    """Every hostile entry: the implementation gives the pure result, exactly."""
    normalize = normalizer(speedups)
    for case in CORPUS:
        row = SourceRow("src-hostile", "tx-hostile", case.data, case.merchant, None)
        assert exact(normalize(row)) == exact(pure_normalize(row)), case.name
        result = normalize(row)
        assert isinstance(result, Canonical) == case.expect.accepted, case.name
        if not case.expect.accepted:
            assert isinstance(result, Rejection)
            assert result.reason == case.expect.reason, case.name


@pytest.mark.parametrize("speedups", IMPLEMENTATIONS)
def test_synthetic_mix(speedups: Any) -> None:
    """The benchmarks' payload mix (all three families, 3 % bad rows), as jsonb and as
    compact text: the same records, and the fast path does accept the valid rows."""
    normalize = normalizer(speedups)
    factory = PayloadFactory(seed=11, bad_ratio=0.05)
    accepted = 0
    for i, (data, merchant) in enumerate(factory.many(3000)):
        text = orjson.dumps(data).decode() if i % 2 else dumps(data)
        row = SourceRow(f"s{i}", f"t{i}", text, dumps(merchant), "2026-01-01 00:00:00+00")
        result = normalize(row)
        assert exact(result) == exact(pure_normalize(row))
        accepted += isinstance(result, Canonical)
    assert accepted > 2700


@FUZZ
@given(data=json_values, merchant=json_values)
def test_fuzz_arbitrary_json(data: object, merchant: object) -> None:
    same_normalize(SourceRow("s", "t", dumps(data), dumps(merchant), None))
    same_normalize(SourceRow("s", "t", dumps({"amt": 1}), dumps(merchant), None))


@FUZZ
@given(data=st.text(any_char, max_size=80), merchant=st.text(any_char, max_size=40))
def test_fuzz_arbitrary_text(data: str, merchant: str) -> None:
    same_normalize(SourceRow("s", "t", data, merchant, None))


@FUZZ
@given(data=targeted, merchant=merchants, created=st.none() | st.text(any_char, max_size=8))
def test_fuzz_json_families(data: dict[str, object], merchant: object, created: str) -> None:
    for text in (dumps(data), json.dumps(data, separators=(",", ":"))):
        same_normalize(SourceRow("s", "t", text, dumps(merchant), created))


@FUZZ
@given(content=xml_contents, merchant=merchants, extra=targeted)
def test_fuzz_xml_blobs(content: str, merchant: object, extra: dict[str, object]) -> None:
    same_normalize(
        SourceRow("s", "t", dumps({"type": "XML_BLOB", "content": content}), dumps(merchant), None)
    )
    same_normalize(
        SourceRow(
            "s",
            "t",
            dumps({**extra, "type": "XML_BLOB", "content": content}),
            dumps(merchant),
            None,
        )
    )


xml_children = st.lists(
    st.tuples(
        st.sampled_from(["MerchID", "Org", "Val", "Stat", "Cur", "Currency", "Provider", "X-1"]),
        st.one_of(
            st.sampled_from(["129.97", " CL ", "APPROVED", "usd", "0", "1.000", "\n7\t", ""]),
            st.text(st.characters(codec="utf-8"), max_size=6),
        ),
        st.sampled_from(["", " ", "\n", "\r\n", "x"]),
    ),
    max_size=6,
)


@FUZZ
@given(children=xml_children, tail=st.sampled_from(["", " ", "\n", "x", "<Tx/>"]))
def test_fuzz_xml_fast_path_shapes(children: list[tuple[str, str, str]], tail: str) -> None:
    """Documents close to the compiled XML subset, on both sides of its edges."""
    body = "".join(f"{gap}<{tag}>{text}</{tag}>" for tag, text, gap in children)
    content = f"<Tx>{body}</Tx>{tail}"
    merchant = dumps({"id": "m-1", "country": "CO"})
    same_normalize(
        SourceRow("s", "t", dumps({"type": "XML_BLOB", "content": content}), merchant, None)
    )


# -- decoding -----------------------------------------------------------------------------
def relations_and_inserts() -> tuple[list[Relation], list[bytes]]:
    relations, inserts = [], []
    for _, data in captured():
        message = decode_message(data)
        if isinstance(message, Relation) and message.name == "raw_transactions":
            relations.append(message)
        elif data[:1] == b"I":
            inserts.append(data)
    seeded = decode_message(
        encode.relation(1, "public", "raw_transactions", encode.SEED_SOURCE_COLUMNS)
    )
    assert isinstance(seeded, Relation)
    relations.append(seeded)
    values = ["id-1", '{"amt": 1}', '{"id": "m"}', "tid", None, "f", None]
    inserts.append(encode.insert(1, values))
    inserts.append(encode.insert(1, ["\u00e9\U0001f600", "{}", "{}", "", "2026", None, "t"]))
    return relations, inserts


def outcome(build: Callable[[bytes, int], SourceRow], message: bytes, base: int) -> object:
    try:
        return ("row", type(build(message, base)).__name__, tuple(build(message, base)))
    except Exception as exc:  # compared as type (and text for our own errors)
        text = str(exc) if type(exc).__module__.startswith("streamer") else ""
        return ("error", type(exc).__name__, text)


@pytest.mark.parametrize("speedups", IMPLEMENTATIONS)
def test_captured_inserts(speedups: Any) -> None:
    relations, inserts = relations_and_inserts()
    rows = 0
    for relation in relations:
        build, spec = _row_builder(relation, speedups), _row_builder(relation, None)
        for message in inserts:
            frame = encode.xlog_data(message, 0)
            for data, base in ((message, 0), (frame, len(frame) - len(message))):
                got = outcome(build, data, base)
                assert got == outcome(spec, data, base)
                rows += got[0] == "row"  # others: another table's layout, same error
    assert rows >= 2 * len(inserts)


@needs_hot
@FUZZ
@given(
    pick=st.integers(min_value=0),
    cut=st.integers(min_value=0, max_value=400),
    flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), max_size=4),
    tail=st.binary(max_size=8),
)
def test_fuzz_decoder(pick: int, cut: int, flips: list[tuple[int, int]], tail: bytes) -> None:
    """Truncated, bit-flipped and extended Insert messages: the compiled decoder returns
    the same row or raises the same error as the pure one."""
    relations, inserts = relations_and_inserts()
    message = bytearray(inserts[pick % len(inserts)])
    for position, value in flips:
        message[position % len(message)] = value
    data = bytes(message[: max(len(message) - cut, 0)]) + tail
    relation = relations[pick % len(relations)]
    got = outcome(_row_builder(relation, hot), data, 0)
    assert got == outcome(_row_builder(relation, None), data, 0)


@needs_hot
@FUZZ
@given(data=st.binary(max_size=64))
def test_fuzz_decoder_random_bytes(data: bytes) -> None:
    relation = relations_and_inserts()[0][-1]
    message = b"I\x00\x00\x00\x01N\x00\x07" + data
    for raw in (data, message):
        assert outcome(_row_builder(relation, hot), raw, 0) == outcome(
            _row_builder(relation, None), raw, 0
        )


# -- COPY text ----------------------------------------------------------------------------
copy_values = st.one_of(
    st.none(),
    st.text(any_char, max_size=12),
    st.sampled_from(["\\", "\b\t\n\v\f\r", "a\\nb", "\x00", "\ud800", "\x7f"]),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.booleans(),
    st.decimals(),
    st.floats(),
)


def psycopg_text(rows: list[tuple[Any, ...]], tail: tuple[Any, ...]) -> object:
    out = bytearray()
    tx = Transformer()
    try:
        for row in rows:
            format_row_text(row + tail, tx, out)
    except Exception as exc:
        return ("error", type(exc).__name__)
    return bytes(out)


def compiled_text(rows: list[tuple[Any, ...]], tail: tuple[Any, ...]) -> object:
    out = bytearray(b"")
    try:
        assert hot is not None
        hot.format_rows(rows, tail, out, format_row_text, Transformer())
    except Exception as exc:
        return ("error", type(exc).__name__)
    return bytes(out)


@needs_hot
@FUZZ
@given(
    rows=st.lists(st.lists(copy_values, min_size=1, max_size=5).map(tuple), max_size=4),
    tail=st.lists(copy_values, max_size=2).map(tuple),
)
def test_fuzz_copy_text(rows: list[tuple[Any, ...]], tail: tuple[Any, ...]) -> None:
    assert compiled_text(rows, tail) == psycopg_text(rows, tail)


@pytest.mark.parametrize("speedups", IMPLEMENTATIONS)
def test_encode_batch(speedups: Any) -> None:
    """Whole batches of the synthetic mix (rejections included): the same COPY bytes."""
    builder = BatchBuilder(10_000, 1 << 30, 1.0, normalizer=pure_normalize)
    factory = PayloadFactory(seed=3, bad_ratio=0.1)
    for txn in range(40):
        commit_us = 820_454_400_000_000 + txn * 1_000_003 if txn % 9 else -(10**16) - txn
        builder.begin(commit_us, 0.0)
        for i in range(txn % 7 + 1):
            data, merchant = factory.one()
            builder.row(
                SourceRow(f"s{txn}-{i}", f"t{txn}\t{i}", dumps(data), dumps(merchant), None)
            )
        builder.commit(0x1000000 + txn * 64 if txn % 11 else (1 << 64) - 1 - txn)
    batch = builder.take(0.0)
    assert encode_batch(batch, speedups) == encode_batch(batch, None)


@needs_hot
def test_compiled_records_hash_like_tuples() -> None:
    """Records the compiled code allocates itself hash and compare as the pure ones."""
    assert hot is not None
    data, merchant = PayloadFactory(seed=5, bad_ratio=0).one()
    row = SourceRow("s", "t", dumps(data), dumps(merchant), None)
    record = hot.normalize(row)
    assert isinstance(record, Canonical)
    assert record == pure_normalize(row)
    assert hash(record) == hash(tuple(record)) == hash(pure_normalize(row))
    built = hot.RowBuilder((0, 2, 3, 1, 4, -1, -1), 5)
    source = built(encode.insert(1, ["a", "{}", "{}", "b", None, "f", None]), 0)
    assert hash(source) == hash(tuple(source))


@needs_hot
def test_an_unexpected_chunk_layout_falls_back_to_the_pure_loop() -> None:
    """A TxnChunk the compiled run cannot build (here, a field without a plain default)
    leaves the whole run to the pure loop instead of writing slots it does not know."""
    code = """
import dataclasses
from streamer.sources import batching
from streamer.sources.batching import TxnChunk
fields = [(f.name, f.type, f) for f in dataclasses.fields(TxnChunk)]
fields.insert(1, ("tags", dict, dataclasses.field(default_factory=dict)))
batching.TxnChunk = dataclasses.make_dataclass("TxnChunk", fields, slots=True)
from tests.unit.test_speedups import assembled, backlog_frames
frames = backlog_frames([3, 1, 2], 4)
assert assembled(frames, 0, None, True) == assembled(frames, 0, None, False)
from streamer._speedups import _decode
print(_decode.chunk_layout_known())
"""
    assert run_python(code) == "False"
    from streamer._speedups import _decode  # noqa: PLC0415 (built only with a compiler)

    assert _decode.chunk_layout_known()


@pytest.mark.parametrize("speedups", IMPLEMENTATIONS)
def test_encode_batch_rows_psycopg_formats(speedups: Any) -> None:
    """A row the compiled formatter hands to psycopg (a value type it does not write
    itself) still gets its transaction's commit time and LSN: the same COPY bytes."""
    builder = BatchBuilder(10_000, 1 << 30, 1.0, normalizer=pure_normalize)
    factory = PayloadFactory(seed=8, bad_ratio=0)
    builder.begin(820_454_400_000_000, 0.0)
    data, merchant = factory.one()
    builder.row(SourceRow("s1", "t1", dumps(data), dumps(merchant), None))
    builder.commit(0x1000040)
    chunk = builder._done[0]
    record = chunk.canonical[0]
    chunk.canonical.append(record._replace(source_id="s2", processing_ms=1.5))
    chunk.rejected.append(Rejection("s3", "t3", "{}", "{}", "invalid_amount", 2.5))
    batch = builder.take(0.0)
    assert encode_batch(batch, speedups) == encode_batch(batch, None)
    assert b"\t1.5\t" in encode_batch(batch, None)[0]  # type: ignore[index]


# -- selection ----------------------------------------------------------------------------
def run_python(code: str, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "STREAMER_PURE_PYTHON"}
    environ.update(env, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-c", code],
        env=environ,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_pure_python_is_forced_by_the_environment() -> None:
    code = "from streamer import _speedups; print(_speedups.IMPLEMENTATION)"
    assert run_python(code, STREAMER_PURE_PYTHON="1") == "pure-python"
    built = importlib.util.find_spec("streamer._speedups._decode") is not None
    expected = "accelerated" if built else "pure-python"
    assert run_python(code) == expected


def test_version_names_the_implementation() -> None:
    code = "from streamer.cli import main; main(['--version'])"
    environ = {k: v for k, v in os.environ.items() if k != "STREAMER_PURE_PYTHON"}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env={**environ, "PYTHONPATH": str(REPO), "STREAMER_PURE_PYTHON": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.stdout.strip().endswith("pure-python")


# -- the assembler's compiled run of Begin / Insert / Commit ------------------------------
def assembled(
    frames: list[bytes], skip_before: int, stop_lsn: int | None, compiled: bool
) -> object:
    """Everything the assembler leaves behind after the frames, in reads of 7."""
    from streamer.pgoutput.relations import RelationCache  # noqa: PLC0415
    from streamer.sources.slot import assembler as module  # noqa: PLC0415

    saved = module.hot
    module.hot = module.hot if compiled else None
    try:
        builder = BatchBuilder(10_000, 1 << 30, 1.0, normalizer=pure_normalize)
        asm = module.TransactionAssembler(
            RelationCache("public", "raw_transactions"), builder, skip_before, stop_lsn
        )
        error: object = None
        try:
            for start in range(0, len(frames), 7):
                asm.feed([memoryview(f) for f in frames[start : start + 7]], 1.0)
        except Exception as exc:
            error = (type(exc).__name__, str(exc), getattr(exc, "lsn", None))
        chunks = [every_field(c) for c in builder._done]
        open_chunk = None if builder._open is None else every_field(builder._open)
        state = (asm.received, asm.keepalive_end, asm.idle_end, asm.reached_end, asm.skipping)
        sizes = (builder._done_rows, builder._done_bytes, builder._open_bytes, builder._oldest)
        return error, chunks, open_chunk, sizes, state
    finally:
        module.hot = saved


def every_field(chunk: TxnChunk) -> list[object]:
    """Every field of a chunk (records in their exact form), types included: the
    compiled run builds chunks without calling the dataclass."""
    values: list[object] = [type(chunk).__name__]
    for item in dataclasses.fields(chunk):
        value = getattr(chunk, item.name)
        if isinstance(value, list):
            values.append([exact(r) for r in value])
        else:
            values.append((type(value).__name__, value))
    return values


def backlog_frames(per_txn: list[int], seed: int) -> list[bytes]:
    factory = PayloadFactory(seed=seed, bad_ratio=0.1)
    out = [
        encode.xlog_data(
            encode.relation(9, "public", "raw_transactions", encode.SEED_SOURCE_COLUMNS), 0
        )
    ]
    out.append(
        encode.xlog_data(encode.relation(10, "public", "other", encode.SEED_SOURCE_COLUMNS), 0)
    )
    lsn = 0x1000
    for t, count in enumerate(per_txn):
        out.append(encode.xlog_data(encode.begin(lsn + 100 * count, 1000 + t, t), lsn))
        for k in range(count):
            data, merchant = factory.one()
            rel = 10 if k == 2 else 9
            values = [f"id{t}-{k}", dumps(data), dumps(merchant), f"tid{k}", None, "f", None]
            out.append(encode.xlog_data(encode.insert(rel, values), lsn))
            lsn += 100
        out.append(encode.xlog_data(encode.commit(lsn, lsn + 40, 1000 + t), lsn))
        lsn += 64
        if t % 3 == 1:
            out.append(encode.keepalive(lsn + 7))
    return out


@needs_hot
@FUZZ
@given(
    per_txn=st.lists(st.integers(0, 5), min_size=1, max_size=8),
    seed=st.integers(0, 1000),
    skip=st.integers(0, 0x1800),
    stop=st.none() | st.integers(0x1000, 0x2000),
    damage=st.none() | st.tuples(st.integers(0), st.integers(0), st.integers(0, 255)),
)
def test_fuzz_assembler(
    per_txn: list[int], seed: int, skip: int, stop: int | None, damage: tuple[int, int, int] | None
) -> None:
    """The compiled run of plain frames leaves the assembler and the batch exactly as the
    pure loop does: rows, sizes, positions, skip/stop decisions, errors and their LSN."""
    frames = backlog_frames(per_txn, seed)
    if damage is not None:
        which, position, value = damage
        frame = bytearray(frames[which % len(frames)])
        frame[position % len(frame)] = value
        frames[which % len(frames)] = bytes(frame[: max(len(frame) - value % 5, 1)])
    assert assembled(frames, skip, stop, True) == assembled(frames, skip, stop, False)
