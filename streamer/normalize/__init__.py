"""Pure normalizer: raw payment payloads (JSON text) to canonical rows or rejections.

No I/O and no database or metrics imports: everything here is a function of its input,
so it is unit-testable and safe to run in worker threads/processes.
"""

from __future__ import annotations

from streamer.normalize.pipeline import normalize
from streamer.normalize.records import (
    REJECTION_REASONS,
    STATUSES,
    Canonical,
    Rejection,
    SourceRow,
)
from streamer.normalize.registry import KNOWN_PROVIDERS

__all__ = [
    "KNOWN_PROVIDERS",
    "REJECTION_REASONS",
    "STATUSES",
    "Canonical",
    "Rejection",
    "SourceRow",
    "normalize",
]
