"""Re-creates clasp_fast/ui/vendor/ from the npm packages the interop tests install.

    (cd tests/interop/js && npm install) && python scripts/vendor_ui.py

Copies, unchanged, the ES module builds the inspector page loads through its import map:
``@clasp-to/core`` (dist/index.mjs) and its one dependency ``@msgpack/msgpack``
(dist.esm/**/*.mjs), each with its licence, and writes vendor/VERSIONS.txt.  The versions
are the ones tests/interop/js/package.json pins, so the page runs the client the
interop tests check.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = ROOT / "tests" / "interop" / "js" / "node_modules"
VENDOR = ROOT / "clasp_fast" / "ui" / "vendor"

# the npm package has no licence file; package.json says "MIT", author "LumenCanvas"
MIT = """MIT License (from the "license" field of @clasp-to/core's package.json; the npm
package ships no licence file)

Copyright (c) LumenCanvas

Permission is hereby granted, free of charge, to any person obtaining a copy of this
software and associated documentation files (the "Software"), to deal in the Software
without restriction, including without limitation the rights to use, copy, modify, merge,
publish, distribute, sublicense, and/or sell copies of the Software, and to permit persons
to whom the Software is furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or
substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED,
INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR
PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE
FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR
OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER
DEALINGS IN THE SOFTWARE.
"""


def main() -> int:
    core = NODE_MODULES / "@clasp-to" / "core"
    msgpack = NODE_MODULES / "@msgpack" / "msgpack"
    if not core.is_dir() or not msgpack.is_dir():
        print(f"vendor_ui: {NODE_MODULES} has no @clasp-to/core or @msgpack/msgpack: run "
              f"npm install in tests/interop/js first", file=sys.stderr)
        return 2
    if VENDOR.exists():
        shutil.rmtree(VENDOR)
    (VENDOR / "clasp-core").mkdir(parents=True)
    (VENDOR / "msgpack").mkdir()
    shutil.copy(core / "dist" / "index.mjs", VENDOR / "clasp-core" / "index.mjs")
    (VENDOR / "clasp-core" / "LICENSE").write_text(MIT)
    esm = msgpack / "dist.esm"
    for f in sorted(esm.rglob("*.mjs")):
        target = VENDOR / "msgpack" / f.relative_to(esm)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(f, target)
    shutil.copy(msgpack / "LICENSE", VENDOR / "msgpack" / "LICENSE")
    versions = [f"{json.loads((p / 'package.json').read_text())['name']} "
                f"{json.loads((p / 'package.json').read_text())['version']}" for p in (core, msgpack)]
    (VENDOR / "VERSIONS.txt").write_text("\n".join(versions) + "\n")
    print("vendored:", ", ".join(versions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
