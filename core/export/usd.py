"""The comp scene as an ASCII USD stage (``scene.usda``): the layer cards as textured meshes, the camera animated.

The stage is Blender's world: Z up, metres (``metersPerUnit`` 1). Every card is a ``UsdGeomMesh`` translated to its
layer's origin (``Card.origin``, where Photo3D's own import puts the layer object), with a ``UsdPreviewSurface``
material reading the layer's straight-alpha PNG; the camera is one ``UsdGeomCamera`` carrying a single
``xformOp:transform``, time-sampled at every frame when the scene is animated. USD gives the focal length,
apertures and aperture offsets in tenths of a scene unit, so a Blender lens in millimetres becomes ``mm / (100 *
metersPerUnit)``: a 35 mm lens is 0.35 on this stage.

``pxr`` (the ``usd-core`` package) is imported only when a stage is written, so the rest of the pipeline works
without it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ExportError
from .scene import CameraSample, Card, CompScene

METERS_PER_UNIT = 1.0
"""The stage's linear unit: Blender's metre."""

ROOT = "/Photo3D"
CAMERA = f"{ROOT}/Camera"
LAYERS = f"{ROOT}/Layers"
LOOKS = f"{ROOT}/Looks"


def lens_units(millimetres: float) -> float:
    """A camera length in millimetres as USD's tenths of a scene unit on this stage (35 mm -> 0.35)."""
    return float(millimetres) / (100.0 * METERS_PER_UNIT)


def card_prim_name(card: Card) -> str:
    """The card's prim name under ``/Photo3D/Layers`` (and its material's under ``/Photo3D/Looks``)."""
    from pxr import Tf

    return Tf.MakeValidIdentifier(f"L{card.index:02d}_{card.name}")


def _import_pxr() -> Any:
    try:
        from pxr import Gf, Kind, Sdf, Tf, Usd, UsdGeom, UsdShade, Vt
    except ImportError as exc:
        raise ExportError(
            f"USD export needs the usd-core package (pip install usd-core), which could not be imported: {exc}"
        ) from None
    return Gf, Kind, Sdf, Tf, Usd, UsdGeom, UsdShade, Vt


def write_usd(scene: CompScene, path: Path, textures: Mapping[int, str]) -> None:
    """Write ``scene`` as an ASCII USD stage at ``path``.

    ``textures`` maps each card's ``index`` to its texture's path relative to ``path``'s folder (the caller
    copies the PNGs there); it is written as the ``UsdUVTexture``'s asset path as given.
    """
    Gf, Kind, Sdf, Tf, Usd, UsdGeom, UsdShade, Vt = _import_pxr()
    path = Path(path)
    if not scene.camera:
        raise ExportError("USD export: the scene has no camera samples")
    if not scene.cards:
        raise ExportError("USD export: the scene has no layers")
    missing = [card.index for card in scene.cards if not textures.get(card.index)]
    if missing:
        raise ExportError(f"USD export: no texture path for layer(s) {missing}")
    names = [card_prim_name(card) for card in scene.cards]
    if len(set(names)) != len(names):
        raise ExportError(f"USD export: layer prim names collide: {names}")

    stage = Usd.Stage.CreateInMemory()
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.z)
    UsdGeom.SetStageMetersPerUnit(stage, METERS_PER_UNIT)
    stage.SetTimeCodesPerSecond(float(scene.fps))
    stage.SetFramesPerSecond(float(scene.fps))
    stage.SetStartTimeCode(float(scene.frame_start))
    stage.SetEndTimeCode(float(scene.frame_end))
    stage.GetRootLayer().documentation = f"Photo3D comp export of {scene.name}"

    root = UsdGeom.Xform.Define(stage, ROOT).GetPrim()
    stage.SetDefaultPrim(root)
    Usd.ModelAPI(root).SetKind(Kind.Tokens.component)
    # The photo's file name only: a full path would tie the stage to this machine.
    root.CreateAttribute("photo3d:source", Sdf.ValueTypeNames.String, custom=True).Set(Path(scene.source).name)
    UsdGeom.Xform.Define(stage, LAYERS)
    UsdGeom.Scope.Define(stage, LOOKS)

    for card, name in zip(scene.cards, names, strict=True):
        mesh = _write_card(stage, card, f"{LAYERS}/{name}", Gf, Sdf, UsdGeom, Vt)
        material = _write_material(stage, card, f"{LOOKS}/{name}", str(textures[card.index]), Sdf, UsdShade)
        UsdShade.MaterialBindingAPI.Apply(mesh.GetPrim()).Bind(material)

    _write_camera(stage, scene, Gf, Sdf, Usd, UsdGeom)

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not stage.GetRootLayer().Export(str(path)):
            raise ExportError(f"{path}: USD could not write the stage")
    except (OSError, Tf.ErrorException) as exc:
        raise ExportError(f"{path}: USD could not write the stage: {exc}") from None


def _write_card(stage: Any, card: Card, prim_path: str, Gf: Any, Sdf: Any, UsdGeom: Any, Vt: Any) -> Any:
    vertices = card.local_vertices
    faces = np.asarray(card.faces, np.int32)
    uvs = np.asarray(card.uvs, np.float32)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or faces.ndim != 2 or faces.shape[1] != 3:
        raise ExportError(f"USD export: layer {card.index} has malformed geometry")
    if uvs.shape != (len(vertices), 2):
        raise ExportError(f"USD export: layer {card.index} has {len(uvs)} UVs for {len(vertices)} vertices")
    if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise ExportError(f"USD export: layer {card.index} has faces indexing past its vertices")

    mesh = UsdGeom.Mesh.Define(stage, prim_path)
    mesh.AddTranslateOp().Set(Gf.Vec3d(*(float(v) for v in card.origin)))
    points = Vt.Vec3fArray.FromNumpy(np.ascontiguousarray(vertices, np.float32))
    mesh.CreatePointsAttr(points)
    mesh.CreateFaceVertexCountsAttr(Vt.IntArray.FromNumpy(np.full(len(faces), 3, np.int32)))
    mesh.CreateFaceVertexIndicesAttr(Vt.IntArray.FromNumpy(np.ascontiguousarray(faces.reshape(-1))))
    mesh.CreateExtentAttr(UsdGeom.Mesh.ComputeExtent(points))
    # Faces are counter-clockwise seen from the camera: right-handed, their normals face it.
    mesh.CreateOrientationAttr(UsdGeom.Tokens.rightHanded)
    mesh.CreateDoubleSidedAttr(True)
    mesh.CreateSubdivisionSchemeAttr(UsdGeom.Tokens.none)
    st = UsdGeom.PrimvarsAPI(mesh).CreatePrimvar("st", Sdf.ValueTypeNames.TexCoord2fArray, UsdGeom.Tokens.vertex)
    # Blender's UVs and USD's st share the origin at the texture's bottom-left.
    st.Set(Vt.Vec2fArray.FromNumpy(np.ascontiguousarray(uvs)))

    prim = mesh.GetPrim()
    prim.CreateAttribute("photo3d:layerIndex", Sdf.ValueTypeNames.Int, custom=True).Set(int(card.index))
    prim.CreateAttribute("photo3d:depthRange", Sdf.ValueTypeNames.Float2, custom=True).Set(
        Gf.Vec2f(float(card.depth_range[0]), float(card.depth_range[1]))
    )
    prim.CreateAttribute("photo3d:opaque", Sdf.ValueTypeNames.Bool, custom=True).Set(bool(card.opaque))
    return mesh


def _write_material(stage: Any, card: Card, prim_path: str, texture: str, Sdf: Any, UsdShade: Any) -> Any:
    material = UsdShade.Material.Define(stage, prim_path)

    reader = UsdShade.Shader.Define(stage, f"{prim_path}/PrimvarReader")
    reader.CreateIdAttr("UsdPrimvarReader_float2")
    reader.CreateInput("varname", Sdf.ValueTypeNames.String).Set("st")
    st = reader.CreateOutput("result", Sdf.ValueTypeNames.Float2)

    image = UsdShade.Shader.Define(stage, f"{prim_path}/Texture")
    image.CreateIdAttr("UsdUVTexture")
    image.CreateInput("file", Sdf.ValueTypeNames.Asset).Set(Sdf.AssetPath(texture))
    image.CreateInput("sourceColorSpace", Sdf.ValueTypeNames.Token).Set("sRGB")
    image.CreateInput("wrapS", Sdf.ValueTypeNames.Token).Set("clamp")
    image.CreateInput("wrapT", Sdf.ValueTypeNames.Token).Set("clamp")
    image.CreateInput("st", Sdf.ValueTypeNames.Float2).ConnectToSource(st)
    rgb = image.CreateOutput("rgb", Sdf.ValueTypeNames.Float3)
    alpha = image.CreateOutput("a", Sdf.ValueTypeNames.Float)

    surface = UsdShade.Shader.Define(stage, f"{prim_path}/PreviewSurface")
    surface.CreateIdAttr("UsdPreviewSurface")
    surface.CreateInput("diffuseColor", Sdf.ValueTypeNames.Color3f).ConnectToSource(rgb)
    surface.CreateInput("emissiveColor", Sdf.ValueTypeNames.Color3f).ConnectToSource(rgb)
    surface.CreateInput("roughness", Sdf.ValueTypeNames.Float).Set(1.0)
    surface.CreateInput("metallic", Sdf.ValueTypeNames.Float).Set(0.0)
    surface.CreateInput("ior", Sdf.ValueTypeNames.Float).Set(1.0)
    surface.CreateInput("useSpecularWorkflow", Sdf.ValueTypeNames.Int).Set(0)
    if not card.opaque:
        # Straight alpha, blended (no cutout threshold).
        surface.CreateInput("opacity", Sdf.ValueTypeNames.Float).ConnectToSource(alpha)
        surface.CreateInput("opacityThreshold", Sdf.ValueTypeNames.Float).Set(0.0)
    material.CreateSurfaceOutput().ConnectToSource(surface.ConnectableAPI(), "surface")
    return material


def _write_camera(stage: Any, scene: CompScene, Gf: Any, Sdf: Any, Usd: Any, UsdGeom: Any) -> None:
    camera = UsdGeom.Camera.Define(stage, CAMERA)
    camera.CreateProjectionAttr(UsdGeom.Tokens.perspective)
    transform = camera.AddTransformOp()
    attributes = {
        "focal": camera.CreateFocalLengthAttr(),
        "h_aperture": camera.CreateHorizontalApertureAttr(),
        "v_aperture": camera.CreateVerticalApertureAttr(),
        "h_offset": camera.CreateHorizontalApertureOffsetAttr(),
        "v_offset": camera.CreateVerticalApertureOffsetAttr(),
        "clipping": camera.CreateClippingRangeAttr(),
    }
    default = Usd.TimeCode.Default()
    for sample in scene.camera:
        time = Usd.TimeCode(float(sample.frame)) if scene.animated else default
        transform.Set(_row_matrix(sample, Gf), time)
        for key, value in _lens_values(sample, scene.width, scene.height, Gf).items():
            attributes[key].Set(value, time)
    camera.GetPrim().CreateAttribute("photo3d:resolution", Sdf.ValueTypeNames.Int2, custom=True).Set(
        Gf.Vec2i(int(scene.width), int(scene.height))
    )


def _row_matrix(sample: CameraSample, Gf: Any) -> Any:
    matrix = np.asarray(sample.matrix_world, np.float64)
    if matrix.shape != (4, 4) or not np.isfinite(matrix).all():
        raise ExportError(f"USD export: the camera's matrix at frame {sample.frame} is not a finite 4x4 matrix")
    # Blender's matrices take column vectors, USD's row vectors.
    return Gf.Matrix4d(matrix.T.tolist())


def _lens_values(sample: CameraSample, width: int, height: int, Gf: Any) -> dict[str, Any]:
    h_aperture, v_aperture = sample.apertures_mm(width, height)
    h_offset, v_offset = sample.offsets_mm()
    return {
        "focal": lens_units(sample.lens_mm),
        "h_aperture": lens_units(h_aperture),
        "v_aperture": lens_units(v_aperture),
        "h_offset": lens_units(h_offset),
        "v_offset": lens_units(v_offset),
        "clipping": Gf.Vec2f(float(sample.clip_start), float(sample.clip_end)),
    }
