"""The process entry point: the launcher loads the command line without cyclic collection
and freezes what it made; the exit skips interpreter teardown, and nothing may be lost."""

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


def run(*args: str, script: str = SCRIPT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # pipes buffer
    return subprocess.run(
        [sys.executable, "-c", script, *args],
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


LAUNCH = """
import gc, sys
import streamer.cli as cli
import streamer.launch as launch

seen = {}
def fake_entry_point():
    seen["enabled"] = gc.isenabled()
    seen["frozen"] = gc.get_freeze_count()
    print(seen["enabled"], seen["frozen"])
    sys.exit(7)

cli.entry_point = fake_entry_point
launch.main()
"""

FAILING_IMPORT = """
import gc, sys
sys.modules["streamer.cli"] = None  # the import inside main fails
import streamer.launch as launch
try:
    launch.main()
except ImportError:
    print(gc.isenabled())
"""


# The real launcher and command line: say whether collection is on when psycopg loads.
REAL = """
import gc, sys

def hook(event, args):
    if event == "import" and args[0] == "psycopg":
        print("psycopg imported, collection on:", gc.isenabled(), file=sys.stderr)

sys.addaudithook(hook)
import streamer.launch
streamer.launch.main()
"""


def test_psycopg_loads_with_collection_off_and_the_command_still_runs() -> None:
    done = run("--version", script=REAL)
    assert done.returncode == 0, done.stderr
    assert "psycopg imported, collection on: False" in done.stderr
    assert done.stdout.startswith("streamer ")


def test_collection_is_on_and_the_imports_are_frozen_when_the_command_runs() -> None:
    done = run(script=LAUNCH)
    assert done.returncode == 7, done.stderr
    enabled, frozen = done.stdout.split()
    assert enabled == "True"
    assert int(frozen) > 10_000  # psycopg and the rest of the command line's objects


def test_a_failed_import_leaves_collection_on() -> None:
    done = run(script=FAILING_IMPORT)
    assert done.stdout.strip() == "True", done.stderr
