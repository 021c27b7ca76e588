"""Import this checkout as Blender imports the installed extension, for scripts that run with the bpy module.

The add-on's imports are relative (``from ..core import ...``), so it only imports as a package; Blender
names an installed extension ``bl_ext.<repository>.<id>``.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
EXTENSION = "bl_ext.user_default.photo3d"


def import_checkout_as_extension(name: str = EXTENSION) -> ModuleType:
    """The repository root imported as the extension package ``name`` (once per process)."""
    if name in sys.modules:
        return sys.modules[name]
    parts = name.split(".")
    for depth in range(1, len(parts)):
        parent = ".".join(parts[:depth])
        if parent not in sys.modules:
            module = importlib.util.module_from_spec(importlib.machinery.ModuleSpec(parent, None, is_package=True))
            module.__path__ = []
            sys.modules[parent] = module
    spec = importlib.util.spec_from_file_location(name, ROOT / "__init__.py", submodule_search_locations=[str(ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
