"""Choosing and starting the bundled worker, in plain Python: the search order, the availability check, the
isolated command line and environment, and callers that name only the interpreter's path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pure_addon import addon

client = addon("worker.client")
environment = addon("worker.environment")


def _blender(tmp_path: Path, packages: tuple[str, ...] = environment.BUNDLED_IMPORTS) -> object:
    """A fake Blender: this Python as its executable and a wheels folder holding empty ``packages``."""
    site = tmp_path / "extensions" / environment.EXTENSION_SITE_PACKAGES
    for name in packages:
        (site / name).mkdir(parents=True)
        (site / name / "__init__.py").write_text("")
    return environment.BlenderPython(sys.executable, ("-I",), str(site))


@pytest.fixture(autouse=True)
def _no_other_python(monkeypatch, tmp_path):
    """No PHOTO3D_WORKER_PYTHON, and an extension folder without the checkout's .venv."""
    monkeypatch.delenv("PHOTO3D_WORKER_PYTHON", raising=False)
    monkeypatch.setattr(environment, "EXTENSION_ROOT", tmp_path / "extension")


def test_bundled_worker_is_the_default_but_a_configured_or_managed_python_wins(tmp_path, monkeypatch):
    blender = _blender(tmp_path)
    launch = environment.find_worker("", tmp_path / "managed", blender)
    assert launch.bundled and launch.origin == environment.BUNDLED and launch.python == sys.executable
    assert launch.site_packages == (blender.site_packages,) and launch.python_args == ("-I",)
    assert environment.find_worker_python("", None, blender) == (environment.BUNDLED, Path(sys.executable))

    managed = environment.venv_python(tmp_path / "managed")
    managed.parent.mkdir(parents=True)
    managed.write_text("")
    assert environment.find_worker("", tmp_path / "managed", blender).origin == "managed environment"
    monkeypatch.setenv("PHOTO3D_WORKER_PYTHON", sys.executable)
    assert environment.find_worker("", tmp_path / "managed", blender).origin == "PHOTO3D_WORKER_PYTHON"
    configured = environment.find_worker("/no/python", tmp_path / "managed", blender)
    assert (configured.origin, configured.python, configured.bundled) == ("preferences", "/no/python", False)
    # Without Blender's values (the batch run outside Blender) there is no bundled worker.
    monkeypatch.delenv("PHOTO3D_WORKER_PYTHON")
    assert environment.find_worker("", tmp_path / "nothing", None) is None


def test_bundled_worker_is_skipped_with_a_reason_when_its_packages_are_missing(tmp_path):
    blender = _blender(tmp_path, packages=("cv2", "PIL"))
    problem = environment.bundled_problem(blender, search_path=[])
    assert "numpy" in problem and "scipy" in problem and "onnxruntime" in problem and "cv2" not in problem
    assert environment.find_worker("", tmp_path / "managed", blender, search_path=[]) is None
    gone = environment.BlenderPython(str(tmp_path / "no-python"), ("-I",), blender.site_packages)
    assert "was not found" in environment.bundled_problem(gone)


def test_bundled_worker_needs_the_macos_its_wheels_were_built_for(tmp_path, monkeypatch):
    blender = _blender(tmp_path)
    monkeypatch.setattr(environment.sys, "platform", "darwin")
    assert "macOS 13.0 or later (this is 12.7.4)" in environment.bundled_problem(blender, mac_version="12.7.4")
    assert environment.bundled_problem(blender, mac_version="14.5") is None


def test_bundled_command_is_isolated_and_sets_the_path_itself(tmp_path):
    launch = environment.bundled_launch(_blender(tmp_path))
    command = launch.command(Path("/ext root"))
    assert command[:2] == [sys.executable, "-I"]
    assert command[-3:] == ["/ext root", launch.site_packages[0], "worker"]
    assert command[command.index("-c") + 1] == client.BUNDLED_BOOTSTRAP
    base = {"PATH": "/bin", "PYTHONPATH": "/elsewhere", "PYTHONHOME": "/blender/python", "VIRTUAL_ENV": "/v"}
    env = launch.environment(Path("/ext root"), base, {"PHOTO3D_X": "1"})
    assert env == {"PATH": "/bin", "PHOTO3D_X": "1"}
    torch = client.WorkerLaunch("/env/bin/python", origin="preferences")
    assert torch.command(Path("/ext")) == ["/env/bin/python", "-m", "core", "worker"]
    env = torch.environment(Path("/ext"), base, {})
    assert env["PYTHONPATH"] == os.pathsep.join(["/ext", "/elsewhere"]) and "PYTHONHOME" not in env


REPORTER = """
import json, site, sys
import probe_pkg
known = set(site.getsitepackages())
sites = [i for i, p in enumerate(sys.path) if p in known]
print(json.dumps({
    "argv": sys.argv[1:],
    "path0": sys.path[0],
    "wheels_at": sys.path.index(WHEELS),
    "first_site": sites[0] if sites else None,
    "isolated": sys.flags.isolated,
}))
"""


def test_bootstrap_puts_wheels_before_site_packages_and_runs_core(tmp_path):
    wheels = tmp_path / "wheels"
    (wheels / "probe_pkg").mkdir(parents=True)
    (wheels / "probe_pkg" / "__init__.py").write_text("")
    root = tmp_path / "root"
    (root / "core").mkdir(parents=True)
    (root / "core" / "__init__.py").write_text("")
    # A stand-in core whose __main__ reports its arguments and path.
    (root / "core" / "__main__.py").write_text(REPORTER.replace("WHEELS", repr(str(wheels))))
    launch = client.WorkerLaunch(sys.executable, bundled=True, python_args=("-I",), site_packages=(str(wheels),))
    result = subprocess.run(
        launch.command(root),
        env=launch.environment(root, dict(os.environ, PYTHONPATH="/nowhere"), {}),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["argv"] == ["worker"] and report["isolated"] == 1
    assert report["path0"] == str(root)
    assert report["first_site"] is None or report["wheels_at"] < report["first_site"]


def test_callers_that_pass_a_path_get_the_remembered_launch(tmp_path):
    launch = environment.bundled_launch(_blender(tmp_path))
    client.remember_launch(launch)
    try:
        assert client.launch_for(sys.executable) == launch
        assert client.WorkerClient(sys.executable).launch.bundled
    finally:
        client.remember_launch(client.WorkerLaunch(sys.executable, origin="preferences"))
    assert not client.launch_for(sys.executable).bundled
    assert client.launch_for("/other/python") == client.WorkerLaunch("/other/python")
