"""The process entry point exits without interpreter teardown: nothing may be lost."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = """
import logging, sys, threading, time
from streamer import cli

def late_print():
    time.sleep(0.3)
    print("thread done")

def fake_main():
    logging.basicConfig(stream=sys.stderr, format="%(message)s", level=logging.INFO)
    sys.stdout.write("x" * 1_000_000 + "\\n")
    sys.stdout.write("last stdout line\\n")  # small: still in the buffer
    logging.getLogger("t").info("last log line")
    if len(sys.argv) > 1:  # a thread still running: the normal exit must wait for it
        threading.Thread(target=late_print).start()
    return 3

cli.main = fake_main
cli.entry_point()
"""


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # pipes buffer
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_fast_exit_keeps_exit_code_and_flushes_everything() -> None:
    done = run()
    assert done.returncode == 3
    assert done.stdout.endswith("last stdout line\n") and len(done.stdout) > 1_000_000
    assert done.stderr.strip().endswith("last log line")


def test_exit_waits_for_a_thread_still_running() -> None:
    done = run("with-thread")
    assert done.returncode == 3
    assert done.stdout.endswith("thread done\n")


SUCCEEDS = """
import sys
from streamer import cli

def fake_main():
    sys.stdout.write("summary line\\n")  # small: still buffered when main returns
    return 0

cli.main = fake_main
cli.entry_point()
"""


def test_output_that_cannot_be_written_is_not_a_success() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    with open("/dev/full", "w") as full:  # every write fails: ENOSPC
        done = subprocess.run(
            [sys.executable, "-c", SUCCEEDS], check=False, stdout=full, env=env, timeout=60
        )
    assert done.returncode == 120
