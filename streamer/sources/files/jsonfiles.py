"""`.json` and `.jsonl`/`.ndjson` objects (pure).

`.json` is read whole (at most `max_json_bytes`; a larger document fails the file) and
parsed with orjson, which is also the validity gate: not JSON, invalid UTF-8 or nesting
deeper than 1024 fails the file. The top level is an array of records (positions are
array indexes) or a single record (position 0); anything else fails the file.

JSONL is streamed line by line; blank (white-space only) lines are skipped and get no
position, so positions are indexes among the non-blank lines. A line that is not JSON
(or not UTF-8) or is longer than `MAX_RECORD_BYTES` is a `malformed_record`; the file goes
on. Numbers are kept exact as `rows` explains.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Final

import orjson

from streamer.normalize import json_payload
from streamer.sources.files.errors import UnreadableFile
from streamer.sources.files.rows import (
    ObjectRef,
    Record,
    build,
    dumps_exact,
    reject,
    risky_number,
)
from streamer.sources.files.streams import LongLine, Read, iter_lines, read_capped

MAX_RECORD_BYTES: Final = 1024 * 1024
"""Longest JSONL line or CSV row; a longer one is one `malformed_record`."""


def read_json(read: Read, ref: ObjectRef, *, max_json_bytes: int, start: int) -> Iterator[Record]:
    """Records of a whole-document `.json` object, from position `start` on."""
    raw = read_capped(read, max_json_bytes, "the JSON document")
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UnreadableFile(f"not a valid JSON document: {str(exc)[:120]}") from None
    if risky_number(raw):
        try:
            document = json_payload.loads_exact(raw.decode())
        except json_payload.InvalidJson as exc:
            raise UnreadableFile(f"not a valid JSON document: {exc}") from None
    del raw
    if isinstance(document, dict):
        elements: list[object] = [document]
    elif isinstance(document, list):
        elements = document
    else:
        raise UnreadableFile(f"top level is a {type(document).__name__}, not an array or object")
    del document
    for position in range(start, len(elements)):
        element = elements[position]
        elements[position] = None  # let each record go once it is read
        try:
            text = dumps_exact(element)
        except (orjson.JSONEncodeError, TypeError):
            yield reject(ref, position, "", "", "record nests too deeply to serialize")
            continue
        digest = hashlib.sha256(text.encode()).hexdigest()
        yield build(ref, position, element, digest, text)


def read_jsonl(read: Read, ref: ObjectRef, *, start: int) -> Iterator[Record]:
    """Records of a JSON Lines object, one per non-blank line, from position `start` on."""
    position = -1
    for line in iter_lines(read, MAX_RECORD_BYTES):
        if isinstance(line, LongLine):
            position += 1
            if position >= start:
                detail = f"line longer than {MAX_RECORD_BYTES} bytes"
                text = line.head.decode("utf-8", "replace")
                yield reject(ref, position, line.digest, text, detail)
            continue
        if not line.strip():
            continue
        position += 1
        if position >= start:
            yield _line_record(ref, position, line)


def _line_record(ref: ObjectRef, position: int, line: bytes) -> Record:
    digest = hashlib.sha256(line).hexdigest()
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return _unparsable(ref, position, digest, line)
    if risky_number(line):
        try:
            record = json_payload.loads_exact(line.decode())
        except json_payload.InvalidJson:
            text = line.decode("utf-8", "replace")
            return reject(ref, position, digest, text, "line nests too deeply")
    return build(ref, position, record, digest, line.decode())


def _unparsable(ref: ObjectRef, position: int, digest: str, line: bytes) -> Record:
    try:
        text = line.decode()
    except UnicodeDecodeError:
        return reject(
            ref, position, digest, line.decode("utf-8", "replace"), "line is not valid UTF-8"
        )
    return reject(ref, position, digest, text, "line is not valid JSON")
