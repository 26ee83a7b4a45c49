"""Build script: the package plus the optional C++ extension ``mrt_engine._C``.

The extension holds host-side helpers (token offset mapping, marker search, the batch
planner). It is optional: if it does not compile, the install still succeeds and
``mrt_engine._native`` falls back to the pure-Python implementations. With
``MRT_ENGINE_REQUIRE_EXT=1`` (CI sets it: .ci/run) a failed build fails the install instead.
"""
import os
import sys

from setuptools import find_packages, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))
REQUIRED = os.environ.get("MRT_ENGINE_REQUIRE_EXT") == "1"


class OptionalBuildExt(build_ext):
    """Compile ``mrt_engine._C`` when possible; fail the install because of it only when
    ``MRT_ENGINE_REQUIRE_EXT=1``."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any compiler failure means "no extension"
            if REQUIRED:
                raise
            print(f"warning: mrt_engine._C not built ({exc}); using the Python fallback", file=sys.stderr)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            if REQUIRED:
                raise
            print(f"warning: {ext.name} not built ({exc}); using the Python fallback", file=sys.stderr)


def extensions():
    sources = sorted(
        os.path.join("csrc", f) for f in os.listdir(os.path.join(ROOT, "csrc")) if f.endswith(".cpp")
    )
    if not sources or os.environ.get("MRT_ENGINE_NO_EXT") == "1":
        if REQUIRED:
            raise RuntimeError("MRT_ENGINE_REQUIRE_EXT=1 but there is nothing to build (no csrc/*.cpp, or "
                               "MRT_ENGINE_NO_EXT=1)")
        return []
    try:
        from pybind11.setup_helpers import Pybind11Extension
    except ImportError:
        if REQUIRED:
            raise
        print("warning: pybind11 missing; mrt_engine._C not built", file=sys.stderr)
        return []
    return [Pybind11Extension("mrt_engine._C", sources, cxx_std=17, extra_compile_args=["-O3"])]


setup(
    packages=find_packages(include=["mrt_engine", "mrt_engine.*"]),
    ext_modules=extensions(),
    cmdclass={"build_ext": OptionalBuildExt},
)
