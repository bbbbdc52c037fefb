"""The progress bar of `run --mode files --once`: on stderr when it is a terminal (a pty
here), never on stdout, which keeps its one summary line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.integration.files import test_files_run as base
from tests.integration.files.test_files_run import LINE, RUN_ONCE, WORKTREE, FilesLab
from tests.unit.files.helpers import RECORDS, jsonl_file

pytestmark = pytest.mark.integration
lab = base.lab  # the fixture: a fresh target database and bucket


def test_a_bar_on_a_terminal_and_one_line_on_stdout(lab: FilesLab) -> None:
    for n in range(3):
        lab.put(f"2024-12-13/part_{n}.jsonl", jsonl_file(RECORDS))
    parent, child = os.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "streamer", *RUN_ONCE],
            env=lab.env(),
            cwd=WORKTREE,
            stdout=subprocess.PIPE,
            stderr=child,
            text=True,
            timeout=120,
            check=False,
        )
        os.close(child)
        child = -1
        terminal = b""
        while True:
            try:
                chunk = os.read(parent, 65536)
            except OSError:  # EIO: the child side is closed and drained
                break
            if not chunk:
                break
            terminal += chunk
    finally:
        if child >= 0:
            os.close(child)
        os.close(parent)
    assert done.returncode == 0, terminal.decode(errors="replace")
    lines = done.stdout.splitlines()
    assert len(lines) == 1 and LINE.match(lines[0]), done.stdout
    assert b"files: 3/3 files" in terminal, terminal


def test_no_bar_off_a_terminal(lab: FilesLab) -> None:
    lab.put("2024-12-13/part.jsonl", jsonl_file(RECORDS))
    done = lab.cli(*RUN_ONCE)
    assert done.returncode == 0 and "files:" not in done.stderr, done.stderr
    assert len(done.stdout.splitlines()) == 1
