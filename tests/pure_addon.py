"""The add-on's bpy-free modules, imported from this checkout in plain Python (no Blender needed).

The checkout is imported as a package of its own name, so the add-on's relative imports (``...core``)
resolve, and it never collides with the extension the Blender tier installs as ``bl_ext.user_default.photo3d``.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "photo3d_checkout"


def addon(name: str) -> ModuleType:
    """A module of the add-on by its path below ``photo3d_addon``, e.g. ``motion.paths``."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from extension_loader import import_checkout_as_extension
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    import_checkout_as_extension(PACKAGE)
    return importlib.import_module(f"{PACKAGE}.photo3d_addon.{name}")


def core(name: str) -> ModuleType:
    """A core module as the add-on sees it (``photo3d_checkout.core.<name>``): the same classes its code uses."""
    addon("motion")  # imports the checkout package once
    return importlib.import_module(f"{PACKAGE}.core.{name}")
