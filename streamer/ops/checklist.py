"""One line of the `streamer check` checklist, and the one-value query the checks use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

Conn = psycopg.Connection[Any]


@dataclass(frozen=True)
class Result:
    name: str
    status: str  # ok | warn | fail
    detail: str
    fix: str = ""

    def line(self) -> str:
        mark = {"ok": "[ ok ]", "warn": "[warn]", "fail": "[FAIL]"}[self.status]
        tail = f" → {self.fix}" if self.fix and self.status != "ok" else ""
        return f"{mark} {self.name}: {self.detail}{tail}"


def one(conn: Conn, query: str, params: Any = None) -> Any:
    row = conn.execute(query, params).fetchone()
    return row[0] if row else None
