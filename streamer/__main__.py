"""`python -m streamer`."""

from __future__ import annotations

from streamer.cli import entry_point

entry_point()
