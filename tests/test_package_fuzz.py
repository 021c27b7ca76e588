"""The package reader under fuzzing: any folder is valid and consistent, or refused with PackageError.

A seeded hypothesis run mutates tiny real packages (``tests/package_fuzz.py``: 34 mutation classes, 1-3 per
input) and checks the reader and both ``validate`` forms against an oracle of its own; the explicit cases
below are the worst classes of a first fuzz run, each pinned down on its own. ``scripts/fuzz_package.py`` is
the long run of the same fuzzer.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

from tests.package_fuzz import (
    Raw,
    cases,
    edit_manifest,
    examine,
    make_seed_packages,
    npy_bytes,
    npz_bytes,
    png_bytes,
    rgba_scanlines,
    stored,
    write_zip_bomb_npz,
    zip_bytes,
    zlib_zeros,
)

ROOT = Path(__file__).resolve().parents[1]
FUZZ_EXAMPLES = 400
"""Inputs per run: about 13 s on two idle cores (35-45 s when other jobs share them) with a reader that
refuses bombs up front."""


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    return make_seed_packages(tmp_path_factory.mktemp("fuzz_seeds"))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz_cases")


@pytest.fixture
def copy(seeds, tmp_path):
    def make(kind: str = "mesh") -> Path:
        target = tmp_path / kind
        shutil.copytree(seeds[kind], target)
        return target

    return make


def test_seed_packages_are_valid_and_consistent(seeds):
    for kind, path in seeds.items():
        outcome = examine(path)
        assert outcome.kind == "accepted", f"{kind}: {outcome.describe()}"
    assert len(json.loads((seeds["mesh"] / "manifest.json").read_text())["layers"]) >= 2


@settings(
    max_examples=FUZZ_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
@given(data=st.data())
def test_any_mutated_package_is_valid_or_refused(seeds, workdir, data):
    case = data.draw(cases(seeds, workdir), label="case")
    note(case.describe())
    assert case.outcome.kind in ("rejected", "accepted"), case.describe()


# The worst classes of the first fuzz run, one input each --------------------------------------------------------


def _layer(index: int, **changes):
    def change(manifest):
        manifest["layers"][index].update(changes)

    return change


def _set(**changes):
    return lambda manifest: manifest.update(changes)


def _camera(**changes):
    return lambda manifest: manifest["camera"].update(changes)


def _many_layers(manifest):
    base = manifest["layers"][0]
    manifest["layers"] = [dict(base, index=i, name=f"layer_{i}") for i in range(5000)]


MANIFEST_CASES = {
    "nul_in_texture_path": ("mesh", _layer(0, texture="layers/00_color.png\x00.txt")),
    "nul_in_mesh_path": ("mesh", _layer(1, mesh="layers/\x00")),
    "lone_surrogate_in_path": ("mesh", _layer(0, texture=Raw('"layers/\\ud800.png"'))),
    "over_long_name": ("mpi", _layer(0, texture="layers/" + "a" * 300 + ".png")),
    "camera_is_a_list": ("mesh", lambda m: m.update(camera=list(m["camera"].values()))),
    "five_thousand_layers": ("mesh", _many_layers),
    "version_1.x": ("mesh", _set(version="1.x")),
    "version_1": ("mpi", _set(version="1")),
    "version_number": ("mesh", _set(version=1)),
    "version_1.999": ("mesh", _set(version="1.999")),
    "version_arabic_digits": ("mesh", _set(version="\u0661.\u0660")),
    "duplicate_texture": ("mesh", lambda m: m["layers"][1].update(texture=m["layers"][0]["texture"])),
    "focal_zero": ("mesh", _camera(focal_px=0)),
    "focal_nan": ("mpi", _camera(focal_px=Raw("NaN"))),
    "width_float": ("mesh", _camera(width=64.0)),
    "width_1e308": ("mesh", _camera(width=1e308)),
    "huge_integer": ("mesh", _camera(height=Raw("9" * 5000))),
    "deep_nesting": ("mpi", _set(stats=Raw("[" * 100_000 + "]" * 100_000))),
    "infinite_plane_depth": ("mpi", _layer(0, plane_depth=Raw("Infinity"))),
    "summary_field_missing": ("mesh", lambda m: m["layers"][0].pop("pixel_count")),
    "summary_field_mistyped": ("mesh", lambda m: m["layers"][0].update(depth_range=[[1, 2], 3])),
}


@pytest.mark.parametrize("name", sorted(MANIFEST_CASES))
def test_hostile_manifest_is_refused(copy, name):
    kind, change = MANIFEST_CASES[name]
    package = copy(kind)
    edit_manifest(package, change)
    outcome = examine(package)
    assert outcome.kind == "rejected", outcome.describe()


def _mesh(package: Path, index: int = 0) -> dict[str, np.ndarray]:
    with np.load(package / "layers" / f"{index:02d}_mesh.npz") as data:
        return {name: data[name] for name in ("vertices", "uvs", "faces")}


def _plain_npy(package):
    (package / "layers" / "00_mesh.npz").write_bytes(npy_bytes(_mesh(package)["vertices"]))


def _crc_broken(package):
    path = package / "layers" / "01_mesh.npz"
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("faces.npy")
    data = bytearray(path.read_bytes())
    local_name, local_extra = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
    data[info.header_offset + 30 + local_name + local_extra + info.compress_size - 1] ^= 0xFF  # last face index
    path.write_bytes(bytes(data))


def _truncated(package):
    path = package / "layers" / "00_mesh.npz"
    path.write_bytes(path.read_bytes()[:-30])


def _no_faces(package):
    mesh = _mesh(package, 1)
    mesh["faces"] = np.zeros((0, 3), np.int32)
    (package / "layers" / "01_mesh.npz").write_bytes(npz_bytes(mesh))


def _rgb_texture(package):
    from PIL import Image

    path = package / "layers" / "00_color.png"
    Image.open(path).convert("RGB").save(path)


def _sixteen_bit_texture(package):
    path = package / "layers" / "01_color.png"
    from PIL import Image

    rgba = np.asarray(Image.open(path))
    path.write_bytes(png_bytes(rgba.shape[1], rgba.shape[0], 16, 6, raw=rgba_scanlines(rgba, 16)))


def _work_sized_texture(package):
    from PIL import Image

    path = package / "layers" / "00_color.png"
    Image.open(path).resize((32, 24)).save(path)


def _hard_link_outside(package):
    outside = package.parent / "outside.png"
    shutil.copyfile(package / "layers" / "00_color.png", outside)
    (package / "layers" / "00_color.png").unlink()
    (package / "layers" / "00_color.png").hardlink_to(outside)


def _symlink_outside(package):
    outside = package.parent / "outside.npz"
    shutil.copyfile(package / "layers" / "00_mesh.npz", outside)
    (package / "layers" / "00_mesh.npz").unlink()
    (package / "layers" / "00_mesh.npz").symlink_to(outside)


def _foreign_member(package, name, data):
    mesh = _mesh(package)
    members = [stored(f"{key}.npy", npy_bytes(mesh[key])) for key in ("uvs", "faces")]
    (package / "layers" / "00_mesh.npz").write_bytes(zip_bytes([stored(name, data), *members]))


def _folder_for_texture(package):
    (package / "layers" / "01_color.png").unlink()
    (package / "layers" / "01_color.png").mkdir()


FILE_CASES = {
    "plain_npy_for_npz": _plain_npy,
    "npz_crc_broken": _crc_broken,
    "npz_truncated": _truncated,
    "npz_member_not_an_array": lambda p: _foreign_member(p, "vertices.npy", b"hello, not an array"),
    "npz_member_without_suffix": lambda p: _foreign_member(p, "vertices", npy_bytes(_mesh(p)["vertices"])),
    "npz_empty": lambda p: (p / "layers" / "00_mesh.npz").write_bytes(b""),
    "mesh_without_faces": _no_faces,
    "rgb_texture": _rgb_texture,
    "sixteen_bit_texture": _sixteen_bit_texture,
    "texture_not_the_camera_size": _work_sized_texture,
    "hard_link_to_outside": _hard_link_outside,
    "symlink_to_outside": _symlink_outside,
    "folder_for_texture": _folder_for_texture,
}


@pytest.mark.parametrize("name", sorted(FILE_CASES))
def test_hostile_file_is_refused(copy, name):
    package = copy("mesh")
    FILE_CASES[name](package)
    outcome = examine(package)
    assert outcome.kind == "rejected", outcome.describe()


# Bombs: refused quickly, with bounded memory, measured in a fresh process ------------------------------------

PROBE = r"""
import contextlib, io, json, resource, sys, time
from core.cli import main
from core.errors import PackageError
from core.package import read_package

before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
try:
    read_package(sys.argv[1])
    outcome = "accepted"
except PackageError:
    outcome = "rejected"
except BaseException as exc:
    outcome = f"crashed: {type(exc).__name__}: {exc}"
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    codes = [main(["validate", sys.argv[1]]), main(["validate", sys.argv[1], "--json"])]
seconds = time.perf_counter() - start
growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
print(json.dumps({"outcome": outcome, "codes": codes, "seconds": seconds, "rss_growth_mb": growth}))
"""
MAX_SECONDS = 5.0
MAX_RSS_GROWTH_MB = 100.0


def _npz_bomb(package, member):
    path = package / "layers" / "00_mesh.npz"
    write_zip_bomb_npz(path, _mesh(package), member)
    assert path.stat().st_size < 2 << 20


def _png_overlong(package):
    from PIL import Image

    path = package / "layers" / "00_color.png"
    rgba = np.asarray(Image.open(path))
    path.write_bytes(png_bytes(rgba.shape[1], rgba.shape[0], idat=zlib_zeros(rgba_scanlines(rgba), 1 << 30)))
    assert path.stat().st_size < 2 << 20


def _png_huge_header(package):
    (package / "layers" / "01_color.png").write_bytes(png_bytes(100_000, 100_000, idat=zlib_zeros(b"", 1 << 20)))


BOMBS = {
    "npz_faces_1GiB": lambda p: _npz_bomb(p, "faces"),
    "npz_vertices_1GiB": lambda p: _npz_bomb(p, "vertices"),
    "png_data_1GiB_past_the_image": _png_overlong,
    "png_header_100000x100000": _png_huge_header,
}


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_bomb_is_refused_quickly_with_bounded_memory(copy, name):
    package = copy("mesh")
    BOMBS[name](package)
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(package)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    assert probe["outcome"] == "rejected" and probe["codes"] == [5, 5], probe
    assert probe["seconds"] < MAX_SECONDS, probe
    assert probe["rss_growth_mb"] < MAX_RSS_GROWTH_MB, probe
