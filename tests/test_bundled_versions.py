"""What ships is what is tested: the wheels the extension bundles (requirements/bundled.txt) are the versions
the test environment is pinned to (requirements/constraints.txt) and runs."""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

from packaging.markers import Marker
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
_PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


def _pins(path: Path) -> dict[str, str]:
    """name -> version of the ``==`` pins in a requirements file that apply on this machine."""
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _PIN.match(line.strip())
        if match is None:
            continue
        name, pinned, marker = match.groups()
        if marker is None or Marker(marker).evaluate():
            pins[canonicalize_name(name)] = pinned
    return pins


def test_the_bundled_wheels_are_the_versions_the_tests_run():
    bundled = _pins(ROOT / "requirements" / "bundled.txt")
    constraints = _pins(ROOT / "requirements" / "constraints.txt")
    assert {"onnxruntime", "opencv-python-headless", "scipy", "scikit-image", "triangle"} <= set(bundled)
    for name, pinned in bundled.items():
        assert constraints.get(name) == pinned, f"{name}: bundled {pinned}, constraints {constraints.get(name)}"
        assert version(name) == pinned, f"{name}: bundled {pinned}, installed {version(name)}"
