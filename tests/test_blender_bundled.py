"""Blender tier, bundled worker: the built zip for this platform carries its wheels, Blender's extension
machinery extracts them, and with no Worker Python configured the import runs on Blender's own Python.

The session's ``photo3d_extension`` fixture installs the zip and sets ``worker_python`` to this Python (the
torch worker); these tests clear it, and ``PHOTO3D_WORKER_PYTHON``, for their own case and restore both.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

bpy = pytest.importorskip("bpy", reason="the Blender tier needs the bpy wheel (scripts/setup.sh installs it)")

from tests.blender_support import EXTENSION, addon_module, reset_scene  # noqa: E402
from tests.scenes import write_motorcycle  # noqa: E402

pytestmark = pytest.mark.blender


@pytest.fixture
def no_worker_python(photo3d_extension, monkeypatch):
    """The preferences and the environment as a user's fresh install has them: no Worker Python anywhere."""
    prefs = bpy.context.preferences.addons[EXTENSION].preferences
    client = addon_module("photo3d_addon.worker.client")
    saved = prefs.worker_python
    monkeypatch.delenv("PHOTO3D_WORKER_PYTHON", raising=False)
    client.stop_shared_worker()  # the torch worker other tests started
    prefs.worker_python = ""
    reset_scene()
    try:
        yield prefs
    finally:
        client.stop_shared_worker()
        prefs.worker_python = saved
        addon_module("photo3d_addon.ui.preferences").resolve_worker(prefs)  # forget the bundled launch
        reset_scene()


@pytest.fixture(scope="module")
def motorcycle(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("bundled photos")
    return write_motorcycle(folder / "motorcycle.png", folder / "depth.npy")


def _site_packages() -> Path:
    environment = addon_module("photo3d_addon.worker.environment")
    return Path(bpy.utils.user_resource("EXTENSIONS", path=environment.EXTENSION_SITE_PACKAGES))


def test_installed_zip_carried_the_wheels_and_blender_extracted_them(photo3d_extension):
    root = Path(photo3d_extension.__file__).parent
    manifest = (root / "blender_manifest.toml").read_text(encoding="utf-8")
    assert "[build.generated]" in manifest and "./wheels/onnxruntime-" in manifest
    wheels = sorted(p.name for p in (root / "wheels").glob("*.whl"))
    assert any(w.startswith("opencv_python_headless-4.11.0.86-") for w in wheels), wheels
    assert not any(w.startswith(("numpy-", "torch-", "transformers-")) for w in wheels), wheels
    site = _site_packages()
    for package in ("cv2", "scipy", "skimage", "PIL", "triangle", "onnxruntime", "tifffile", "imageio"):
        assert (site / package).is_dir(), f"Blender did not extract {package} into {site}"
    assert not (site / "numpy").exists() and not (site / "torch").exists()
    for wheel in (root / "wheels").glob("*.whl"):
        with zipfile.ZipFile(wheel) as zf:
            assert zf.testzip() is None, wheel.name


def test_preferences_choose_the_bundled_worker_without_worker_python(no_worker_python):
    preferences = addon_module("photo3d_addon.ui.preferences")
    environment = addon_module("photo3d_addon.worker.environment")
    launch = preferences.resolve_worker(no_worker_python)
    assert launch is not None and launch.bundled and launch.origin == environment.BUNDLED
    assert launch.python == sys.executable  # Blender's own Python (with the bpy wheel: this one)
    assert launch.python_args == tuple(bpy.app.python_args)
    assert launch.site_packages == (str(_site_packages()),)
    assert environment.describe_worker(launch).startswith("Bundled worker")
    # A configured Python still wins: the torch worker stays the advanced choice.
    no_worker_python.worker_python = sys.executable
    assert preferences.resolve_worker(no_worker_python).origin == "preferences"
    no_worker_python.worker_python = ""


def test_import_runs_on_the_bundled_worker(no_worker_python, motorcycle):
    image, depth = motorcycle
    result = bpy.ops.photo3d.import_image(
        filepath=str(image),
        depth_source="FILE",
        depth_file=str(depth),
        segmentation=False,
        inpaint="TELEA",
        quality="DRAFT",
    )
    assert result == {"FINISHED"}
    collections = [c for c in bpy.context.scene.collection.children_recursive if "photo3d_source" in c]
    assert len(collections) == 1 and len(collections[0].all_objects) > 2

    client = addon_module("photo3d_addon.worker.client")
    worker = client._shared
    assert worker is not None and worker.alive and worker.launch.bundled
    site = str(_site_packages())
    command = list(worker.process.args)
    assert command[: 1 + len(bpy.app.python_args)] == [sys.executable, *bpy.app.python_args]
    assert command[-2:] == [site, "worker"] and "-c" in command
    if sys.platform == "linux":
        # The worker's OpenCV is the extracted wheel's, not this environment's own copy.
        maps = Path(f"/proc/{worker.process.pid}/maps").read_text(encoding="utf-8", errors="replace")
        assert f"{site}/cv2/" in maps or f"{site}/opencv_python_headless.libs/" in maps


class _Layout:
    """Records the labels a draw function writes (a UILayout stand-in: background mode draws nothing)."""

    def __init__(self) -> None:
        self.labels: list[str] = []
        self.enabled = True

    def box(self) -> _Layout:
        return self

    row = box

    def label(self, text: str = "", icon: str = "NONE") -> None:
        self.labels.append(text)

    def prop(self, *args, **kwargs) -> None:
        pass

    def operator(self, *args, **kwargs) -> SimpleNamespace:
        return SimpleNamespace()


class _Drawn:
    """The preferences with a recording layout, for ``Photo3DPreferences.draw``."""

    def __init__(self, prefs) -> None:
        self.layout = _Layout()
        self._prefs = prefs

    def __getattr__(self, name: str):
        return getattr(self._prefs, name)


def test_worker_box_says_which_worker_runs(no_worker_python):
    drawn = _Drawn(no_worker_python)
    type(no_worker_python).draw(drawn, bpy.context)
    assert any(text.startswith("Bundled worker (no torch): Blender's Python") for text in drawn.layout.labels)
    no_worker_python.worker_python = sys.executable
    drawn = _Drawn(no_worker_python)
    type(no_worker_python).draw(drawn, bpy.context)
    assert f"Torch worker: {sys.executable} (preferences)" in drawn.layout.labels
    assert "Bundled worker: available (clear Worker Python to use it)" in drawn.layout.labels


def test_zero_setup_first_import_names_the_button_then_downloads_and_runs_the_onnx_models(
    no_worker_python, motorcycle, tmp_path, tmp_path_factory, monkeypatch
):
    """A fresh install: the default import (depth network and segmentation on) says which models are missing
    and which button fetches them; the button downloads them (from a server on 127.0.0.1 standing in for the
    hub, serving tiny ONNX exports of the real architectures); the same import then runs them on the bundled
    worker through ONNX Runtime."""
    from core.models.catalog import CATALOG, MIRROR_ENV
    from tests.download_server import FileServer
    from tests.onnx_models import catalog_files, onnx_models

    files = catalog_files(onnx_models(tmp_path_factory))
    served = {relative: path.read_bytes() for relative, path in files.items() if not relative.startswith("lama/")}
    assert set(served) == {item.path for model in CATALOG if model.default for item in model.files}
    server = FileServer(served)
    monkeypatch.setenv(MIRROR_ENV, server.url)
    system = bpy.context.preferences.system
    saved = no_worker_python.models_dir, system.use_online_access
    no_worker_python.models_dir = str(tmp_path / "models")
    system.use_online_access = True
    image, _ = motorcycle
    try:
        with pytest.raises(RuntimeError, match=r"2 model\(s\) missing: .*Download Models"):
            bpy.ops.photo3d.import_image(filepath=str(image), segmentation=True, quality="DRAFT")
        assert server.requests == []  # the import itself never downloads
        assert bpy.ops.photo3d.download_models() == {"FINISHED"}
        result = bpy.ops.photo3d.import_image(
            filepath=str(image), depth_source="MODEL", segmentation=True, inpaint="TELEA", quality="DRAFT"
        )
        assert result == {"FINISHED"}
        worker = addon_module("photo3d_addon.worker.client")._shared
        assert worker is not None and worker.launch.bundled
        collections = [c for c in bpy.context.scene.collection.children_recursive if "photo3d_source" in c]
        assert len(collections) == 1 and len(collections[0].all_objects) > 2
        from core.package import read_package

        manifest = read_package(collections[0]["photo3d_package"]).manifest
        models = tmp_path / "models"
        assert manifest.depth.source == str(models / "depth-anything-v2-small" / "model.onnx")
    finally:
        no_worker_python.models_dir, system.use_online_access = saved
        server.stop()
