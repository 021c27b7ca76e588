"""Blender tier (bpy wheel): the extension package registers and unregisters cleanly."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
bpy = pytest.importorskip("bpy", reason="the Blender tier needs the bpy wheel (scripts/setup.sh installs it)")


def _import_extension(name: str = "bl_ext.user_default.photo3d"):
    """Import the repository root as Blender imports an installed extension package."""
    for parent in ("bl_ext", "bl_ext.user_default"):
        if parent not in sys.modules:
            module = importlib.util.module_from_spec(importlib.machinery.ModuleSpec(parent, None, is_package=True))
            module.__path__ = []
            sys.modules[parent] = module
    spec = importlib.util.spec_from_file_location(name, ROOT / "__init__.py", submodule_search_locations=[str(ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_extension_registers_preferences_and_reads_packages(tmp_path):
    from core.options import PipelineOptions
    from core.pipeline import convert_image
    from tests.scenes import square_scene

    extension = _import_extension()
    extension.register()
    try:
        prefs = bpy.types.AddonPreferences.bl_rna_get_subclass_py("Photo3DPreferences")
        assert prefs is not None and prefs.bl_idname == "bl_ext.user_default.photo3d"
        # The extension reads packages with the same bpy-free reader the worker validates with.
        image, depth = square_scene().write(tmp_path / "in")
        options = PipelineOptions.from_dict({"depth": {"depth_file": str(depth)}, "segment": {"model": "none"}})
        written = convert_image(image, tmp_path / "pkg", options).package_path
        reader = importlib.import_module("bl_ext.user_default.photo3d.core.package")
        package = reader.read_package(written)
        assert len(package.layers) == 2
    finally:
        extension.unregister()
    assert bpy.types.AddonPreferences.bl_rna_get_subclass_py("Photo3DPreferences") is None
