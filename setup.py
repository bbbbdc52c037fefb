"""Build of the optional compiled twins (`streamer/_speedups/*.pyx`, Cython).

Everything else is in pyproject.toml. Where no C compiler (or no Cython) is found the
extension is skipped with a warning and the install still succeeds: `streamer` then runs
the pure-Python twin and says so in one line at start-up.
"""

from __future__ import annotations

import os
from typing import Any

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """build_ext that turns a failed compile into a warning."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler at all (DistutilsPlatformError, ...)
            print(f"warning: streamer speedups not built ({exc}); pure Python will run")

    def build_extension(self, ext: Any) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # CCompilerError, missing headers, ...
            print(f"warning: streamer speedups not built ({exc}); pure Python will run")


MODULES = (
    "_xml",
    "_intern",
    "_json",
    "_amounts",
    "_normalize",
    "_decode",
    "_copy",
    "_copybin",
    "_reader",
)
"""The compiled modules (`streamer/_speedups/*.pyx`; their shared declarations in `*.pxd`)."""


def libraries(name: str) -> list[str]:
    """`_reader` finds libpq with dlopen, in libdl before glibc 2.34 (libc since; never
    link libpq itself: see `_reader.pyx`)."""
    if name != "_reader":
        return []
    try:
        libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (AttributeError, ValueError, OSError):  # not glibc (or not POSIX)
        return []
    major, _, minor = libc.removeprefix("glibc ").partition(".")
    if major.isdigit() and minor.isdigit() and (int(major), int(minor)) < (2, 34):
        return ["dl"]
    return []


def extensions() -> list[Extension]:
    try:
        from Cython.Build import cythonize  # noqa: PLC0415  (optional: no Cython, no speedups)
    except ImportError:
        print("warning: Cython not found: streamer speedups not built")
        return []
    exts = [
        Extension(
            f"streamer._speedups.{name}",
            [f"streamer/_speedups/{name}.pyx"],
            libraries=libraries(name),
        )
        for name in MODULES
    ]
    return list(cythonize(exts, quiet=True, compiler_directives={"language_level": "3"}))


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
