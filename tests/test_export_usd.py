"""The USD comp export: the stage read back with pxr, checked against the scene it was written from."""

from __future__ import annotations

import dataclasses
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from core.errors import ExportError
from core.export.scene import CameraSample, CompScene, scene_from_package
from core.export.usd import write_usd
from tests.scenes import rotation_matrix, square_package

PIXEL_TOLERANCE = 0.01


@pytest.fixture(scope="module")
def pxr():
    from pxr import Gf, Sdf, Usd, UsdGeom, UsdShade  # usd-core (requirements/dev.txt): missing fails, not skips

    return SimpleNamespace(Gf=Gf, Sdf=Sdf, Usd=Usd, UsdGeom=UsdGeom, UsdShade=UsdShade)


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    return square_package(tmp_path_factory.mktemp("usd_package"))


@pytest.fixture(scope="module")
def scene(package) -> CompScene:
    return scene_from_package(package)


def _translation(x: float, y: float, z: float) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, 3] = (x, y, z)
    return matrix


@pytest.fixture(scope="module")
def animated(scene) -> CompScene:
    """The photo's camera dollying, panning and zooming over four frames, one of them a 35 mm lens."""
    first = scene.camera[0]
    moves = [
        (np.eye(4), first.lens_mm),
        (_translation(0.1, 0.05, -0.2) @ rotation_matrix("y", 3.0), 35.0),
        (_translation(0.25, -0.1, -0.5) @ rotation_matrix("x", -4.0) @ rotation_matrix("y", 6.0), 50.0),
        (_translation(-0.3, 0.2, 0.3) @ rotation_matrix("z", 10.0) @ rotation_matrix("y", -5.0), 24.0),
    ]
    samples = tuple(
        # Moves are in the camera's own axes: world = M0 @ move @ local.
        dataclasses.replace(first, frame=10 + i, matrix_world=first.matrix_world @ move, lens_mm=lens)
        for i, (move, lens) in enumerate(moves)
    )
    return dataclasses.replace(scene, camera=samples)


def _export(scene: CompScene, folder: Path) -> Path:
    """Copy the cards' textures to ``folder/textures`` and write ``folder/scene.usda``."""
    (folder / "textures").mkdir(parents=True, exist_ok=True)
    textures = {}
    for card in scene.cards:
        relative = f"textures/L{card.index:02d}_{card.name}.png"
        shutil.copyfile(card.texture, folder / relative)
        textures[card.index] = relative
    path = folder / "scene.usda"
    write_usd(scene, path, textures)
    return path


def _open(pxr, path: Path):
    stage = pxr.Usd.Stage.Open(str(path))
    assert stage, f"{path} does not open"
    return stage


def _cards(pxr, stage) -> dict[int, object]:
    """The stage's card meshes by their ``photo3d:layerIndex``."""
    layers = stage.GetPrimAtPath("/Photo3D/Layers")
    assert layers.IsValid()
    meshes = {}
    for prim in layers.GetChildren():
        assert prim.IsA(pxr.UsdGeom.Mesh), prim.GetPath()
        meshes[prim.GetAttribute("photo3d:layerIndex").Get()] = prim
    return meshes


def _camera(pxr, stage):
    prim = stage.GetPrimAtPath("/Photo3D/Camera")
    assert prim.IsValid() and prim.IsA(pxr.UsdGeom.Camera)
    return pxr.UsdGeom.Camera(prim)


def _resolution(stage) -> tuple[int, int]:
    value = stage.GetPrimAtPath("/Photo3D/Camera").GetAttribute("photo3d:resolution").Get()
    return int(value[0]), int(value[1])


def _world_points(pxr, mesh) -> np.ndarray:
    """A card's points in world space, through its own transform as USD computes it."""
    points = np.array(pxr.UsdGeom.Mesh(mesh).GetPointsAttr().Get(), np.float64)
    matrix = np.array(pxr.UsdGeom.Xformable(mesh).ComputeLocalToWorldTransform(pxr.Usd.TimeCode.Default()))
    return points @ matrix[:3, :3] + matrix[3, :3]  # USD matrices take row vectors


def _usd_project(pxr, stage, frame: int, points: np.ndarray) -> np.ndarray:
    """Pixels (u, v), origin top-left, of world ``points`` through the stage's camera alone at ``frame``."""
    camera = _camera(pxr, stage).GetCamera(pxr.Usd.TimeCode(frame))
    frustum = camera.frustum
    assert frustum.GetProjectionType() == pxr.Gf.Frustum.Perspective
    # Gf matrices act on row vectors: clip = p @ view @ projection.
    matrix = np.array(frustum.ComputeViewMatrix()) @ np.array(frustum.ComputeProjectionMatrix())
    homogeneous = np.concatenate([np.asarray(points, np.float64), np.ones((len(points), 1))], axis=1)
    clip = homogeneous @ matrix
    assert (clip[:, 3] > 0).all(), "points behind the camera"
    ndc = clip[:, :2] / clip[:, 3:]
    width, height = _resolution(stage)
    return np.stack([(ndc[:, 0] + 1) / 2 * width, (1 - ndc[:, 1]) / 2 * height], axis=1)


def _compliance_problems(path: Path) -> list[str]:
    """What USD's compliance checking says is wrong with ``path``: ``UsdUtils.ComplianceChecker`` where this
    USD still has it (it was removed in 26.x), else every registered ``UsdValidation`` validator."""
    from pxr import Usd, UsdUtils

    if hasattr(UsdUtils, "ComplianceChecker"):
        checker = UsdUtils.ComplianceChecker(
            arkit=False, skipARKitRootLayerCheck=False, rootPackageOnly=False, skipVariants=False
        )
        checker.CheckCompliance(str(path))
        return [f"error: {e}" for e in checker.GetErrors()] + [f"failed: {f}" for f in checker.GetFailedChecks()]
    from pxr import UsdValidation

    validators = UsdValidation.ValidationRegistry().GetOrLoadAllValidators()
    assert len(validators) >= 10, "the USD validators did not load"
    context = UsdValidation.ValidationContext(validators)
    errors = context.Validate(Usd.Stage.Open(str(path)))
    problems = (UsdValidation.ValidationErrorType.Error, UsdValidation.ValidationErrorType.Warn)
    return [f"{e.GetType()}: {e.GetErrorAsString()}" for e in errors if e.GetType() in problems]


# -- stage layout ---------------------------------------------------------------------------------------------


def test_stage_metadata_and_layout(pxr, animated, tmp_path):
    path = _export(animated, tmp_path)
    assert path.read_text().startswith("#usda 1.0")
    stage = _open(pxr, path)
    assert pxr.UsdGeom.GetStageUpAxis(stage) == pxr.UsdGeom.Tokens.z
    assert pxr.UsdGeom.GetStageMetersPerUnit(stage) == 1.0
    assert stage.GetTimeCodesPerSecond() == animated.fps == stage.GetFramesPerSecond()
    assert (stage.GetStartTimeCode(), stage.GetEndTimeCode()) == (10, 13)
    root = stage.GetDefaultPrim()
    assert root.GetPath() == pxr.Sdf.Path("/Photo3D") and root.IsA(pxr.UsdGeom.Xform)
    assert sorted(str(p.GetPath()) for p in stage.GetPrimAtPath("/Photo3D/Layers").GetChildren()) == [
        "/Photo3D/Layers/L00_layer_00",
        "/Photo3D/Layers/L01_layer_01",
    ]
    assert stage.GetPrimAtPath("/Photo3D/Looks/L00_layer_00").IsA(pxr.UsdShade.Material)
    assert stage.GetPrimAtPath("/Photo3D/Camera").IsA(pxr.UsdGeom.Camera)
    # Only the stage and the textures the caller put there: no temporary files.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.usda", "textures"]


def test_compliance_checker_finds_nothing(pxr, scene, animated, tmp_path):
    for name, case in (("still", scene), ("animated", animated)):
        path = _export(case, tmp_path / name)
        problems = _compliance_problems(path)
        assert not problems, f"{name}: " + "\n".join(problems)


def test_compliance_checker_catches_a_broken_stage(pxr, scene, tmp_path):
    """The check above can fail: a stage without its metadata and with an unbound-API binding is reported."""
    path = _export(scene, tmp_path)
    stage = _open(pxr, path)
    layer = stage.GetRootLayer()
    layer.ClearDefaultPrim()
    layer.pseudoRoot.ClearInfo("metersPerUnit")
    mesh = stage.GetPrimAtPath("/Photo3D/Layers/L01_layer_01")
    mesh.RemoveAPI(pxr.UsdShade.MaterialBindingAPI)
    broken = tmp_path / "broken.usda"
    layer.Export(str(broken))
    assert _compliance_problems(broken)


# -- meshes ---------------------------------------------------------------------------------------------------


def test_cards_are_world_space_triangle_meshes(pxr, scene, tmp_path):
    stage = _open(pxr, _export(scene, tmp_path))
    meshes = _cards(pxr, stage)
    assert sorted(meshes) == [card.index for card in scene.cards]
    for card in scene.cards:
        mesh = pxr.UsdGeom.Mesh(meshes[card.index])
        points = _world_points(pxr, mesh)
        np.testing.assert_allclose(points, card.vertices, atol=1e-5)
        assert list(mesh.GetFaceVertexCountsAttr().Get()) == [3] * len(card.faces)
        assert list(mesh.GetFaceVertexIndicesAttr().Get()) == card.faces.reshape(-1).tolist()
        st = pxr.UsdGeom.PrimvarsAPI(mesh).GetPrimvar("st")
        assert st.GetTypeName() == pxr.Sdf.ValueTypeNames.TexCoord2fArray
        assert st.GetInterpolation() == pxr.UsdGeom.Tokens.vertex
        np.testing.assert_array_equal(np.array(st.Get(), np.float32), card.uvs)
        assert mesh.GetDoubleSidedAttr().Get() is True
        assert mesh.GetSubdivisionSchemeAttr().Get() == pxr.UsdGeom.Tokens.none
        assert mesh.GetOrientationAttr().Get() == pxr.UsdGeom.Tokens.rightHanded
        # One translation to the layer's origin, so renderers sorting by object origin keep the layer order.
        ops = pxr.UsdGeom.Xformable(mesh).GetOrderedXformOps()
        assert [op.GetOpType() for op in ops] == [pxr.UsdGeom.XformOp.TypeTranslate]
        np.testing.assert_allclose(np.array(ops[0].Get()), card.origin, atol=1e-9)
        local = card.vertices - card.origin
        extent = np.array(mesh.GetExtentAttr().Get(), np.float64)
        np.testing.assert_allclose(extent, [local.min(0), local.max(0)], atol=1e-5)
        # Right-handed faces' normals face the camera that sees them counter-clockwise.
        eye = scene.camera[0].matrix_world[:3, 3]
        a, b, c = (points[card.faces[:, k]] for k in range(3))
        normals = np.cross(b - a, c - a)
        assert (np.einsum("ij,ij->i", normals, eye - (a + b + c) / 3) > 0).all()


def test_custom_attributes_match_the_package(pxr, package, scene, tmp_path):
    stage = _open(pxr, _export(scene, tmp_path))
    meshes = _cards(pxr, stage)
    assert sorted(meshes) == [layer.index for layer in package.layers]
    for position, layer in enumerate(package.layers):
        prim = meshes[layer.index]
        index = prim.GetAttribute("photo3d:layerIndex")
        depth = prim.GetAttribute("photo3d:depthRange")
        assert index.GetTypeName() == pxr.Sdf.ValueTypeNames.Int and index.IsCustom()
        assert depth.GetTypeName() == pxr.Sdf.ValueTypeNames.Float2 and depth.IsCustom()
        assert index.Get() == layer.index
        assert tuple(depth.Get()) == tuple(np.float32(layer.depth_range))
        assert prim.GetAttribute("photo3d:opaque").Get() is (position == 0)
    camera = package.manifest.camera
    assert _resolution(stage) == (camera.width, camera.height)


# -- materials ------------------------------------------------------------------------------------------------


def _shader_source(input_):
    """The (shader prim path, output name) an input is connected to."""
    sources = input_.GetConnectedSources()[0]
    assert len(sources) == 1, input_.GetFullName()
    return sources[0].source.GetPath(), sources[0].sourceName


def test_materials_read_the_textures(pxr, scene, tmp_path):
    stage = _open(pxr, _export(scene, tmp_path))
    meshes = _cards(pxr, stage)
    for card in scene.cards:
        prim = meshes[card.index]
        assert prim.HasAPI(pxr.UsdShade.MaterialBindingAPI)
        material = pxr.UsdShade.MaterialBindingAPI(prim).ComputeBoundMaterial()[0]
        assert material and material.GetPath().GetParentPath() == pxr.Sdf.Path("/Photo3D/Looks")
        surface = material.ComputeSurfaceSource()[0]
        assert surface and surface.GetIdAttr().Get() == "UsdPreviewSurface"

        texture, output = _shader_source(surface.GetInput("diffuseColor"))
        assert output == "rgb" and _shader_source(surface.GetInput("emissiveColor")) == (texture, "rgb")
        texture = pxr.UsdShade.Shader(stage.GetPrimAtPath(texture))
        assert texture.GetIdAttr().Get() == "UsdUVTexture"
        asset = texture.GetInput("file").Get()
        assert asset.path == f"textures/L{card.index:02d}_{card.name}.png"
        assert asset.resolvedPath, f"{asset.path} does not resolve"
        assert Path(asset.resolvedPath).samefile(tmp_path / asset.path)
        assert Path(asset.resolvedPath).read_bytes() == card.texture.read_bytes()
        assert texture.GetInput("sourceColorSpace").Get() == "sRGB"
        assert texture.GetInput("wrapS").Get() == "clamp" and texture.GetInput("wrapT").Get() == "clamp"

        reader, output = _shader_source(texture.GetInput("st"))
        reader = pxr.UsdShade.Shader(stage.GetPrimAtPath(reader))
        assert output == "result" and reader.GetIdAttr().Get() == "UsdPrimvarReader_float2"
        varname = reader.GetInput("varname")
        assert varname.GetTypeName() == pxr.Sdf.ValueTypeNames.String and varname.Get() == "st"

        assert surface.GetInput("roughness").Get() == 1.0
        assert surface.GetInput("metallic").Get() == 0.0
        assert surface.GetInput("ior").Get() == 1.0
        assert surface.GetInput("useSpecularWorkflow").Get() == 0
        opacity = surface.GetInput("opacity")
        if card.opaque:
            # No opacity authored (its fallback is 1), or an unconnected 1.
            assert not opacity or (not opacity.HasConnectedSource() and opacity.Get() in (None, 1.0))
        else:
            source, output = _shader_source(opacity)
            assert source == texture.GetPath() and output == "a"
            assert surface.GetInput("opacityThreshold").Get() == 0.0
    assert [card.opaque for card in scene.cards] == [True, False]


# -- camera ---------------------------------------------------------------------------------------------------


def test_animated_camera_reads_back_per_frame(pxr, animated, tmp_path):
    stage = _open(pxr, _export(animated, tmp_path))
    camera = _camera(pxr, stage)
    ops = camera.GetOrderedXformOps()
    assert [op.GetOpName() for op in ops] == ["xformOp:transform"]
    frames = [sample.frame for sample in animated.camera]
    assert ops[0].GetTimeSamples() == frames
    for attribute in (
        camera.GetFocalLengthAttr(),
        camera.GetHorizontalApertureAttr(),
        camera.GetVerticalApertureAttr(),
        camera.GetHorizontalApertureOffsetAttr(),
        camera.GetVerticalApertureOffsetAttr(),
    ):
        assert attribute.GetTimeSamples() == frames, attribute.GetName()
    assert camera.GetProjectionAttr().Get() == pxr.UsdGeom.Tokens.perspective
    width, height = animated.width, animated.height
    for sample in animated.camera:
        time = pxr.Usd.TimeCode(sample.frame)
        gf = camera.GetCamera(time)
        # Tenths of a scene unit: millimetres / 100 on a metre stage.
        assert gf.focalLength == pytest.approx(sample.lens_mm / 100, rel=1e-6)
        h_mm, v_mm = sample.apertures_mm(width, height)
        assert gf.horizontalAperture == pytest.approx(h_mm / 100, rel=1e-6)
        assert gf.verticalAperture == pytest.approx(v_mm / 100, rel=1e-6)
        assert gf.horizontalApertureOffset == pytest.approx(sample.offsets_mm()[0] / 100, abs=1e-7)
        assert gf.verticalApertureOffset == pytest.approx(sample.offsets_mm()[1] / 100, abs=1e-7)
        assert (gf.clippingRange.min, gf.clippingRange.max) == pytest.approx(
            (sample.clip_start, sample.clip_end), rel=1e-6
        )
        np.testing.assert_allclose(np.array(gf.transform).T, sample.matrix_world, atol=1e-6)
        world = pxr.UsdGeom.Xformable(camera).ComputeLocalToWorldTransform(time)
        np.testing.assert_allclose(np.array(world).T, sample.matrix_world, atol=1e-6)
    lens_35 = next(s for s in animated.camera if s.lens_mm == 35.0)
    assert camera.GetCamera(pxr.Usd.TimeCode(lens_35.frame)).focalLength == pytest.approx(0.35, abs=1e-7)
    assert camera.GetFocalLengthAttr().Get(pxr.Usd.TimeCode(lens_35.frame)) == pytest.approx(0.35, abs=1e-7)


def test_still_camera_has_default_values_only(pxr, scene, tmp_path):
    stage = _open(pxr, _export(scene, tmp_path))
    camera = _camera(pxr, stage)
    (op,) = camera.GetOrderedXformOps()
    assert op.GetOpName() == "xformOp:transform" and not op.GetTimeSamples()
    assert not camera.GetFocalLengthAttr().GetTimeSamples()
    sample = scene.camera[0]
    assert camera.GetFocalLengthAttr().Get() == pytest.approx(sample.lens_mm / 100, rel=1e-6)
    np.testing.assert_allclose(np.array(op.Get()).T, sample.matrix_world, atol=1e-12)
    assert (stage.GetStartTimeCode(), stage.GetEndTimeCode()) == (sample.frame, sample.frame)


def _texture_pixels(package, card) -> np.ndarray:
    """The photo pixels (u, v) a card's vertices sample through their UVs."""
    layer = next(layer for layer in package.layers if layer.index == card.index)
    tw, th = package.manifest.texture_size(layer)
    border = layer.border or 0
    uvs = card.uvs.astype(np.float64)
    return np.stack([uvs[:, 0] * tw - border, (1 - uvs[:, 1]) * th - border], axis=1)


def test_usd_camera_sees_each_vertex_where_its_uv_samples(pxr, package, scene, tmp_path):
    stage = _open(pxr, _export(scene, tmp_path))
    assert _resolution(stage) == (scene.width, scene.height) == (128, 96)
    for card, prim in zip(scene.cards, (_cards(pxr, stage)[c.index] for c in scene.cards), strict=True):
        points = _world_points(pxr, prim)
        pixels = _usd_project(pxr, stage, scene.frame_start, points)
        expected = _texture_pixels(package, card)
        error = np.abs(pixels - expected).max()
        assert error < PIXEL_TOLERANCE, f"layer {card.index}: vertices land {error:.4f} px off their UVs"


@pytest.mark.parametrize("fit", ["HORIZONTAL", "VERTICAL"])
def test_usd_camera_matches_a_shifted_blender_camera(pxr, animated, tmp_path, fit):
    def shifted(sample: CameraSample) -> CameraSample:
        sensor = sample.sensor_mm if fit == "HORIZONTAL" else sample.sensor_mm * 0.8
        return dataclasses.replace(sample, sensor_fit=fit, sensor_mm=sensor, shift_x=0.1, shift_y=-0.05)

    case = dataclasses.replace(animated, camera=tuple(shifted(s) for s in animated.camera))
    stage = _open(pxr, _export(case, tmp_path))
    meshes = _cards(pxr, stage)
    for sample in case.camera:
        for card in case.cards:
            points = _world_points(pxr, meshes[card.index])
            pixels = _usd_project(pxr, stage, sample.frame, points)
            expected = sample.project(points, case.width, case.height)
            error = np.abs(pixels - expected).max()
            assert error < PIXEL_TOLERANCE, f"frame {sample.frame}, layer {card.index}: {error:.4f} px off"
    # The shift moved the picture: the unshifted camera would put the vertices elsewhere.
    first = case.camera[0]
    points = np.asarray(case.cards[1].vertices)
    unshifted = dataclasses.replace(first, shift_x=0.0, shift_y=0.0).project(points, case.width, case.height)
    assert np.abs(_usd_project(pxr, stage, first.frame, points) - unshifted).max() > 5.0


# -- errors ---------------------------------------------------------------------------------------------------


def test_missing_usd_core_is_an_export_error(monkeypatch, scene, tmp_path):
    monkeypatch.setitem(sys.modules, "pxr", None)
    with pytest.raises(ExportError, match="usd-core"):
        write_usd(scene, tmp_path / "scene.usda", {card.index: "x.png" for card in scene.cards})
    assert not (tmp_path / "scene.usda").exists()


def test_missing_texture_path_is_an_export_error(pxr, scene, tmp_path):
    with pytest.raises(ExportError, match="texture"):
        write_usd(scene, tmp_path / "scene.usda", {scene.cards[0].index: "textures/a.png"})
    assert not (tmp_path / "scene.usda").exists()
