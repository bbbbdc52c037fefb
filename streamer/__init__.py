"""streamer: Postgres logical-replication consumer for raw payment payloads."""

from __future__ import annotations

__version__ = "0.1.0"
