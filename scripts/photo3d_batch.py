"""Run the Photo3D batch with the bpy module, from the project's environment (no Blender binary needed).

    .venv/bin/python scripts/photo3d_batch.py PHOTO [PHOTO ...] --out DIR [options]

Same options and exit codes as ``blender -b -c photo3d ...`` (see ``--help``).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "bl_ext.user_default.photo3d"


def _import_extension():
    """Import the checkout as Blender imports the installed extension (its imports are relative)."""
    for parent in ("bl_ext", "bl_ext.user_default"):
        if parent not in sys.modules:
            module = importlib.util.module_from_spec(importlib.machinery.ModuleSpec(parent, None, is_package=True))
            module.__path__ = []
            sys.modules[parent] = module
    spec = importlib.util.spec_from_file_location(PACKAGE, ROOT / "__init__.py", submodule_search_locations=[str(ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = module
    spec.loader.exec_module(module)
    return importlib.import_module(f"{PACKAGE}.photo3d_addon.batch")


def main() -> int:
    import bpy  # noqa: F401  (Blender as a module; the batch runs in its background mode)

    return _import_extension().main()


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # bpy can hang in its exit handlers after rendering with software GL; the work is done and flushed.
    import os

    os._exit(code)
