"""Blender tier: the model manager in the preferences downloads from a server on 127.0.0.1, honours online
access, and its messages name the button to press (never a command-line flag)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

bpy = pytest.importorskip("bpy", reason="the Blender tier needs the bpy wheel (scripts/setup.sh installs it)")

from core.models.catalog import CATALOG, MIRROR_ENV  # noqa: E402
from tests.blender_support import EXTENSION, addon_module  # noqa: E402
from tests.download_server import FileServer  # noqa: E402

pytestmark = pytest.mark.blender


def _payload(path: str) -> bytes:
    return hashlib.sha256(path.encode()).digest() * 2000  # 64 kB, different per file


@pytest.fixture
def mirror(photo3d_extension, tmp_path, monkeypatch):
    files = {item.path: _payload(item.path) for model in CATALOG for item in model.files}
    server = FileServer(files)
    monkeypatch.setenv(MIRROR_ENV, server.url)
    prefs = bpy.context.preferences.addons[EXTENSION].preferences
    system = bpy.context.preferences.system
    saved = prefs.models_dir, system.use_online_access
    prefs.models_dir = str(tmp_path / "models")
    yield server, Path(prefs.models_dir)
    prefs.models_dir, system.use_online_access = saved
    server.stop()


def test_download_button_fetches_and_verifies_a_model(mirror):
    server, models = mirror
    bpy.context.preferences.system.use_online_access = True
    assert bpy.ops.photo3d.download_models(key="depth-small") == {"FINISHED"}
    (item,) = next(m for m in CATALOG if m.key == "depth-small").files
    assert (models / item.path).read_bytes() == _payload(item.path)
    assert not list(models.rglob("*.part"))
    assert any(method == "HEAD" for method, _, _ in server.requests)  # the published checksum was read


def test_download_all_fetches_every_missing_default(mirror):
    server, models = mirror
    bpy.context.preferences.system.use_online_access = True
    assert bpy.ops.photo3d.download_models() == {"FINISHED"}
    wanted = [item.path for model in CATALOG if model.default for item in model.files]
    assert sorted(str(p.relative_to(models)) for p in models.rglob("*") if p.is_file()) == sorted(wanted)


def test_offline_the_button_says_which_files_to_put_where(mirror):
    server, models = mirror
    bpy.context.preferences.system.use_online_access = False
    assert not bpy.app.online_access
    with pytest.raises(RuntimeError, match=r"(?s)Online access is off.*save it as .*model\.onnx"):
        bpy.ops.photo3d.download_models(key="depth-small")
    assert server.requests == [] and not models.exists()


def test_missing_model_messages_name_the_button_and_every_model(mirror):
    _, models = mirror
    downloads = addon_module("photo3d_addon.worker.downloads")
    defaults = [model for model in CATALOG if model.default]
    online = downloads.missing_models_message(defaults, str(models), online=True)
    assert f"'{downloads.DOWNLOAD_BUTTON}'" in online and "--" not in online
    assert all(model.title in online for model in defaults) and online.startswith(f"{len(defaults)} model(s)")
    offline = downloads.missing_models_message(defaults, str(models), online=False)
    assert "save it as" in offline and "System > Network" in offline and "--online" not in offline


def test_the_default_models_folder_is_the_extensions_user_folder(photo3d_extension):
    preferences = addon_module("photo3d_addon.ui.preferences")
    prefs = bpy.context.preferences.addons[EXTENSION].preferences
    saved = prefs.models_dir
    prefs.models_dir = ""
    try:
        folder = preferences.resolved_models_dir(prefs)
        assert folder == bpy.utils.extension_path_user(EXTENSION, path="models")
    finally:
        prefs.models_dir = saved
