"""The pipeline's speed structure (issue 11): textures encoded by our PNG writer on helper threads while the
later stages run, a bounded number of them alive, nothing left behind by a cancel or a failed write; the
unseen parts of a texture cleared; meshes built while the next layers are filled; SLIC in two bands at once;
Telea at full resolution only near what is needed. No timing is asserted: only what makes it fast."""

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
from core.textures import STRIP_ROWS, UNSEEN_MARGIN, TextureJobs, clear_unseen, png_chunks, write_png
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
    helpers = ("photo3d-texture", "photo3d-inpaint", "photo3d-mesh", "photo3d-slic")
    return not [t for t in threading.enumerate() if t.name.startswith(helpers)]


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
@pytest.mark.parametrize(("h", "w"), [(240, 321), (321, 240)])
def test_slic_sees_every_pixel_in_two_bands_across_the_long_side(monkeypatch, h, w):
    """SLIC at half resolution saved 0.1-0.15 s at 1080p but cost Motorcycle's novel view 0.38 dB (overlap)
    and 0.28 dB (disoccluded): colour edges moved by up to two pixels. It runs on every pixel, in two bands
    at once."""
    import core.segment as segment

    seen = []
    real_slic = segment.slic

    def spy(image, **kwargs):
        seen.append(image.shape)
        return real_slic(image, **kwargs)

    monkeypatch.setattr(segment, "slic", spy)
    scene = square_scene(h=h, w=w)
    labels = segment.superpixel_labels(scene.rgb.astype(np.float32) / 255, scene.depth, 100)
    assert sorted(seen) == sorted(
        [(h, w // 2, 4), (h, w - w // 2, 4)] if w > h else [(h // 2, w, 4), (h - h // 2, w, 4)]
    )
    assert labels.shape == (h, w)
    # The depth step stays exact to the pixel: no label straddles the square's edge.
    for value in np.unique(labels):
        inside = scene.square[labels == value].mean()
        assert inside in (0.0, 1.0)


def test_a_slic_band_does_not_depend_on_the_other_band():
    """Each band is cut as if alone, with compactness in the features' own units: a far wider range of values
    in one band (slic rescales its input by its range) leaves the other band's superpixels as they were."""
    from core.segment import tiled_slic

    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:96, 0:200]
    features = np.dstack([50 + 20 * np.sin(xx / 9.0), 10 * np.cos(yy / 7.0), rng.normal(0, 2, (96, 200))])
    features = features.astype(np.float32)
    louder = features.copy()
    louder[:, 100:] *= 5.0
    left, left_louder = tiled_slic(features, 40, 10.0)[:, :100], tiled_slic(louder, 40, 10.0)[:, :100]
    assert np.array_equal(left, left_louder)
    labels = tiled_slic(features, 40, 10.0)
    assert set(np.unique(labels[:, :100])).isdisjoint(np.unique(labels[:, 100:]))  # one numbering for both


def test_a_small_image_runs_slic_whole(monkeypatch):
    import core.segment as segment

    seen = []
    real_slic = segment.slic
    monkeypatch.setattr(segment, "slic", lambda image, **kw: seen.append(image.shape) or real_slic(image, **kw))
    segment.tiled_slic(np.zeros((20, 30, 3), np.float32), 4, 10.0)  # bands would be under 4 superpixels across
    assert seen == [(20, 30, 3)]


# -- the unseen parts of a texture --------------------------------------------------------------------------
def test_clear_unseen_zeroes_only_texels_far_from_every_covered_one():
    rng = np.random.default_rng(0)
    rgba = rng.integers(1, 256, (150, 230, 4)).astype(np.uint8)
    rgba[..., 3] = 0
    rgba[40:60, 50:70, 3] = 255
    rgba[120, 200, 3] = 1  # one faint texel counts as coverage
    before = rgba.copy()
    cleared = clear_unseen(rgba)
    assert cleared is rgba
    zeroed = (rgba[..., :3] == 0).all(axis=-1)
    covered = before[..., 3] > 0
    distance = cv2.distanceTransform((~covered).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    assert distance[zeroed].min() >= UNSEEN_MARGIN
    assert np.array_equal(rgba[~zeroed], before[~zeroed])  # the rest untouched, alpha everywhere
    assert np.array_equal(rgba[..., 3], before[..., 3])
    assert zeroed.mean() > 0.5  # most of this texture is far from its coverage
    assert not zeroed[distance < UNSEEN_MARGIN].any()


def test_clear_unseen_keeps_a_fully_covered_texture_and_clears_an_empty_one():
    opaque = np.full((40, 50, 4), 200, np.uint8)
    assert np.array_equal(clear_unseen(opaque.copy()), opaque)
    empty = np.full((40, 50, 4), 200, np.uint8)
    empty[..., 3] = 0
    assert not clear_unseen(empty)[..., :3].any()


def test_package_textures_are_cleared_far_from_their_layers(tmp_path):
    image, depth = _three_depth_scene(tmp_path / "in", h=240, w=320)
    result = pipeline.convert_image(image, tmp_path / "pkg", _options(depth))
    package = read_package(result.package_path)
    front = np.asarray(Image.open(package.path_of(package.layers[-1].texture)))
    covered = front[..., 3] > 0
    far = cv2.distanceTransform((~covered).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE) >= 2 * UNSEEN_MARGIN
    assert far.any() and not front[far][:, :3].any()
    near = ~covered & ~far
    assert front[near][:, :3].any()  # the photo's colours stay where a tap may reach


# -- meshes while the fills go on ---------------------------------------------------------------------------
def test_meshes_are_built_while_the_next_layers_are_filled(tmp_path, monkeypatch):
    import core.inpaint as inpaint

    image, depth = _three_depth_scene(tmp_path / "in")
    first_mesh = threading.Event()
    fills_seen_after_mesh: list[int] = []
    real_mesh, real_layer_disparity = pipeline.build_layer_mesh, inpaint._layer_disparity
    calls = {"fills": 0}

    def mesh(*args, **kwargs):
        first_mesh.set()
        return real_mesh(*args, **kwargs)

    def layer_disparity(*args, **kwargs):
        calls["fills"] += 1
        if calls["fills"] == 3:  # the last layer's fill waits for the first layer's mesh
            assert first_mesh.wait(WAIT_S), "no mesh was built while the layers were being filled"
            fills_seen_after_mesh.append(calls["fills"])
        return real_layer_disparity(*args, **kwargs)

    monkeypatch.setattr(pipeline, "build_layer_mesh", mesh)
    monkeypatch.setattr(inpaint, "_layer_disparity", layer_disparity)
    options = _options(depth)
    scene = pipeline.compute_layers(image, options)
    assert fills_seen_after_mesh == [3]
    # The helper's meshes are the ones built in order, layer by layer, from the same fills.
    camera = scene.loaded.camera.scaled(*scene.loaded.work_size[::-1])
    for fill, built in zip(scene.fills, scene.meshes, strict=True):
        again = pipeline._layer_mesh(fill, camera, scene.loaded, options)
        assert np.array_equal(again.vertices, built.vertices) and np.array_equal(again.faces, built.faces)
    assert _no_helpers_alive()


def test_a_cancel_while_meshes_are_built_leaves_no_helper(tmp_path, monkeypatch):
    image, depth = _three_depth_scene(tmp_path / "in")
    token = CancelToken()
    real_mesh = pipeline.build_layer_mesh

    def mesh(*args, **kwargs):
        token.cancel()
        return real_mesh(*args, **kwargs)

    monkeypatch.setattr(pipeline, "build_layer_mesh", mesh)
    with pytest.raises(Cancelled):
        pipeline.convert_image(image, tmp_path / "pkg", _options(depth), Progress(cancel_token=token))
    assert not (tmp_path / "pkg").exists()
    _nothing_left(tmp_path, "in")
    assert _no_helpers_alive()


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
