"""Run the Photo3D batch with the bpy module, from the project's environment (no Blender binary needed).

    .venv/bin/python scripts/photo3d_batch.py PHOTO [PHOTO ...] --out DIR [options]

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
    return importlib.import_module(f"{EXTENSION}.photo3d_addon.batch.run").main()


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # bpy can hang in its exit handlers after rendering with software GL; the work is done and flushed.
    os._exit(code)
