"""Blender tier, cheap: hostile batch settings are refused up front (exit 2 naming the key, before any photo
is converted), and a bug inside one photo costs that photo only: the batch goes on and writes its summary.

Runs the batch as scripts/photo3d_batch.py does (the checkout imported as the extension, with the bpy
module); many cases share one Blender process, since each exits before converting anything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("bpy", reason="the Blender tier needs the bpy wheel (scripts/setup.sh installs it)")

pytestmark = pytest.mark.blender
ROOT = Path(__file__).resolve().parents[1]

# Each case: argv for batch.run; prints one JSON line per case with the exit code and what it said.
_RUNNER = """
import contextlib, io, json, os, sys
sys.path.insert(0, os.path.join(sys.argv[1], "scripts"))
import bpy  # noqa: F401
from extension_loader import EXTENSION, import_checkout_as_extension
import importlib
import_checkout_as_extension()
batch = importlib.import_module(EXTENSION + ".photo3d_addon.batch.run")
if os.environ.get("PHOTO3D_TEST_BOOM"):
    real = batch.check_image_path
    def exploding(path):
        if "boom" in str(path):
            raise ZeroDivisionError("an unexpected bug")
        return real(path)
    batch.check_image_path = exploding
for argv in json.loads(sys.argv[2]):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = batch.run(argv)
    print("CASE " + json.dumps([code, out.getvalue()]), flush=True)
sys.stdout.flush()
os._exit(0)
"""


def _run_cases(cases: list[list[str]], expect_trace: bool = False, **env: str) -> list[tuple[int, str]]:
    """(exit code, printed text) of ``batch.run(argv)`` for each argv, in one Blender process."""
    environment = dict(os.environ, PHOTO3D_WORKER_PYTHON=sys.executable, **env)
    done = subprocess.run(
        [sys.executable, "-c", _RUNNER, str(ROOT), json.dumps(cases)],
        capture_output=True, text=True, timeout=300, env=environment, cwd=ROOT,
    )  # fmt: skip
    results = [json.loads(line[5:]) for line in done.stdout.splitlines() if line.startswith("CASE ")]
    assert len(results) == len(cases), done.stdout + done.stderr
    assert expect_trace or "Traceback" not in done.stderr, done.stderr
    return [tuple(r) for r in results]


@pytest.fixture
def photo(tmp_path) -> Path:
    from PIL import Image

    path = tmp_path / "photo.png"
    Image.new("RGB", (32, 24), (120, 80, 40)).save(path)
    return path


BAD_SETTINGS = [
    # (settings file content, words the refusal must hold)
    ({"layers": "many"}, ["setting layers", "1..32", "'many'"]),
    ({"layers": True}, ["setting layers", "integer"]),
    ({"layers": 33}, ["setting layers", "1..32"]),
    ({"frames": 0}, ["setting frames", "1..14400"]),
    ({"frames": 10**9}, ["setting frames"]),
    ({"frames": 1}, ["setting frames", "at least 2"]),
    ({"fps": 24.0}, ["setting fps", "24, 25, 30, 50, 60"]),
    ({"fps": 1000}, ["setting fps"]),
    ({"samples": 0}, ["setting samples", "1..1024"]),
    ({"samples": 10**6}, ["setting samples"]),
    ({"blend": 1}, ["setting blend", "true or false"]),
    ({"video": "yes"}, ["setting video"]),
    ({"amplitude": "big"}, ["setting amplitude"]),
    ({"amplitude": -1e9}, ["setting amplitude", "-1000..1000"]),
    ({"path": "ZOOM", "amplitude": 0}, ["setting amplitude", "zoom factor"]),
    ({"path": "SPIN"}, ["setting path"]),
    ({"focal_px": -1}, ["setting focal_px"]),
    ({"focal_px": 0.5}, ["setting focal_px", "0 (from EXIF)"]),
    ({"focal_px": 10**18}, ["setting focal_px", "0..1000000"]),
    ({"out": 5}, ["setting out", "path"]),
    ({"out": "a\u0000b"}, ["setting out", "NUL"]),
    ({"depth": ["x"]}, ["setting depth"]),
    ({"photos": "a.png"}, ["setting photos", "list"]),
    ({"photos": [1, 2]}, ["setting photos"]),
    ({"device": "tpu"}, ["setting device", "auto, cpu, cuda"]),
    ({"inpaint": "telea"}, ["setting inpaint", "TELEA"]),
    ({"representation": 3}, ["setting representation"]),
    ({"effects": "rain"}, ["setting effects", "list"]),
    ({"effects": [{"kind": "rain", "amount": 4}]}, ["rain amount must be between 0 and 1"]),
    ({"worker_python": "x" * 5000}, ["setting worker_python"]),
]


def test_bad_settings_exit_2_naming_the_key_before_any_photo(photo, tmp_path):
    cases = []
    for number, (settings, _) in enumerate(BAD_SETTINGS):
        path = tmp_path / f"job{number}.json"
        path.write_text(json.dumps(settings))
        # Flags override the file, so the cases of "out" and "photos" go without --out or the photo.
        out = [] if "out" in settings else ["--out", str(tmp_path / f"out{number}")]
        photos = [] if "photos" in settings else [str(photo)]
        cases.append([*photos, *out, "--settings", str(path)])
    for (settings, words), (code, said) in zip(BAD_SETTINGS, _run_cases(cases), strict=True):
        assert code == 2, (settings, said)
        for word in words:
            assert word in said, (settings, said)
        assert "starting" not in said, (settings, said)  # refused before the first photo
    assert not any(p.name.startswith("out") for p in tmp_path.iterdir())  # nothing written


HOSTILE_FILES = [
    (b'{"layers": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested more than"),
    (b'{"effects": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested more than"),
    (b'{"frames": ' + b"9" * 5000 + b"}", "5000 digits"),
    (b'{"amplitude": NaN}', "NaN"),
    (b'{"amplitude": Infinity}', "Infinity"),
    (b'{"layers": 5\xff}', "not UTF-8"),
    (b'{"layers": 5, "layers": 6}', "appears twice"),
    (b"[1, 2]", "must hold a JSON object"),
    (b'{"layers": 5}' + b" " * 1_100_000, "bytes"),
]


def test_hostile_settings_files_exit_2(photo, tmp_path):
    cases = []
    for number, (content, _) in enumerate(HOSTILE_FILES):
        path = tmp_path / f"job{number}.json"
        path.write_bytes(content)
        cases.append([str(photo), "--out", str(tmp_path / f"out{number}"), "--settings", str(path)])
    for (content, word), (code, said) in zip(HOSTILE_FILES, _run_cases(cases), strict=True):
        assert code == 2 and word in said, (content[:40], said)
        assert "starting" not in said


@pytest.mark.parametrize("flags", [["--amplitude", "nan"], ["--amplitude", "inf"], ["--amplitude=-1e9"]])
def test_non_finite_or_absurd_amplitude_flags_are_refused(photo, tmp_path, flags):
    # These used to exit 0 after rendering uniform grey frames.
    ((code, said),) = _run_cases([[str(photo), "--out", str(tmp_path / "out"), *flags]])
    assert code == 2 and "setting amplitude (--amplitude)" in said and "-1000..1000" in said, said
    assert not (tmp_path / "out").exists()


def test_a_bug_in_one_photo_fails_that_photo_and_the_batch_goes_on(photo, tmp_path):
    boom = tmp_path / "boom.png"
    boom.write_bytes(photo.read_bytes())
    out = tmp_path / "out"
    ((code, said),) = _run_cases(
        [[str(boom), str(tmp_path / "missing.png"), "--out", str(out)]], expect_trace=True, PHOTO3D_TEST_BOOM="1"
    )
    assert code == 1, said  # the first failure was a bug
    assert "ZeroDivisionError" in said and "summary: 0 of 2 photos succeeded" in said, said
    summary = json.loads((out / "summary.json").read_text())
    assert [(Path(r["photo"]).name, r["status"], r["exit_code"]) for r in summary] == [
        ("boom.png", "failed", 1),
        ("missing.png", "failed", 2),
    ]
    assert "internal error" in summary[0]["message"] and "ZeroDivisionError" in summary[0]["message"]
