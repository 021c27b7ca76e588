"""Novel-view benchmark on real stereo pairs (``python -m scripts.novel_view``, or scripts/bench_novel_view.py).

Modules by role: ``pairs`` (stereo pairs, their depth and right camera), ``metrics`` (masks, warping, scores),
``references`` (numpy baselines), ``render`` (pipeline and Blender), ``report`` (targets, tables, pictures)
and ``cli`` (methods, the run, the command line). Only ``render`` touches bpy, and only when it runs.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
"""The repository root."""


def load_script_module(name: str) -> ModuleType:
    """``scripts/<name>.py`` as a module; the scripts are files, not a package, so they load by path."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
