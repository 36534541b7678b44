"""Build the native halves of clasp-fast and of its benchmark suite.

* Every ``src_ext/clasp_fast/_native/<name>.pyx`` becomes the extension module
  ``clasp_fast._native.<name>``.  The ``.pxd`` files next to them are the C-level
  interfaces the modules ``cimport`` from each other (the picows/uvloop split:
  declarations in ``.pxd``, implementation in ``.pyx``).
* The benchmark suite lives in ``bench/`` in the repository (``python -m bench`` from the
  repository root) and installs as the package ``clasp_fast_bench`` (console script
  ``clasp-fast-bench``), so that ``pip install .`` puts no top-level ``bench`` into
  site-packages.  Its load generator ``bench/_loadgen.pyx`` becomes
  ``clasp_fast_bench._loadgen`` (it cimports picows and ``clasp_fast._native.wire``).
"""
import os
from pathlib import Path

from setuptools import Extension, find_packages, setup

HERE = Path(__file__).parent
NATIVE = HERE / "src_ext" / "clasp_fast" / "_native"
BENCH = HERE / "bench"
# C libraries some modules link: zlib (permessage-deflate), OpenSSL (wss://; the same
# libssl the ssl module uses, checked at run time by tlsstream.unusable)
LIBRARIES = {"deflate": ["z"], "tlsstream": ["ssl", "crypto"]}


def extensions():
    import Cython
    from Cython.Build import cythonize

    debug = os.environ.get("CLASP_FAST_DEBUG_BUILD") == "1"
    flags = ["-O0", "-g"] if debug else ["-O3", "-fno-strict-aliasing"]
    flags += ["-Wno-unused-function", "-Wno-unreachable-code"]
    include = [str(NATIVE.relative_to(HERE))]
    exts = [
        Extension(f"clasp_fast._native.{pyx.stem}", [str(pyx.relative_to(HERE))],
                  include_dirs=include, extra_compile_args=flags,
                  libraries=LIBRARIES.get(pyx.stem, []))
        for pyx in sorted(NATIVE.glob("*.pyx"))
    ]
    # the bench report names the Cython that compiled the load generator
    exts.append(Extension("clasp_fast_bench._loadgen", [str((BENCH / "_loadgen.pyx").relative_to(HERE))],
                          include_dirs=include, extra_compile_args=flags,
                          define_macros=[("CLASP_FAST_BENCH_CYTHON", f'"{Cython.__version__}"')]))
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


setup(
    packages=find_packages(include=["clasp_fast", "clasp_fast.*"]) + ["clasp_fast_bench"],
    package_dir={"clasp_fast_bench": "bench"},
    # the inspector page and its vendored client (clasp_fast/ui, scripts/vendor_ui.py)
    package_data={"clasp_fast.ui": ["*.html", "*.js", "*.css", "vendor/*.txt", "vendor/*/*", "vendor/*/*/*"]},
    ext_modules=extensions(),
)
