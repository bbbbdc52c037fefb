"""Compiled twins of the hot pure functions, selected once at import.

The pure-Python modules are the specification; the Cython modules here are an
optimisation of them that must give identical results (tests/unit/test_speedups.py runs
the same differential and property tests against both):

- `_decode`: Insert TupleData → `SourceRow`, and the assembler's run of plain frames;
- `_normalize`: the normalizer's fast path for the common valid shapes, reading the
  payload with `_json` (a strict scanner of ASCII JSON, short strings from `_intern`),
  amounts with `_amounts` and XML blobs with `_xml`;
- `_copy`: the COPY text of a batch; `_copybin`: the binary COPY data of its canonical
  rows;
- `_reader`: the replication stream's frame reads (bound to psycopg's libpq at run time,
  `sources/slot/reader.py`; None in `hot` when only it failed to build).

`hot` gathers them in one namespace for the callers. Which implementation runs:

- `STREAMER_PURE_PYTHON=1` forces the pure twin;
- otherwise the compiled modules are used when they were built (`pip install` builds
  them where a C compiler is found); when they are missing, the pure twin runs and
  `warn_if_pure` logs one warning line at start-up.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from types import ModuleType
from typing import Any, Final

FORCED_PURE: Final = os.environ.get("STREAMER_PURE_PYTHON", "") not in ("", "0")


def _gather() -> ModuleType | None:
    """The compiled functions in one namespace, or None when they are not built."""
    try:
        from streamer._speedups import (  # type: ignore[attr-defined]  # noqa: PLC0415
            _copy,
            _copybin,
            _decode,
            _normalize,
        )
    except ImportError:  # not built: no compiler at install time
        return None
    try:
        from streamer._speedups import _reader  # type: ignore[attr-defined]  # noqa: PLC0415
    except ImportError:  # only this one not built (no <dlfcn.h>): the others still run
        _reader = None

    def bind(pure_normalize: Callable[[Any], Any]) -> None:
        """Hand the compiled modules the pure code they defer to (after its import)."""
        _normalize.bind(pure_normalize)
        _decode.bind()

    namespace = ModuleType("streamer._speedups.hot", "The compiled twins, gathered.")
    namespace.bind = bind  # type: ignore[attr-defined]
    namespace.normalize = _normalize.normalize  # type: ignore[attr-defined]
    namespace.RowBuilder = _decode.RowBuilder  # type: ignore[attr-defined]
    namespace.feed_plain = _decode.feed_plain  # type: ignore[attr-defined]
    namespace.format_rows = _copy.format_rows  # type: ignore[attr-defined]
    namespace.encode_chunks = _copy.encode_chunks  # type: ignore[attr-defined]
    namespace.encode_binary = _copybin.encode_transactions  # type: ignore[attr-defined]
    namespace.reader = _reader  # type: ignore[attr-defined]
    return namespace


hot: ModuleType | None = None if FORCED_PURE else _gather()

IMPLEMENTATION: Final = "accelerated" if hot is not None else "pure-python"


def warn_if_pure() -> None:
    """One warning line at start-up when the compiled modules are missing (not when the
    pure twin was asked for)."""
    if hot is None and not FORCED_PURE:
        logging.getLogger("streamer").warning(
            "compiled speedups not built (no C compiler at install?): running pure Python"
        )
