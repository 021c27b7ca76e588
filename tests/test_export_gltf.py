"""The glTF export (``core.export.gltf``): checked by the Khronos validator and read back with pygltflib.

Nothing here reads the file with our own writer's code: the GLB is parsed by pygltflib (and, for the header
and chunk layout, by ``struct``), the accessors are decoded from its binary chunk with numpy, and the
camera is rebuilt from the node's translation and quaternion with the textbook formulas below.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import struct
from pathlib import Path

import numpy as np
import pygltflib
import pytest
from PIL import Image

from core.errors import ExportError
from core.export.gltf import write_glb
from core.export.scene import CompScene, scene_from_package
from tests.gltf_validator import ERROR, WARNING, issue_counts, messages, validate
from tests.scenes import rotation_matrix, square_package

# Blender world (Z up) -> glTF world (Y up): (x, y, z) -> (x, z, -y). Written out here, not imported.
Y_UP = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]], np.float64)
Z_UP = np.linalg.inv(Y_UP)

COMPONENTS = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32, 5126: np.float32}
WIDTHS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}

FPS = 25.0
FIRST_FRAME = 7
FRAMES = 9


# ----------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gltf")
    package = square_package(folder)
    return folder, package, scene_from_package(package, fps=FPS)


@pytest.fixture(scope="module")
def package(made):
    return made[1]


@pytest.fixture(scope="module")
def scene(made) -> CompScene:
    return made[2]


def _moved(scene: CompScene, **changes) -> CompScene:
    """``scene`` with a camera that dollies, pans through 320 degrees and tilts over ``FRAMES`` frames."""
    still = scene.camera[0]
    samples = []
    for i in range(FRAMES):
        move = np.eye(4)
        move[:3, 3] = (0.3 * i, -0.45 * i, 0.12 * i)
        matrix = move @ rotation_matrix("z", 40.0 * i) @ rotation_matrix("x", 4.0 * i) @ np.asarray(still.matrix_world)
        fields = {key: value(i) if callable(value) else value for key, value in changes.items()}
        samples.append(dataclasses.replace(still, frame=FIRST_FRAME + i, matrix_world=matrix, **fields))
    return dataclasses.replace(scene, camera=tuple(samples))


@pytest.fixture(scope="module")
def animated(scene) -> CompScene:
    return _moved(scene)


@pytest.fixture(scope="module")
def static_glb(made, scene):
    path = made[0] / "static.glb"
    warnings = write_glb(scene, path)
    return path, warnings


@pytest.fixture(scope="module")
def animated_glb(made, animated):
    path = made[0] / "animated.glb"
    warnings = write_glb(animated, path)
    return path, warnings


# ----------------------------------------------------------------------------------------------- readback


def _load(path: Path) -> pygltflib.GLTF2:
    return pygltflib.GLTF2.load_binary(str(path))


def _accessor(gltf: pygltflib.GLTF2, index: int) -> np.ndarray:
    """An accessor's data (count, components), decoded from the GLB's binary chunk."""
    accessor = gltf.accessors[index]
    view = gltf.bufferViews[accessor.bufferView]
    blob = gltf.binary_blob()
    dtype = np.dtype(COMPONENTS[accessor.componentType]).newbyteorder("<")
    width = WIDTHS[accessor.type]
    start = (view.byteOffset or 0) + (accessor.byteOffset or 0)
    assert view.byteStride in (None, width * dtype.itemsize), "tightly packed"
    assert start + accessor.count * width * dtype.itemsize <= (view.byteOffset or 0) + view.byteLength
    data = np.frombuffer(blob, dtype, count=accessor.count * width, offset=start)
    return data.reshape(accessor.count, width)


def _view_bytes(gltf: pygltflib.GLTF2, index: int) -> bytes:
    view = gltf.bufferViews[index]
    start = view.byteOffset or 0
    return gltf.binary_blob()[start : start + view.byteLength]


def _quaternion_matrix(q) -> np.ndarray:
    x, y, z, w = (float(v) for v in q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def _trs_matrix(translation, rotation) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3] = _quaternion_matrix(rotation)
    matrix[:3, 3] = np.asarray(translation, np.float64)
    return matrix


def _camera_node(gltf: pygltflib.GLTF2) -> tuple[int, pygltflib.Node]:
    found = [(i, node) for i, node in enumerate(gltf.nodes) if node.camera is not None]
    assert len(found) == 1
    return found[0]


def _card_nodes(gltf: pygltflib.GLTF2) -> list[pygltflib.Node]:
    return [node for node in gltf.nodes if node.mesh is not None]


def _report_ok(path: Path) -> dict:
    report = validate(path)
    counts = issue_counts(report)
    assert counts["errors"] == 0 and counts["warnings"] == 0, "\n".join(messages(report, WARNING))
    return report


# ----------------------------------------------------------------------------------------------- tests


def test_validator_passes_the_static_scene(static_glb, scene):
    path, warnings = static_glb
    assert warnings == []
    report = _report_ok(path)
    info = report["info"]
    assert info["generator"] == "Photo3D" and info["version"] == "2.0"
    assert info["animationCount"] == 0
    assert info["drawCallCount"] == len(scene.cards)
    assert info["totalTriangleCount"] == sum(len(card.faces) for card in scene.cards)
    assert info["totalVertexCount"] == sum(len(card.vertices) for card in scene.cards)
    assert [r["storage"] for r in info["resources"]] == ["glb"] + ["buffer-view"] * len(scene.cards)


def test_validator_passes_the_animated_scene(animated_glb):
    path, warnings = animated_glb
    assert warnings == []
    assert _report_ok(path)["info"]["animationCount"] == 1


def test_validator_catches_a_broken_file(static_glb, tmp_path):
    """The validator check can fail: a POSITION max that does not match the data is an error."""
    data = static_glb[0].read_bytes()
    magic, version, _ = struct.unpack_from("<III", data, 0)
    json_length, json_type = struct.unpack_from("<II", data, 12)
    assert (magic, version, json_type) == (0x46546C67, 2, 0x4E4F534A)
    doc = json.loads(data[20 : 20 + json_length])
    doc["accessors"][doc["meshes"][0]["primitives"][0]["attributes"]["POSITION"]]["max"][0] += 1.0
    text = json.dumps(doc).encode()
    text += b" " * (-len(text) % 4)
    rest = data[20 + json_length :]
    broken = tmp_path / "broken.glb"
    header = struct.pack("<III", magic, version, 12 + 8 + len(text) + len(rest)) + struct.pack(
        "<II", len(text), json_type
    )
    broken.write_bytes(header + text + rest)
    report = validate(broken)
    assert issue_counts(report)["errors"] >= 1
    codes = {m["code"] for m in report["issues"]["messages"] if m["severity"] == ERROR}
    assert "ACCESSOR_MAX_MISMATCH" in codes


def test_glb_layout(static_glb, scene):
    path = static_glb[0]
    data = path.read_bytes()
    magic, version, length = struct.unpack_from("<III", data, 0)
    assert (magic, version, length) == (0x46546C67, 2, len(data))
    json_length, json_type = struct.unpack_from("<II", data, 12)
    bin_length, bin_type = struct.unpack_from("<II", data, 20 + json_length)
    assert json_type == 0x4E4F534A and bin_type == 0x004E4942
    assert json_length % 4 == 0 and bin_length % 4 == 0 and 28 + json_length + bin_length == len(data)

    gltf = _load(path)
    assert gltf.asset.version == "2.0" and gltf.asset.generator == "Photo3D"
    assert len(gltf.buffers) == 1 and gltf.buffers[0].uri is None and gltf.buffers[0].byteLength == bin_length
    assert all((view.byteOffset or 0) % 4 == 0 for view in gltf.bufferViews)
    assert gltf.scene == 0 and len(gltf.scenes) == 1
    assert sorted(gltf.scenes[0].nodes) == list(range(len(gltf.nodes)))
    assert len(gltf.nodes) == len(scene.cards) + 1 and len(gltf.meshes) == len(scene.cards)
    assert [node.name for node in _card_nodes(gltf)] == [f"L{c.index:02d} {c.name}" for c in scene.cards]
    assert [node.name for node in _card_nodes(gltf)][0] == "L00 layer_00"
    for node, card in zip(_card_nodes(gltf), scene.cards, strict=True):
        assert node.extras == {"photo3d_layer_index": card.index, "photo3d_depth_range": list(card.depth_range)}
        # Only a translation, to the layer's origin: viewers sorting by object origin keep the layer order.
        assert node.matrix is None and node.rotation is None and node.scale is None
        np.testing.assert_allclose(node.translation, Y_UP[:3, :3] @ card.origin, atol=1e-9)
        (primitive,) = gltf.meshes[node.mesh].primitives
        assert primitive.mode in (None, 4)
        attributes = primitive.attributes
        for accessor in (attributes.POSITION, attributes.TEXCOORD_0):
            assert gltf.bufferViews[gltf.accessors[accessor].bufferView].target == 34962
            assert gltf.accessors[accessor].componentType == 5126
        assert gltf.bufferViews[gltf.accessors[primitive.indices].bufferView].target == 34963
        assert gltf.accessors[primitive.indices].componentType == 5123  # small meshes: unsigned short
        position = gltf.accessors[attributes.POSITION]
        values = _accessor(gltf, attributes.POSITION)
        assert position.min == values.min(axis=0).tolist() and position.max == values.max(axis=0).tolist()
        np.testing.assert_allclose(values + node.translation, card.vertices @ Y_UP[:3, :3].T, atol=1e-6)
        np.testing.assert_array_equal(_accessor(gltf, primitive.indices).reshape(-1, 3), card.faces)
        np.testing.assert_allclose(
            _accessor(gltf, attributes.TEXCOORD_0), np.stack([card.uvs[:, 0], 1 - card.uvs[:, 1]], -1), atol=1e-7
        )


def test_materials_are_unlit_and_blend_but_the_backdrop(static_glb, scene):
    gltf = _load(static_glb[0])
    assert "KHR_materials_unlit" in gltf.extensionsUsed
    assert len(gltf.materials) == len(scene.cards)
    assert [card.opaque for card in scene.cards] == [True] + [False] * (len(scene.cards) - 1)
    for node, card in zip(_card_nodes(gltf), scene.cards, strict=True):
        material = gltf.materials[gltf.meshes[node.mesh].primitives[0].material]
        assert material.extensions == {"KHR_materials_unlit": {}}
        assert material.alphaMode == ("OPAQUE" if card.opaque else "BLEND")
        assert material.doubleSided is True
        pbr = material.pbrMetallicRoughness
        assert pbr.baseColorFactor == [1.0, 1.0, 1.0, 1.0]
        assert pbr.metallicFactor == 0.0 and pbr.roughnessFactor == 1.0
        texture = gltf.textures[pbr.baseColorTexture.index]
        sampler = gltf.samplers[texture.sampler]
        assert (sampler.magFilter, sampler.minFilter) == (9729, 9729)
        assert (sampler.wrapS, sampler.wrapT) == (33071, 33071)
    assert gltf.materials[0].alphaMode == "OPAQUE" and scene.cards[0].name == "layer_00"


def test_camera_lens(static_glb, scene):
    gltf = _load(static_glb[0])
    index, node = _camera_node(gltf)
    assert node.name == "Camera" and len(gltf.cameras) == 1
    camera = gltf.cameras[node.camera]
    assert camera.type == "perspective"
    sample = scene.camera[0]
    _, sensor_h = sample.apertures_mm(scene.width, scene.height)
    assert sensor_h == pytest.approx(36.0 * 96 / 128)  # HORIZONTAL fit of a 36 mm sensor on a 128x96 photo
    assert camera.perspective.yfov == pytest.approx(2 * math.atan(sensor_h / (2 * sample.lens_mm)), rel=1e-12)
    # The same angle from the pinhole camera in pixels.
    focal_px = sample.intrinsics(scene.width, scene.height).focal_px
    assert camera.perspective.yfov == pytest.approx(2 * math.atan(scene.height / (2 * focal_px)), rel=1e-12)
    assert camera.perspective.aspectRatio == pytest.approx(128 / 96, rel=1e-12)
    assert camera.perspective.znear == sample.clip_start and camera.perspective.zfar == sample.clip_end
    assert gltf.animations == []
    assert math.isclose(float(np.linalg.norm(node.rotation)), 1.0, abs_tol=1e-12)


def test_cards_project_onto_the_pixels_they_sample(static_glb, scene, package):
    """From the camera node's TRS and lens alone, each vertex lands on the photo pixel its TEXCOORD_0 samples."""
    gltf = _load(static_glb[0])
    _, node = _camera_node(gltf)
    perspective = gltf.cameras[node.camera].perspective
    camera_world = Z_UP @ _trs_matrix(node.translation, node.rotation)  # Blender world
    np.testing.assert_allclose(camera_world, scene.camera[0].matrix_world, atol=1e-12)
    world_camera = np.linalg.inv(camera_world)
    tan_y = math.tan(perspective.yfov / 2)
    tan_x = tan_y * perspective.aspectRatio
    layers = {layer.index: layer for layer in package.layers}
    checked = 0
    for card_node in _card_nodes(gltf):
        layer = layers[card_node.extras["photo3d_layer_index"]]
        tw, th = package.manifest.texture_size(layer)
        border = layer.border or 0
        attributes = gltf.meshes[card_node.mesh].primitives[0].attributes
        positions = _accessor(gltf, attributes.POSITION).astype(np.float64)
        st = _accessor(gltf, attributes.TEXCOORD_0).astype(np.float64)
        world = (positions + np.asarray(card_node.translation or [0, 0, 0])) @ Z_UP[:3, :3].T
        local = world @ world_camera[:3, :3].T + world_camera[:3, 3]
        depth = -local[:, 2]
        assert (depth > 0).all()
        u = (local[:, 0] / (depth * tan_x) + 1) / 2 * scene.width
        v = (1 - local[:, 1] / (depth * tan_y)) / 2 * scene.height
        expected = np.stack([st[:, 0] * tw - border, st[:, 1] * th - border], -1)  # glTF v is already flipped
        np.testing.assert_allclose(np.stack([u, v], -1), expected, atol=0.01, rtol=0)
        checked += len(positions)
    assert checked == sum(len(card.vertices) for card in scene.cards)
    assert any(layer.border for layer in package.layers)  # the border offset is exercised


def test_camera_animation(animated_glb, animated):
    gltf = _load(animated_glb[0])
    index, node = _camera_node(gltf)
    (animation,) = gltf.animations
    assert animation.name == "Camera"
    paths = {channel.target.path: channel for channel in animation.channels}
    assert set(paths) == {"translation", "rotation"} and len(animation.channels) == 2
    assert all(channel.target.node == index for channel in animation.channels)
    translation = animation.samplers[paths["translation"].sampler]
    rotation = animation.samplers[paths["rotation"].sampler]
    assert translation.interpolation == rotation.interpolation == "LINEAR"

    times = _accessor(gltf, translation.input)[:, 0]
    np.testing.assert_array_equal(_accessor(gltf, rotation.input)[:, 0], times)
    expected_times = np.array([(s.frame - FIRST_FRAME) / FPS for s in animated.camera], np.float32)
    np.testing.assert_array_equal(times, expected_times)
    assert times[0] == 0.0 and times[-1] == np.float32((FRAMES - 1) / FPS)
    accessor = gltf.accessors[translation.input]
    assert accessor.componentType == 5126 and accessor.min == [0.0] and accessor.max == [float(times[-1])]

    translations = _accessor(gltf, translation.output)
    rotations = _accessor(gltf, rotation.output)
    assert translations.shape == (FRAMES, 3) and rotations.shape == (FRAMES, 4)
    for sample, t, q in zip(animated.camera, translations, rotations, strict=True):
        assert abs(float(np.linalg.norm(q.astype(np.float64))) - 1) < 1e-6
        np.testing.assert_allclose(Z_UP @ _trs_matrix(t, q), sample.matrix_world, atol=1e-5, rtol=0)
    # Neighbouring keys are in one hemisphere, so linear (slerp) interpolation takes the short way round.
    assert (np.sum(rotations[1:] * rotations[:-1], axis=1) > 0).all()
    # The node's own TRS is the first frame.
    np.testing.assert_allclose(node.translation, translations[0], atol=1e-6)
    np.testing.assert_allclose(node.rotation, rotations[0], atol=1e-6)
    # The camera really moves: the last frame is not the first.
    assert not np.allclose(animated.camera[-1].matrix_world, animated.camera[0].matrix_world, atol=0.1)


def test_embedded_images_are_the_package_textures(static_glb, scene):
    gltf = _load(static_glb[0])
    assert len(gltf.images) == len(scene.cards)
    for node, card in zip(_card_nodes(gltf), scene.cards, strict=True):
        material = gltf.materials[gltf.meshes[node.mesh].primitives[0].material]
        image = gltf.images[gltf.textures[material.pbrMetallicRoughness.baseColorTexture.index].source]
        assert image.mimeType == "image/png" and image.uri is None and image.bufferView is not None
        data = _view_bytes(gltf, image.bufferView)
        assert data == card.texture.read_bytes()
        with Image.open(io.BytesIO(data)) as embedded, Image.open(card.texture) as original:
            assert embedded.mode == original.mode == "RGBA"
            np.testing.assert_array_equal(np.asarray(embedded), np.asarray(original))


def test_lens_change_warns(scene, tmp_path):
    zoom = _moved(scene, lens_mm=lambda i: scene.camera[0].lens_mm * (1 + 0.1 * i))
    path = tmp_path / "zoom.glb"
    warnings = write_glb(zoom, path)
    assert len(warnings) == 1 and "lens changes" in warnings[0] and "zoom.glb" in warnings[0]
    camera = _load(path).cameras[0]
    _, sensor_h = zoom.camera[0].apertures_mm(zoom.width, zoom.height)
    assert camera.perspective.yfov == pytest.approx(2 * math.atan(sensor_h / (2 * zoom.camera[0].lens_mm)))
    _report_ok(path)


def test_lens_shift_warns(scene, tmp_path):
    shifted = dataclasses.replace(scene, camera=(dataclasses.replace(scene.camera[0], shift_y=0.05),))
    warnings = write_glb(shifted, tmp_path / "shift.glb")
    assert len(warnings) == 1 and "shift" in warnings[0]
    both = _moved(scene, shift_x=0.02, lens_mm=lambda i: 30.0 + i)
    assert len(write_glb(both, tmp_path / "both.glb")) == 2
    tiny = dataclasses.replace(scene, camera=(dataclasses.replace(scene.camera[0], shift_x=1e-12),))
    assert write_glb(tiny, tmp_path / "tiny.glb") == []


def test_missing_texture_raises(scene, tmp_path):
    missing = tmp_path / "gone" / "L01_missing.png"
    cards = (scene.cards[0], dataclasses.replace(scene.cards[1], texture=missing), *scene.cards[2:])
    path = tmp_path / "out.glb"
    path.write_bytes(b"earlier export")
    with pytest.raises(ExportError, match="L01_missing.png"):
        write_glb(dataclasses.replace(scene, cards=cards), path)
    assert path.read_bytes() == b"earlier export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.glb"]  # no temporary file left behind


def test_texture_that_is_not_a_png_raises(scene, tmp_path):
    fake = tmp_path / "fake.png"
    fake.write_bytes(b"not a png at all")
    cards = (dataclasses.replace(scene.cards[0], texture=fake), *scene.cards[1:])
    with pytest.raises(ExportError, match="fake.png"):
        write_glb(dataclasses.replace(scene, cards=cards), tmp_path / "out.glb")
    assert not (tmp_path / "out.glb").exists()
