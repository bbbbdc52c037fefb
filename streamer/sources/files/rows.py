"""One parsed file record to a `SourceRow` or a `Rejection` (pure).

**Identity** (`source_id`): the record's `id` when present (not null, not an empty cell)
and a valid UUID, in canonical lower-case form. An `id` that is present but not a UUID
is a `malformed_record`. Otherwise the id is derived:

    uuid5(RECORD_NAMESPACE, f"{bucket}/{key}\\n{position}\\n{sha256_hex(record bytes)}")

where the record bytes are the JSONL line (without its `\\n`), the CSV row's physical
line(s), the orjson serialization of a JSON array element, or of a Parquet row. So: the
same object read twice gives the same ids; identical content re-uploaded under the same
key (new ETag) gives the same ids; a changed record at the same position gets a new id
and is not silently deduplicated away; a record with an explicit id is stored once
whichever file carries it. Positions are 0-based record indexes (see `formats`).

**Exact money.** orjson parses `25.84` to a float. Re-serializing a float gives back its
literal (by value) when the literal has at most 15 significant digits, no exponent and is
not `-0`; `RISKY_NUMBER` finds every text where that may not hold (a run of 16+ digits
or dots, a digit before `e`/`E`, a `-0` token) and such texts are re-parsed with the
normalizer's exact parser (`json_payload.loads_exact`: `Decimal`s). `dumps_exact` writes
a `Decimal` as the float's text when the float equals it by value, else as its own exact
text; so an element's serialization (hence its derived id) does not depend on which
parser read it, and `0.1000000000000000055` stays exactly that.

**Storable output.** `raw` and `merchant` of a rejection and `data`/`merchant` of a row
go to `jsonb`, which refuses NUL (`\\u0000`). A record whose texts hold one becomes an
`invalid_text` rejection with a sanitized raw; a record that is not JSON at all keeps
`{"malformed_line": "<first 1000 chars>"}` as raw. Details never echo payload values.
"""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final, NamedTuple

import orjson

from streamer.normalize.errors import describe
from streamer.normalize.records import Rejection, SourceRow
from streamer.normalize.text import document_is_storable, is_storable

RECORD_NAMESPACE: Final = uuid.UUID("5b0e6c8e-3f4a-5d1e-9c55-7f1a2b3c4d5e")
"""Namespace of derived record ids; changing it changes every derived id."""
MALFORMED: Final = "malformed_record"
RAW_HEAD_CHARS: Final = 1000
_MAX_UUID_CHARS: Final = 45
_NAMESPACE_BYTES: Final = RECORD_NAMESPACE.bytes
_CANONICAL_UUID: Final = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
RISKY_NUMBER: Final = re.compile(rb"[0-9.]{16}|[:,\[]\s*-?[0-9.]+[eE]|[:,\[]\s*-0(?![0-9.eE])")
"""Texts where orjson's float may not give back a number literal exactly (docstring)."""
_NUMBER_BYTES: Final = bytes.maketrans(b"0123456789.", b"0" * 11)
_EXPONENT: Final = re.compile(rb"[:,\[]\s*-?[0-9.]+[eE]")
_MINUS_ZERO: Final = re.compile(rb"[:,\[]\s*-0(?![0-9.eE])")


def risky_number(text: bytes) -> bool:
    """`RISKY_NUMBER.search(text)`, 2.7x faster (it ran on every JSONL line: 14 of the
    ~45 us a row cost): the 16-char run is a substring test after mapping digits and dots
    to `0` (no other byte is `0`), and the other two branches search apart, which
    Python's engine does faster than their alternation."""
    return (
        b"0000000000000000" in text.translate(_NUMBER_BYTES)
        or _EXPONENT.search(text) is not None
        or (b"-0" in text and _MINUS_ZERO.search(text) is not None)
    )


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """One version of one object; `etag` without the quotes S3 puts around it."""

    bucket: str
    key: str
    etag: str
    size: int


class Record(NamedTuple):
    """One record of a file: its 0-based position and what it became."""

    position: int
    item: SourceRow | Rejection


def derived_id(ref: ObjectRef, position: int, digest: str) -> str:
    """The derived `source_id` of a record without an explicit id (module docstring):
    `uuid.uuid5`, computed without building UUID objects (two a record were a fifth
    of a file record's cost); a unit test checks it equals `uuid.uuid5`."""
    name = f"{ref.bucket}/{ref.key}\n{position}\n{digest}".encode()
    raw = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name, usedforsecurity=False).digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50  # version 5
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def canonical_uuid(value: object) -> str | None:
    """Lower-case canonical text of a UUID given as text or 16 bytes, else None. The
    common spelling (8-4-4-4-12 hex digits) is checked by a regex; anything else goes
    through `uuid.UUID` (braces, no hyphens, `urn:uuid:`)."""
    try:
        if isinstance(value, str) and len(value) <= _MAX_UUID_CHARS:
            if _CANONICAL_UUID.fullmatch(value):
                return value.lower()
            return str(uuid.UUID(value))
        if isinstance(value, bytes) and len(value) == 16:
            return str(uuid.UUID(bytes=value))
    except ValueError:
        return None
    return None


def _default(value: object) -> object:
    """orjson fallback: exact Decimals (see module docstring), bytes as text."""
    if isinstance(value, Decimal) and value.is_finite():
        number = float(value)
        if math.isfinite(number) and Decimal(repr(number)) == value:
            return orjson.Fragment(orjson.dumps(number))
        return orjson.Fragment(str(value).encode())
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(type(value).__name__)


def dumps_exact(value: object) -> str:
    """JSON text of a parsed value; raises `orjson.JSONEncodeError` (e.g. too deep)."""
    return orjson.dumps(value, default=_default).decode()


def storable_json(text: str) -> bool:
    """Whether JSON `text` can be stored as `jsonb` (no NUL, escaped or not)."""
    if not is_storable(text):
        return False
    if "\\u0000" not in text:
        return True
    try:  # rare: the escape may be an escaped backslash followed by "u0000"
        return document_is_storable(orjson.loads(text))
    except orjson.JSONDecodeError:
        return False


def malformed_raw(text: str) -> str:
    """A storable JSON wrapper around the head of an unparsable record."""
    head = text[:RAW_HEAD_CHARS].replace("\x00", "\ufffd")
    head = head.encode("utf-8", "replace").decode("utf-8")  # lone surrogates -> "?"
    return dumps_exact({"malformed_line": head})


def reject(ref: ObjectRef, position: int, digest: str, raw: str, detail: str) -> Record:
    """A `malformed_record` for a record whose text `raw` may not even be JSON."""
    sid = derived_id(ref, position, digest)
    return Record(position, Rejection(sid, "", "null", malformed_raw(raw), MALFORMED, detail))


def _json_field(value: object) -> str | None:
    """`data`/`merchant` as JSON text: a JSON string holding JSON passes through as is (it
    keeps its exact text); anything else is serialized; None for a non-JSON string."""
    if isinstance(value, str):
        try:
            orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
        return value
    return dumps_exact(value)


def _created_at(value: object) -> str | None:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    raise _Bad(f"created_at is not a string: {_kind(value)}")


class _Bad(Exception):
    """A record-level problem; the message is the rejection detail."""


def _kind(value: object) -> str:
    return (
        describe(value) if value is None or isinstance(value, dict | list) else type(value).__name__
    )


def _required(record: dict[str, Any], name: str) -> object:
    value = record.get(name)
    if value is None or value == "":
        raise _Bad(f"record has no {name}")
    return value


def build(ref: ObjectRef, position: int, record: object, digest: str, raw: str) -> Record:
    """The `SourceRow` (or `Rejection`) for one parsed record.

    `record` is a parsed record (dict with `id`, `transactional_id`, `merchant`, `data`,
    `created_at`); `raw` is its JSON text, used as the rejection's raw when storable.
    """
    sid = derived_id(ref, position, digest)
    tid = merchant = ""
    try:
        if not isinstance(record, dict):
            raise _Bad(f"record is not a JSON object: {_kind(record)}")
        tid_value = record.get("transactional_id")
        tid = canonical_uuid(tid_value) or ""  # known early: rejections carry it too
        explicit = record.get("id")
        if explicit is not None and explicit != "":
            canonical = canonical_uuid(explicit)
            if canonical is None:
                raise _Bad(f"id is not a UUID: {_kind(explicit)}")
            sid = canonical
        if not tid:
            _required(record, "transactional_id")
            raise _Bad(f"transactional_id is not a UUID: {_kind(tid_value)}")
        merchant = _json_field(_required(record, "merchant")) or ""
        if not merchant:
            raise _Bad("merchant is a string that is not JSON")
        data = _json_field(_required(record, "data"))
        if data is None:
            raise _Bad("data is a string that is not JSON")
        created_at = _created_at(record.get("created_at"))
    except _Bad as bad:
        detail = str(bad)
    except (orjson.JSONEncodeError, TypeError) as exc:
        detail = f"record cannot be serialized: {str(exc)[:80]}"
    else:
        if storable_json(data) and storable_json(merchant):
            return Record(position, SourceRow(sid, tid, data, merchant, created_at))
        rejection = Rejection(
            sid,
            tid,
            merchant if storable_json(merchant) else "null",
            malformed_raw(data),
            "invalid_text",
            "data or merchant contains NUL",
        )
        return Record(position, rejection)
    merchant = merchant if merchant and storable_json(merchant) else "null"
    raw = raw if storable_json(raw) else malformed_raw(raw)
    return Record(position, Rejection(sid, tid, merchant, raw, MALFORMED, detail))
