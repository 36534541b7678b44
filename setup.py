"""Build the native half of clasp-fast.

Every ``src_ext/clasp_fast/_native/<name>.pyx`` becomes the extension module
``clasp_fast._native.<name>``.  The ``.pxd`` files next to them are the C-level
interfaces the modules ``cimport`` from each other (the picows/uvloop split:
declarations in ``.pxd``, implementation in ``.pyx``).
"""
import os
from pathlib import Path

from setuptools import Extension, setup

HERE = Path(__file__).parent
NATIVE = HERE / "src_ext" / "clasp_fast" / "_native"


def extensions():
    from Cython.Build import cythonize

    debug = os.environ.get("CLASP_FAST_DEBUG_BUILD") == "1"
    flags = ["-O0", "-g"] if debug else ["-O3", "-fno-strict-aliasing"]
    exts = [
        Extension(
            f"clasp_fast._native.{pyx.stem}",
            [str(pyx.relative_to(HERE))],
            include_dirs=[str(NATIVE.relative_to(HERE))],
            extra_compile_args=flags + ["-Wno-unused-function", "-Wno-unreachable-code"],
        )
        for pyx in sorted(NATIVE.glob("*.pyx"))
    ]
    return cythonize(
        exts,
        include_path=[str(HERE / "src_ext")],
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "embedsignature": True,
        },
        quiet=True,
    )


setup(ext_modules=extensions())
