"""The pipeline's speed structure (issue 11): textures encoded by our PNG writer on helper threads while the
later stages run, a bounded number of them alive, nothing left behind by a cancel or a failed write; SLIC on
half the pixels; Telea at full resolution only near what is needed. No timing is asserted: only what makes
it fast."""

from __future__ import annotations

import errno
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import core.pipeline as pipeline
from core.errors import Cancelled, OutputError, PackageError
from core.options import PipelineOptions
from core.package import read_package
from core.package.writer import staged_package
from core.png_check import check_complete, read_header
from core.progress import CancelToken, Progress
from core.textures import STRIP_ROWS, TextureJobs, png_chunks, write_png
from tests.scenes import square_scene

WAIT_S = 30.0
"""A guard against a deadlock in these tests, not a timing requirement."""


def _options(depth_file) -> PipelineOptions:
    return PipelineOptions.from_dict(
        {"depth": {"depth_file": str(depth_file)}, "segment": {"model": "none"}, "inpaint": {"method": "telea"}}
    )


def _three_depth_scene(folder: Path, h: int = 120, w: int = 160) -> tuple[Path, Path]:
    """A wall, a box and a post at three depths: three layers, two of them with holes."""
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([60 + 30 * np.sin(xx / 6.0), 110 + 40 * np.cos(yy / 5.0), 160 + 0 * xx], axis=-1)
    box = (yy >= 25) & (yy < 95) & (xx >= 30) & (xx < 100)
    post = (yy >= 40) & (yy < 110) & (xx >= 85) & (xx < 125)
    rgb[box] = (40, 190, 60)
    rgb[post] = (220, 40, 30)
    depth = np.where(post, 1.5, np.where(box, 3.0, 6.0)).astype(np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb.clip(0, 255).astype(np.uint8)).save(folder / "three.png")
    np.save(folder / "three.npy", depth)
    return folder / "three.png", folder / "three.npy"


def _nothing_left(folder: Path, *keep: str) -> None:
    assert sorted(p.name for p in folder.iterdir()) == sorted(keep)


def _no_helpers_alive() -> bool:
    return not [t for t in threading.enumerate() if t.name.startswith(("photo3d-texture", "photo3d-inpaint"))]


# -- the PNG writer -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(2 * STRIP_ROWS + 37, 53, 4), (1, 1, 4), (STRIP_ROWS, 9, 3), (3, 700, 3)])
def test_write_png_is_a_valid_png_of_exactly_the_pixels(tmp_path, shape):
    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    image[: shape[0] // 2, : shape[1] // 2] = 0  # runs as well as noise
    path = tmp_path / "t.png"
    write_png(path, image)
    header = read_header(path)
    assert (header.width, header.height, header.bit_depth) == (shape[1], shape[0], 8)
    assert header.colour == ("RGBA" if shape[2] == 4 else "RGB") and not header.interlaced
    check_complete(path, header)  # every chunk's CRC, and exactly the data the header promises
    with Image.open(path) as png:
        assert png.mode == ("RGBA" if shape[2] == 4 else "RGB")
        assert np.array_equal(np.asarray(png), image)
    bgr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED).reshape(shape)  # OpenCV (libpng) reads it too
    assert np.array_equal(bgr[..., 2::-1], image[..., :3]) and np.array_equal(bgr[..., 3:], image[..., 3:])
    kinds = [kind for kind, _ in png_chunks(image)]
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and set(kinds[1:-1]) == {b"IDAT"}


def test_write_png_refuses_what_is_not_8_bit_rgb_or_rgba(tmp_path):
    for image in (np.zeros((4, 4, 2), np.uint8), np.zeros((4, 4, 4), np.uint16), np.zeros((4, 4), np.uint8)):
        with pytest.raises(ValueError):
            write_png(tmp_path / "x.png", image)


# -- the helpers: bounded, turn-taking, exact ----------------------------------------------------------------
def test_texture_jobs_write_exact_pngs_with_a_bounded_number_alive(tmp_path):
    rng = np.random.default_rng(3)
    textures = [rng.integers(0, 256, (70, 90, 4), dtype=np.uint8) for _ in range(8)]
    alive, building, writing = [0], [0], [0]
    most = {"alive": 0, "building": 0, "writing": 0}
    lock = threading.Lock()

    def count(what: list[int], name: str, change: int) -> None:
        with lock:
            what[0] += change
            most[name] = max(most[name], what[0])

    def build(k):
        def make():
            count(building, "building", +1)
            count(alive, "alive", +1)
            threading.Event().wait(0.01)
            count(building, "building", -1)
            return textures[k].copy()

        return make

    def write(path, rgba):
        count(writing, "writing", +1)
        threading.Event().wait(0.02)
        write_png(path, rgba)
        count(writing, "writing", -1)
        count(alive, "alive", -1)

    with TextureJobs(write, live=2) as jobs:
        for k in range(8):
            path = tmp_path / f"{k}.png"
            jobs.submit(k, path, build(k), 10, lambda written, p=path: check_complete(p, read_header(p)))
        thumbnails = jobs.results()
    assert _no_helpers_alive()
    for k, texture in enumerate(textures):
        with Image.open(tmp_path / f"{k}.png") as png:
            assert np.array_equal(np.asarray(png), texture)
        assert thumbnails[k].shape == (10, 320, 4)
    assert most["alive"] <= 2 and jobs.peak_live <= 2
    assert most["building"] == 1 and most["writing"] == 1  # builds take turns, and so do writes


def test_textures_are_written_while_the_later_stages_run(tmp_path, monkeypatch):
    """The geometry stage waits here until a layer texture is on disk: with textures written only in the
    package stage (as before issue 11) it would wait in vain."""
    image, depth = _three_depth_scene(tmp_path / "in")
    written = threading.Event()
    stages_at_write: list[str] = []
    current = {"stage": ""}
    real_write, real_mesh = pipeline.write_png, pipeline.build_layer_mesh

    def write(path, rgba):
        real_write(path, rgba)
        if "layers" in str(path):
            stages_at_write.append(current["stage"])
            written.set()

    def mesh(*args, **kwargs):
        assert written.wait(WAIT_S), "no texture was written before the geometry stage went on"
        return real_mesh(*args, **kwargs)

    monkeypatch.setattr(pipeline, "write_png", write)
    monkeypatch.setattr(pipeline, "build_layer_mesh", mesh)
    progress = Progress(callback=lambda stage, fraction, message: current.update(stage=stage))
    result = pipeline.convert_image(image, tmp_path / "pkg", _options(depth), progress)
    package = read_package(result.package_path)
    assert len(package.layers) == 3 and len(stages_at_write) == 3
    assert stages_at_write[0] in ("inpaint", "geometry")
    # What the helpers wrote is what the layers hold: composited back to front, the photo.
    from core.geometry import composite_back_to_front

    rgba = [
        package.in_frame(layer, np.asarray(Image.open(package.path_of(layer.texture)))).astype(np.float32) / 255
        for layer in package.layers
    ]
    photo = np.asarray(Image.open(image)).astype(np.float32)
    assert np.abs(composite_back_to_front(rgba) * 255 - photo).max() <= 1.0
    assert _no_helpers_alive()


def test_live_full_size_textures_stay_bounded_in_the_pipeline(tmp_path, monkeypatch):
    import weakref

    image, depth = _three_depth_scene(tmp_path / "in")
    alive = [0]
    most = [0]
    lock = threading.Lock()
    real_rgba = pipeline.layer_rgba

    def gone() -> None:
        with lock:
            alive[0] -= 1

    def counted(*args, **kwargs):
        texture = real_rgba(*args, **kwargs)
        with lock:
            alive[0] += 1
            most[0] = max(most[0], alive[0])
        weakref.finalize(texture, gone)
        return texture

    monkeypatch.setattr(pipeline, "layer_rgba", counted)
    pipeline.convert_image(image, tmp_path / "pkg", _options(depth))
    assert 1 <= most[0] <= pipeline.TEXTURES_ALIVE
    assert alive[0] == 0


# -- cancels and failures while helpers write -----------------------------------------------------------------
def test_a_cancel_during_encoding_leaves_no_package_and_no_staging_folder(tmp_path, monkeypatch):
    image, depth = _three_depth_scene(tmp_path / "in")
    token = CancelToken()
    calls: list[str] = []
    finished: list[str] = []
    real_write = pipeline.write_png

    def cancelled_mid_write(path, rgba):
        calls.append(Path(path).name)
        token.cancel()  # the user cancels while this texture is being encoded ...
        threading.Event().wait(0.3)  # ... which takes a while yet
        real_write(path, rgba)
        finished.append(Path(path).name)

    monkeypatch.setattr(pipeline, "write_png", cancelled_mid_write)
    with pytest.raises(Cancelled):
        pipeline.convert_image(image, tmp_path / "out", _options(depth), Progress(cancel_token=token))
    _nothing_left(tmp_path, "in")  # no package, no .out.photo3d-* staging folder
    assert calls == finished == ["00_color.png"]  # the running write finished first; no other one started
    assert _no_helpers_alive()


def test_a_failed_texture_write_on_a_helper_is_an_output_error_and_leaves_nothing(tmp_path, monkeypatch):
    image, depth = _three_depth_scene(tmp_path / "in")
    real_write = pipeline.write_png
    calls = []

    def disk_full(path, rgba):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(path, rgba)

    monkeypatch.setattr(pipeline, "write_png", disk_full)
    with pytest.raises(OutputError, match="No space left"):
        pipeline.convert_image(image, tmp_path / "out", _options(depth))
    _nothing_left(tmp_path, "in")
    assert _no_helpers_alive()


def test_write_png_says_how_many_bytes_it_wrote(tmp_path):
    image = np.random.default_rng(1).integers(0, 256, (300, 40, 4), dtype=np.uint8)
    assert write_png(tmp_path / "t.png", image) == (tmp_path / "t.png").stat().st_size


def test_a_texture_cut_short_after_our_encoder_wrote_it_fails_the_package(tmp_path, monkeypatch):
    image, depth = _three_depth_scene(tmp_path / "in")
    real_write = pipeline.write_png

    def cut_short(path, rgba):
        written = real_write(path, rgba)
        if path.name == "01_color.png":
            with open(path, "r+b") as handle:
                handle.truncate(written - 1)
        return written

    monkeypatch.setattr(pipeline, "write_png", cut_short)
    with pytest.raises(PackageError, match="01_color.png"):
        pipeline.convert_image(image, tmp_path / "out", _options(depth))
    _nothing_left(tmp_path, "in")


def test_textures_from_another_writer_are_inflated_before_publishing(tmp_path, monkeypatch):
    image, depth = _three_depth_scene(tmp_path / "in")

    def corrupt_writer(path, rgba):  # a valid header, damaged image data, and no byte count
        write_png(path, rgba)
        data = bytearray(path.read_bytes())
        data[-20] ^= 0xFF
        path.write_bytes(bytes(data))

    monkeypatch.setattr(pipeline, "write_png", corrupt_writer)
    with pytest.raises(PackageError, match="texture"):
        pipeline.convert_image(image, tmp_path / "out", _options(depth))
    _nothing_left(tmp_path, "in")


def test_publish_inflates_every_texture_not_checked_by_its_helper(tmp_path):
    scene = square_scene()
    image, depth = scene.write(tmp_path / "in")
    good = pipeline.convert_image(image, tmp_path / "good", _options(depth)).package_path
    manifest = read_package(good).manifest.to_dict()
    texture = manifest["layers"][0]["texture"]
    with staged_package(tmp_path / "bad") as staged:
        import shutil

        shutil.copytree(good, staged.folder, dirs_exist_ok=True)
        data = bytearray((staged.folder / texture).read_bytes())
        data[-20] ^= 0xFF  # inside the last IDAT chunk: the header still reads fine
        (staged.folder / texture).write_bytes(bytes(data))
        with pytest.raises(PackageError, match="texture"):
            staged.publish(manifest, verified_textures=[layer["texture"] for layer in manifest["layers"][1:]])
    _nothing_left(tmp_path, "in", "good")


# -- fewer full-resolution passes -------------------------------------------------------------------------------
def test_slic_sees_every_pixel_of_a_large_image(monkeypatch):
    """SLIC at half resolution saved 0.1-0.15 s at 1080p but cost Motorcycle's novel view 0.38 dB (overlap)
    and 0.28 dB (disoccluded): colour edges moved by up to two pixels. It runs on the full image."""
    import core.segment as segment

    seen = []
    real_slic = segment.slic

    def spy(image, **kwargs):
        seen.append(image.shape)
        return real_slic(image, **kwargs)

    monkeypatch.setattr(segment, "slic", spy)
    scene = square_scene(h=240, w=321)
    labels = segment.superpixel_labels(scene.rgb.astype(np.float32) / 255, scene.depth, 100)
    assert seen == [(240, 321, 4)]
    assert labels.shape == (240, 321)
    # The depth step stays exact to the pixel: no label straddles the square's edge.
    for value in np.unique(labels):
        inside = scene.square[labels == value].mean()
        assert inside in (0.0, 1.0)


def test_telea_fills_at_full_resolution_only_near_the_needed_pixels_and_gives_the_same_colours(monkeypatch):
    import core.inpaint as inpaint

    masks = []
    real_inpaint = cv2.inpaint

    def spy(image, mask, radius, flags):
        masks.append(int(mask.sum()))
        return real_inpaint(image, mask, radius, flags)

    monkeypatch.setattr(inpaint.cv2, "inpaint", spy)
    h, w, radius = 160, 360, 5
    yy, xx = np.mgrid[0:h, 0:w]
    rgb8 = np.stack([120 + 60 * np.sin(xx / 7.0), 120 + 50 * np.cos(yy / 5.0), 90 + 0 * xx], axis=-1).astype(np.uint8)
    unknown = (yy >= 30) & (yy < 130) & (xx >= 20) & (xx < 340)  # hidden by nearer layers
    needed = unknown & (xx < 60)  # the part of it a camera move can reveal of this layer
    for flags in (cv2.INPAINT_TELEA, cv2.INPAINT_NS):
        masks.clear()
        restricted = inpaint._telea_fill(rgb8, unknown, needed, radius, flags)
        whole_band = inpaint._telea_fill(rgb8, unknown, unknown, radius, flags)
        assert np.array_equal(restricted[needed], whole_band[needed])
        fine_restricted, fine_whole = masks[1], masks[3]  # each call: the coarse fill, then the fine one
        assert fine_restricted < 0.6 * fine_whole
