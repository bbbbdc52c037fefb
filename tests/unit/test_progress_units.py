"""Progress off a terminal: a files run's output does not change (no bar, no log)."""

from __future__ import annotations

import io
import logging

import pytest

from streamer.runtime import progress as progress_module
from streamer.runtime.progress import Progress


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_without_logging_says_nothing(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(progress_module, "LOG_EVERY_S", 0.0)
    stream = io.StringIO()
    with caplog.at_level(logging.INFO):
        bar = Progress("files", 3, stream, unit="files", log_off_tty=False)
        bar.update(1)
        bar.finish()
    assert stream.getvalue() == "" and caplog.records == []


def test_off_a_terminal_the_backfill_still_logs(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(progress_module, "LOG_EVERY_S", 0.0)
    with caplog.at_level(logging.INFO):
        bar = Progress("backfill", 10, io.StringIO())
        bar.update(5)
    assert "backfill: 5/10 rows" in caplog.text


def test_on_a_terminal_a_bar_in_the_unit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress_module, "DRAW_EVERY_S", 0.0)
    stream = Tty()
    bar = Progress("files", 4, stream, unit="files", log_off_tty=False)
    bar.update(2)
    bar.finish()
    text = stream.getvalue()
    assert text.startswith("\r[###############---------------] files: 2/4 files, ")
    assert "files/s" in text and text.endswith("\n")
