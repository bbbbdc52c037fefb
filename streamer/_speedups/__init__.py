"""Compiled twins of the hot pure functions, selected once at import.

The pure-Python modules are the specification; `_hot` (Cython, `_hot.pyx`) is an
optimisation of them that must give identical results (tests/unit/test_speedups.py runs
the same differential and property tests against both). Which one runs:

- `STREAMER_PURE_PYTHON=1` forces the pure twin;
- otherwise the compiled module is used when it was built (`pip install` builds it where
  a C compiler is found); when it is missing, the pure twin runs and `warn_if_pure`
  logs one warning line at start-up.
"""

from __future__ import annotations

import logging
import os
from types import ModuleType
from typing import Final

FORCED_PURE: Final = os.environ.get("STREAMER_PURE_PYTHON", "") not in ("", "0")

hot: ModuleType | None = None
if not FORCED_PURE:
    try:
        from streamer._speedups import _hot as hot  # type: ignore[attr-defined,no-redef]
    except ImportError:  # not built: no compiler at install time
        hot = None

IMPLEMENTATION: Final = "accelerated" if hot is not None else "pure-python"


def warn_if_pure() -> None:
    """One warning line at start-up when the compiled module is missing (not when the
    pure twin was asked for)."""
    if hot is None and not FORCED_PURE:
        logging.getLogger("streamer").warning(
            "compiled speedups not built (no C compiler at install?): running pure Python"
        )
