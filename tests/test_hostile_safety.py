"""What was checked and found fine by the hostile-input review, kept so: no pickle, read-only outputs."""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

import pytest

from core.cli import main
from tests.scenes import square_scene

ROOT = Path(__file__).resolve().parents[1]
# Loading a pickle runs code chosen by whoever made the file: weights, depth maps and meshes never use one.
_UNSAFE = [
    (re.compile(r"\btorch\.load\("), "torch.load unpickles"),
    (re.compile(r"\bpickle\.loads?\("), "pickle runs code"),
    (re.compile(r"allow_pickle\s*=\s*True"), "np.load with pickles"),
    (re.compile(r"\bnp\.load\((?![^)]*allow_pickle=False)(?![^)]*mmap_mode)"), "np.load must say allow_pickle=False"),
    (
        re.compile(r"Model\w*\.from_pretrained\((?![^)]*use_safetensors=True)"),
        "models load from safetensors only",
    ),
]


def _sources() -> list[Path]:
    return [p for folder in ("core", "photo3d_addon") for p in sorted((ROOT / folder).rglob("*.py"))]


def test_no_code_path_loads_a_pickle():
    found = []
    for path in _sources():
        text = path.read_text(encoding="utf-8")
        for pattern, why in _UNSAFE:
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                found.append(f"{path.relative_to(ROOT)}:{line}: {why}")
    assert found == []


def test_a_read_only_output_is_exit_4_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    image, depth = square_scene().write(tmp_path / "in")
    out = tmp_path / "ro" / "pkg"
    out.parent.mkdir()
    real_mkdtemp = __import__("tempfile").mkdtemp

    def read_only(*args, **kwargs):
        if kwargs.get("dir") == out.parent:
            raise OSError(errno.EROFS, "Read-only file system")
        return real_mkdtemp(*args, **kwargs)

    monkeypatch.setattr("tempfile.mkdtemp", read_only)
    code = main(["convert", str(image), "-o", str(out), "--depth", str(depth), "--segment", "none", "-q"])
    assert code == 4
    assert "Read-only file system" in capsys.readouterr().err
    assert os.listdir(out.parent) == []


@pytest.mark.parametrize(
    "pattern, sample, hit",
    [
        (_UNSAFE[3][0], "np.load(path)", True),
        (_UNSAFE[3][0], "np.load(path, allow_pickle=False)", False),
        (_UNSAFE[0][0], "torch.load(f)", True),
    ],
)
def test_the_scan_itself_finds_what_it_looks_for(pattern, sample, hit):
    assert bool(pattern.search(sample)) is hit
