"""Run the Photo3D batch from this checkout: with the bpy module (no Blender binary needed), or with a Blender
binary that does not have the extension installed.

    .venv/bin/python scripts/photo3d_batch.py PHOTO [PHOTO ...] --out DIR [options]
    blender -b --python-exit-code 1 --python scripts/photo3d_batch.py -- PHOTO [PHOTO ...] --out DIR [options]

Same options and exit codes as ``blender -b -c photo3d ...`` (see ``--help``).
"""

from __future__ import annotations

import importlib
import os
import sys

from extension_loader import EXTENSION, import_checkout_as_extension


def main() -> int:
    import bpy  # noqa: F401  (Blender as a module; the batch runs in its background mode)

    import_checkout_as_extension()
    # Inside a Blender binary, sys.argv holds Blender's own arguments; the batch's follow "--".
    argv = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else sys.argv[1:]
    return importlib.import_module(f"{EXTENSION}.photo3d_addon.batch.run").run(argv)


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # bpy can hang in its exit handlers after rendering with software GL; the work is done and flushed.
    os._exit(code)
