"""Hostile outputs and packages: no user file is ever lost, nothing half-written stays, the reader is total.

Each test here failed against the package code before issue 9's fixes (the folder check was only
"manifest.json is a file", the timings were patched in after publishing, SIGTERM left the temporary folder).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from core.cli import main
from core.errors import OutputError, PackageError
from core.options import PipelineOptions
from core.package import read_package, write_package_atomically
from core.package.staging import Staging, clean_stale
from core.pipeline import convert_image
from tests.scenes import square_scene

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return square_scene().write(tmp_path_factory.mktemp("in"))


@pytest.fixture(scope="module")
def package_dir(tmp_path_factory, inputs):
    image, depth = inputs
    options = PipelineOptions.from_dict({"depth": {"depth_file": str(depth)}, "segment": {"model": "none"}})
    return convert_image(image, tmp_path_factory.mktemp("pkg") / "pkg", options).package_path


@pytest.fixture
def copy(package_dir, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(package_dir, target)
    return target


def _convert(inputs, out) -> int:
    image, depth = inputs
    return main(["convert", str(image), "-o", str(out), "--depth", str(depth), "--segment", "none", "-q"])


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _siblings(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.parent.iterdir() if p.name != folder.name)


def _edit(folder: Path, change) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    change(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))


# -- the output folder: replace only a package that holds nothing else ------------------------------------
@pytest.mark.parametrize(
    "files",
    [
        {"manifest.json": '{"name": "My PWA"}', "index.html": "<html></html>", "src/app.js": "let x = 1;"},
        {"manifest.json": "not json", "notes.txt": "my notes"},
        {"manifest.json": '{"format": "photo3d.layers", "version": "1.0"}', "thesis.tex": "chapter 1"},
    ],
    ids=["web-app", "not-json", "half-a-manifest"],
)
def test_a_folder_with_a_foreign_manifest_is_never_touched(inputs, tmp_path, capsys, files):
    out = tmp_path / "project"
    for name, text in files.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
    before = _tree(out)
    assert _convert(inputs, out) == 4
    assert "never deletes files it did not write" in capsys.readouterr().err
    assert _tree(out) == before
    assert _siblings(out) == []


def test_a_package_with_a_user_file_added_is_not_replaced(inputs, copy, tmp_path, capsys):
    (copy / "layers" / "my_retouch.psd").write_bytes(b"8BPS user work")
    before = _tree(copy)
    assert _convert(inputs, copy) == 4
    assert "layers/my_retouch.psd" in capsys.readouterr().err
    assert _tree(copy) == before


def test_a_clean_package_and_an_empty_folder_are_replaced(inputs, copy, tmp_path):
    old_manifest = (copy / "manifest.json").read_text()
    assert _convert(inputs, copy) == 0
    assert (copy / "manifest.json").read_text() != old_manifest  # a new package, with a new created_at/timings
    read_package(copy)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _convert(inputs, empty) == 0
    read_package(empty)
    assert _siblings(copy) == ["empty"] and _siblings(empty) == ["copy"]


def test_an_output_that_is_a_symlink_is_written_where_it_points(inputs, tmp_path):
    target = tmp_path / "real"
    link = tmp_path / "link"
    link.symlink_to(target, target_is_directory=True)
    assert _convert(inputs, link) == 0
    assert link.is_symlink() and read_package(link).root == link
    read_package(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]
    assert _convert(inputs, link) == 0  # and replaced there the second time
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]


def test_the_package_folder_follows_the_umask_not_0700(inputs, tmp_path):
    previous = os.umask(0o022)
    try:
        assert _convert(inputs, tmp_path / "pkg") == 0
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "pkg").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "pkg" / "layers").stat().st_mode) == 0o755


# -- the manifest is written once, inside the staging folder ----------------------------------------------
def test_timings_are_in_the_manifest_and_no_tmp_file_is_ever_written(inputs, tmp_path, monkeypatch):
    written: list[str] = []
    real_write_text = Path.write_text

    def spy(self, *args, **kwargs):
        written.append(str(self))
        return real_write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", spy)
    assert _convert(inputs, tmp_path / "pkg") == 0
    manifests = [name for name in written if "manifest" in Path(name).name]
    assert len(manifests) == 1 and manifests[0].endswith("/new/manifest.json")
    timings = json.loads((tmp_path / "pkg" / "manifest.json").read_text())["timings"]
    assert set(timings) == {"load", "depth", "segment", "harmonize", "layers", "inpaint", "geometry", "package"}
    assert all(value >= 0 for value in timings.values()) and timings["package"] > 0


def test_a_full_disk_while_writing_the_manifest_is_exit_4_and_leaves_nothing(inputs, copy, monkeypatch, capsys):
    before = _tree(copy)
    real_write_text = Path.write_text

    def full(self, *args, **kwargs):
        if self.name == "manifest.json":
            raise OSError(28, "No space left on device")
        return real_write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    assert _convert(inputs, copy) == 4
    assert "No space left on device" in capsys.readouterr().err
    assert _tree(copy) == before and _siblings(copy) == []


_WRITER = """
import sys
from pathlib import Path
import shutil
from core.package import write_package_atomically
from core.errors import OutputError

seed, out, rounds = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
def fill(folder):
    shutil.copytree(seed, folder, dirs_exist_ok=True)
    return __import__("json").loads((seed / "manifest.json").read_text())
for _ in range(rounds):
    try:
        write_package_atomically(out, fill)
    except OutputError as exc:
        print("refused:", exc)
"""


def test_concurrent_writers_never_crash_and_leave_one_valid_package(package_dir, tmp_path):
    out = tmp_path / "shared"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(package_dir), str(out), "15"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = [writer.communicate(timeout=300) for writer in writers]
    for writer, (_stdout, stderr) in zip(writers, results, strict=True):
        assert writer.returncode == 0, stderr
        assert "Traceback" not in stderr
    read_package(out)
    assert _siblings(out) == []


# -- signals and killed runs -------------------------------------------------------------------------------
_SLOW_PACKAGE = """
import sys, time
import core.pipeline as pipeline
real = pipeline.write_png
def slow(path, rgba):
    real(path, rgba)
    if "layers" in str(path):
        print("writing", flush=True)
        time.sleep(0.5)
pipeline.write_png = slow
from core.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_signal_in_the_package_stage_leaves_nothing(inputs, copy, signum):
    image, depth = inputs
    before = _tree(copy)
    args = ["convert", str(image), "-o", str(copy), "--depth", str(depth), "--segment", "none", "-q"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    process = subprocess.Popen(
        [sys.executable, "-c", _SLOW_PACKAGE, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().strip() == "writing"
    assert any(".copy.photo3d-" in name for name in _siblings(copy))  # the staging folder exists now
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signum, stderr
    assert f"stopped by {signal.Signals(signum).name}" in stderr and "Traceback" not in stderr
    assert _tree(copy) == before and _siblings(copy) == []


_KILLED_WRITER = """
import sys, time
from pathlib import Path
from core.package.staging import Staging
staging = Staging(Path(sys.argv[1]))
(staging.new / "layers").mkdir()
(staging.new / "layers" / "00_color.png").write_bytes(b"x" * 100000)
print(staging.folder, flush=True)
time.sleep(600)
"""


def test_staging_left_by_a_killed_run_is_removed_by_the_next_one(inputs, tmp_path):
    out = tmp_path / "pkg"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    process = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(out)], env=env, stdout=subprocess.PIPE, text=True
    )
    staging = Path(process.stdout.readline().strip())
    assert staging.is_dir()
    assert clean_stale(out) == [] and staging.is_dir()  # its writer is alive: never touched
    process.kill()
    process.wait(timeout=30)
    unrelated = tmp_path / ".pkg.photo3d-mine"  # looks like ours by name only: kept
    unrelated.mkdir()
    (unrelated / "notes.txt").write_text("mine")
    assert _convert(inputs, out) == 0
    assert not staging.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".pkg.photo3d-mine", "pkg"]


def test_a_package_moved_aside_by_a_killed_swap_is_put_back(package_dir, tmp_path):
    out = tmp_path / "pkg"
    staging = Staging(out)
    shutil.copytree(package_dir, staging.old)  # the dead run had moved the old package aside ...
    before = _tree(staging.old)
    staging._lock.close()  # ... and died (its lock is gone with it)
    staging._lock = None
    assert clean_stale(out) == [staging.folder]
    assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pkg"]


def test_an_interrupted_swap_puts_the_old_package_back(package_dir, copy, monkeypatch):
    before = _tree(copy)
    real_replace = os.replace

    def interrupted(src, dst):
        real_replace(src, dst)
        if Path(dst).name == "old":
            raise KeyboardInterrupt  # Ctrl-C between the two renames

    monkeypatch.setattr(os, "replace", interrupted)

    def fill(folder):
        shutil.copytree(package_dir, folder, dirs_exist_ok=True)
        return json.loads((package_dir / "manifest.json").read_text())

    with pytest.raises(KeyboardInterrupt):
        write_package_atomically(copy, fill)
    monkeypatch.setattr(os, "replace", real_replace)
    assert _tree(copy) == before and _siblings(copy) == []


# -- the reader: consistent or PackageError ----------------------------------------------------------------
def _mutate(copy, change):
    _edit(copy, change)
    with pytest.raises(PackageError):
        read_package(copy)
    assert main(["validate", str(copy)]) == 5


def _layer0(key, value):
    return lambda m: m["layers"][0].update({key: value})


@pytest.mark.parametrize(
    "change",
    [
        lambda m: m.update(camera=[1, 2]),
        lambda m: m["camera"].update(focal_px=0),
        lambda m: m["camera"].update(focal_px=-3.0),
        lambda m: m["camera"].update(width=128.0),
        lambda m: m["camera"].update(width=1e308),
        lambda m: m["camera"].update(width=True),
        lambda m: m["depth"].update(min="near"),
        lambda m: m["depth"].pop("map"),
        lambda m: m["depth"].update(map="../../etc/passwd"),
        lambda m: m.update(layers=[m["layers"][0]] * 5000),
        lambda m: m.update(layers=[m["layers"][0], m["layers"][0]]),
        lambda m: m["layers"][1].update(texture=m["layers"][0]["texture"], index=1),
        _layer0("texture", "layers/\x00.png"),
        _layer0("texture", "a" * 300 + ".png"),
        _layer0("texture", "layers\\00_color.png"),
        _layer0("name", 7),
        _layer0("depth_range", [5.0, 2.0]),
        _layer0("pixel_count", -1),
        _layer0("triangles", 3),
        lambda m: m.pop("source"),
        lambda m: m["source"].update(width=64),
        lambda m: m.update(timings={"load": "fast"}),
        lambda m: m.update(version="1.x"),
    ],
    ids=lambda change: "",
)
def test_mistyped_or_inconsistent_manifests_are_rejected(copy, change):
    _mutate(copy, change)


def test_deep_nesting_and_huge_integers_in_the_manifest(copy):
    manifest = (copy / "manifest.json").read_text()
    (copy / "manifest.json").write_text(manifest[:-1] + ', "x": ' + "[" * 100000 + "]" * 100000 + "}")
    with pytest.raises(PackageError, match="nested"):
        read_package(copy)
    (copy / "manifest.json").write_text(manifest.replace('"index": 0', '"index": ' + "9" * 5000))
    with pytest.raises(PackageError, match="digits"):
        read_package(copy)
    (copy / "manifest.json").write_bytes(b"\xff" + manifest.encode())
    with pytest.raises(PackageError, match="UTF-8"):
        read_package(copy)


def _write_png(path: Path, shape, dtype=np.uint8) -> None:
    import cv2

    cv2.imwrite(str(path), np.zeros(shape, dtype))


@pytest.mark.parametrize(
    "make",
    [
        lambda p: _write_png(p, (96, 128, 3)),  # RGB
        lambda p: _write_png(p, (96, 128)),  # gray
        lambda p: _write_png(p, (96, 128, 4), np.uint16),  # 16-bit
        lambda p: _write_png(p, (48, 64, 4)),  # another size than the photo
        lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),  # truncated
        lambda p: p.write_bytes(p.read_bytes()[:-20] + b"\x00" * 8 + p.read_bytes()[-12:]),  # CRC broken
        lambda p: p.write_bytes(b"GIF89a not a png"),
    ],
    ids=["rgb", "gray", "16-bit", "small", "truncated", "crc", "not-png"],
)
def test_textures_must_be_complete_rgba_pngs_of_the_photo_size(copy, make):
    make(copy / "layers" / "00_color.png")
    with pytest.raises(PackageError, match="texture layers/00_color.png"):
        read_package(copy)


def test_a_texture_header_claiming_a_huge_image_is_refused_without_decoding(copy):
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 6, 0, 0, 0)
    chunk = struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    (copy / "layers" / "00_color.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk)
    with pytest.raises(PackageError, match="100000x100000"):
        read_package(copy)


def test_files_that_lead_outside_the_package_are_refused(copy, tmp_path):
    outside = tmp_path / "secret.png"
    shutil.copy(copy / "layers" / "00_color.png", outside)
    (copy / "layers" / "00_color.png").unlink()
    os.link(outside, copy / "layers" / "00_color.png")
    with pytest.raises(PackageError, match="hard link"):
        read_package(copy)
    (copy / "layers" / "00_color.png").unlink()
    (copy / "layers" / "00_color.png").symlink_to(outside)
    with pytest.raises(PackageError, match="leaves the package"):
        read_package(copy)
    (copy / "layers" / "00_color.png").unlink()
    (copy / "layers" / "00_color.png").mkdir()
    with pytest.raises(PackageError, match="not a regular file"):
        read_package(copy)


def _npz(path: Path, members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> None:
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def _flip_member_byte(data: bytes, path: Path) -> bytes:
    """The archive with one byte of the faces member's data changed: its CRC no longer matches."""
    import struct

    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("faces.npy")
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
    at = info.header_offset + 30 + name_len + extra_len + info.compress_size - 1
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


def test_damaged_meshes_are_package_errors(copy):
    mesh = copy / "layers" / "00_mesh.npz"
    good = mesh.read_bytes()
    cases = {
        "plain npy": lambda: np.save(mesh.with_suffix(".npy"), np.zeros(3)) or mesh.with_suffix(".npy").rename(mesh),
        "foreign member": lambda: _npz(mesh, {"vertices.npy": b"x", "evil.py": b"print(1)"}),
        "truncated": lambda: mesh.write_bytes(good[: len(good) // 2]),
        "empty": lambda: mesh.write_bytes(b""),
        "crc": lambda: mesh.write_bytes(_flip_member_byte(good, mesh)),
        "no faces": lambda: np.savez(
            mesh,
            vertices=np.zeros((3, 3), np.float32) - 1,
            uvs=np.zeros((3, 2), np.float32),
            faces=np.zeros((0, 3), np.int32),
        ),
    }
    for name, damage in cases.items():
        damage()
        with pytest.raises(PackageError):
            read_package(copy)
        assert main(["validate", str(copy)]) == 5, name
        mesh.write_bytes(good)
    read_package(copy)


def test_a_zip_bomb_mesh_is_refused_before_decompressing(copy):
    # 1 GB of zeros deflates to about 1 MB: the reader must look at the stated size, not inflate it.
    mesh = copy / "layers" / "00_mesh.npz"
    header = b"\x93NUMPY\x01\x00" + b"{'descr': '<f4', 'fortran_order': False, 'shape': (89478485, 3), }".ljust(118)
    with (
        zipfile.ZipFile(mesh, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("vertices.npy", "w", force_zip64=True) as member,
    ):
        member.write(header + b"\n")
        block = bytes(1 << 20)
        for _ in range(1024):
            member.write(block)
    assert mesh.stat().st_size < 3 << 20
    started = time.perf_counter()
    with pytest.raises(PackageError, match="unpacks to"):
        read_package(copy)
    assert time.perf_counter() - started < 1.0


def test_validate_never_prints_escape_sequences_from_a_manifest(copy, capsys):
    _edit(copy, lambda m: m["layers"][0].update(name="\x1b[2J\x1b]0;pwned\x07"))
    assert main(["validate", str(copy)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\\x1b[2J" in out


def test_source_path_is_information_only(copy, tmp_path):
    # source.path is information about where the photo was; a package pointing it anywhere still reads.
    _edit(copy, lambda m: m["source"].update(path="/etc/shadow"))
    assert read_package(copy).manifest.source.path == "/etc/shadow"


def test_writer_result_reads_back_typed(package_dir):
    package = read_package(package_dir)
    typed = package.manifest
    assert typed.camera.width == 128 and typed.work_size == (96, 128)
    assert [layer.index for layer in typed.layers] == list(range(len(typed.layers)))
    assert package.load_depth_map().shape == typed.work_size


def test_write_refuses_a_file_as_output(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match="not a directory"):
        write_package_atomically(tmp_path / "f", lambda folder: {})
    assert (tmp_path / "f").read_text() == "x"


def test_windows_style_and_odd_names_in_the_output_path(inputs, tmp_path):
    out = tmp_path / "out with spaces & ünïcode"
    assert _convert(inputs, out) == 0
    read_package(out)
