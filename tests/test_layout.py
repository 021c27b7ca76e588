"""The layout's promises, checked: the bpy-free modules import with bpy blocked, no module but
``core/camera.py`` projects, no module outside ``core/package/`` parses a manifest, the add-on never imports
torch, and every room is where docs/ARCHITECTURE.md says."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ADDON = ROOT / "photo3d_addon"

# Everything under these imports without Blender: whole rooms, and the pure module of each other room.
BPY_FREE = (
    "photo3d_addon",
    "photo3d_addon.worker",
    "photo3d_addon.worker.client",
    "photo3d_addon.worker.environment",
    "photo3d_addon.worker.job",
    "photo3d_addon.worker.task",
    "photo3d_addon.worker.downloads",
    "photo3d_addon.importing",
    "photo3d_addon.importing.choices",
    "photo3d_addon.importing.service",
    "photo3d_addon.scene",
    "photo3d_addon.scene.placement",
    "photo3d_addon.motion",
    "photo3d_addon.motion.paths",
    "photo3d_addon.effects",
    "photo3d_addon.effects.params",
    "photo3d_addon.export",
    "photo3d_addon.render",
    "photo3d_addon.ui",
    "photo3d_addon.batch",
)
BLENDER_MODULES = ("bpy", "bpy_extras", "mathutils", "gpu", "blf", "aud")


def _module_file(name: str) -> Path:
    path = ROOT.joinpath(*name.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def _imports(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports, anywhere in the file (functions included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_every_add_on_module_is_in_a_room():
    loose = sorted(p.name for p in ADDON.glob("*.py") if p.name not in ("__init__.py", "registration.py"))
    assert loose == []
    rooms = sorted(p.name for p in ADDON.iterdir() if p.is_dir() and (p / "__init__.py").is_file())
    assert rooms == ["batch", "effects", "export", "importing", "motion", "render", "scene", "ui", "worker"]


@pytest.mark.parametrize("name", BPY_FREE)
def test_bpy_free_modules_import_nothing_from_blender(name):
    assert not _imports(_module_file(name)) & set(BLENDER_MODULES), name


def test_bpy_free_modules_import_with_bpy_blocked():
    """In a fresh interpreter where ``import bpy`` (and Blender's other modules) fail, every bpy-free module
    imports, and none of them pulls in torch."""
    code = (
        "import importlib, sys\n"
        f"for name in {BLENDER_MODULES!r}:\n"
        "    sys.modules[name] = None  # any import of it raises ImportError\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from tests.pure_addon import PACKAGE, addon\n"
        "addon('motion')\n"
        f"for name in {BPY_FREE!r}:\n"
        "    importlib.import_module(PACKAGE + '.' + name)\n"
        "assert 'torch' not in sys.modules, 'the add-on imported torch'\n"
        "print('imported', len(" + repr(BPY_FREE) + "))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"imported {len(BPY_FREE)}" in result.stdout


def test_the_add_on_never_imports_torch():
    heavy = {"torch", "transformers", "cv2", "segment_anything"}
    for path in sorted(ADDON.rglob("*.py")):
        assert not _imports(path) & heavy, path.relative_to(ROOT)


def _code_files() -> list[Path]:
    return sorted(p for folder in ("core", "photo3d_addon", "scripts") for p in (ROOT / folder).rglob("*.py"))


# The shapes of a pinhole projection: a principal point subtracted, a focal length times a coordinate over a
# depth, or anything over a focal length (unprojection, field of view, frame size at a depth).
_PROJECTION = re.compile(
    r"-\s*[\w.]*\bc[xy]\b"
    r"|focal\w*\s*\*(?!=)[^\n]*/"
    r"|/\s*\(?\s*(?:float\()?\s*(?:[\d.]+\s*\*\s*)?[\w.]*focal"
)
# Stereo geometry is not projection: depth from disparity (Z = f B / d) in the benchmark's pair loader.
_STEREO = "baseline"


def test_no_module_but_core_camera_projects():
    offenders = []
    for path in _code_files():
        if path == ROOT / "core" / "camera.py":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if _PROJECTION.search(code) and _STEREO not in code:
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


# Tools that write hostile packages on purpose edit manifests as raw JSON: they make input, they consume none.
_HOSTILE_INPUT_TOOLS = ("fuzz_package.py", "hostile_resources.py")


def test_no_module_outside_core_package_parses_a_manifest():
    """Only ``core/package/`` turns manifest JSON into values; everyone else takes the typed ``Manifest``."""
    offenders = []
    for path in _code_files():
        if path.name in _HOSTILE_INPUT_TOOLS:
            continue
        if ROOT / "core" / "package" in path.parents:
            continue
        text = path.read_text(encoding="utf-8")
        for number, line in enumerate(text.splitlines(), 1):
            if "manifest.json" in line and re.search(r"json\.loads?\(|read_text|open\(", line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
            if re.search(r"\bparse_manifest\(", line) and "def parse_manifest" not in line:
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_one_version():
    """The extension, the pipeline and the project state the same version."""
    import tomllib

    from core import __version__

    manifest = tomllib.loads((ROOT / "blender_manifest.toml").read_text(encoding="utf-8"))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert manifest["version"] == project["project"]["version"] == __version__
