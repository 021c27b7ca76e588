"""The Khronos glTF validator for the tests: ``scripts/node/validate_gltf.js`` run with Node.

The validator is the ``gltf-validator`` npm package pinned in ``scripts/node/package.json`` and its lock
file. It is a test dependency like pytest: when it is not installed the tests fail saying how to install
it, rather than skip and pass without having checked anything.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
NODE_FOLDER = ROOT / "scripts" / "node"
SCRIPT = NODE_FOLDER / "validate_gltf.js"
PACKAGE = NODE_FOLDER / "node_modules" / "gltf-validator"
INSTALL = "run `npm ci --prefix scripts/node`"

ERROR, WARNING, INFO, HINT = 0, 1, 2, 3
SEVERITIES = {ERROR: "error", WARNING: "warning", INFO: "info", HINT: "hint"}


def validate(path: Path, timeout: float = 120.0) -> dict[str, Any]:
    """The validator's report on the glTF or GLB file ``path`` (its JSON, as a dict)."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("the glTF validator needs Node.js (`node` is not on PATH); install Node 18+, then " + INSTALL)
    if not (PACKAGE / "package.json").is_file():
        pytest.fail(f"the glTF validator is not installed in {PACKAGE.parent}: {INSTALL}")
    try:
        result = subprocess.run(
            [node, str(SCRIPT), str(path)], capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the glTF validator took over {timeout:.0f} s on {path}")
    if result.returncode != 0:
        pytest.fail(f"the glTF validator failed on {path} (exit {result.returncode}): {result.stderr.strip()}")
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"the glTF validator printed no JSON report for {path}: {result.stdout[:500]!r}")
    if not isinstance(report, dict) or "issues" not in report:
        pytest.fail(f"the glTF validator's report for {path} has no issues section: {result.stdout[:500]!r}")
    return report


def issue_counts(report: dict[str, Any]) -> dict[str, int]:
    issues = report["issues"]
    return {
        name: issues[key]
        for name, key in (
            ("errors", "numErrors"),
            ("warnings", "numWarnings"),
            ("infos", "numInfos"),
            ("hints", "numHints"),
        )
    }


def messages(report: dict[str, Any], worst: int = HINT) -> list[str]:
    """The report's messages at severity ``worst`` or worse, one line each: ``error CODE at /pointer: text``."""
    lines = []
    for message in report["issues"].get("messages", []):
        if message["severity"] <= worst:
            where = f" at {message['pointer']}" if message.get("pointer") else ""
            severity = SEVERITIES.get(message["severity"], str(message["severity"]))
            lines.append(f"{severity} {message['code']}{where}: {message['message']}")
    return lines
