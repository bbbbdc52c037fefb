"""The launcher: the command line's imports run without cyclic collection, and what they
made is frozen; collection is on again when the command runs."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
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


# The real launcher and command line: say whether collection is on when psycopg loads,
# and when the command runs.
REAL = """
import gc, sys

def hook(event, args):
    if event == "import" and args[0] == "psycopg":
        print("psycopg imported, collection on:", gc.isenabled(), file=sys.stderr)

sys.addaudithook(hook)
import streamer.launch
streamer.launch.main()
"""


def run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_psycopg_loads_with_collection_off_and_the_command_still_runs() -> None:
    done = run(REAL, "--version")
    assert done.returncode == 0, done.stderr
    assert "psycopg imported, collection on: False" in done.stderr
    assert done.stdout.startswith("streamer ")


def test_collection_is_on_and_the_imports_are_frozen_when_the_command_runs() -> None:
    done = run(SCRIPT)
    assert done.returncode == 7, done.stderr
    enabled, frozen = done.stdout.split()
    assert enabled == "True"
    assert int(frozen) > 10_000  # psycopg and the rest of the command line's objects


def test_a_failed_import_leaves_collection_on() -> None:
    done = run(FAILING_IMPORT)
    assert done.stdout.strip() == "True", done.stderr
