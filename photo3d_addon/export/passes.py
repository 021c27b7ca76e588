"""EXR frames for compositors, rendered with Eevee along the scene's camera.

For every frame each layer is rendered alone (with the opaque backdrop as a holdout) twice: its colour with the
film transparent (premultiplied, scene-linear), and its depth with the layer made opaque wherever it has any
coverage (Eevee writes no depth for blended surfaces, so the colour render's Z pass would show what is behind).
The beauty is the layers together, rendered the same two ways. ``core.export.exr`` then writes one multilayer file
per frame (``exr/<name>.####.exr``: ``R G B A Z`` of the beauty, ``L00.R L00.G L00.B L00.A L00.Z L00.matte`` per
layer) and, when asked, a deep one (``exr/<name>_deep.####.exr``: one sample per covering layer, sorted front to
back). A layer's matte is its share of the beauty: its alpha times what the nearer layers let through.

Only the photo's layers are rendered: effects and the user's other objects are hidden for the passes and
shown again afterwards, as is every setting the passes change.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

import bpy
import numpy as np

from ...core.errors import ExportError
from ...core.export.comp import safe_stem
from ...core.export.exr import FLOAT, HALF, write_deep_exr, write_exr
from ...core.export.exr import read_exr as read_exr_file
from ...core.progress import Progress
from ..render.settings import eevee_engine_id
from ..scene.photo_scene import LAYER_KEY, PhotoScene

EXR_FOLDER = "exr"
BACKGROUND_Z = np.inf
"""Depth where nothing covers a pixel."""


def frame_files(name: str, frames: tuple[int, int], deep: bool) -> list[str]:
    """The comp package's EXR files for ``frames``, multilayer or deep."""
    safe = safe_stem(name, "photo")
    suffix = "_deep" if deep else ""
    return [f"{EXR_FOLDER}/{safe}{suffix}.{frame:04d}.exr" for frame in range(frames[0], frames[1] + 1)]


PASS_SETTINGS = (
    ("render", "film_transparent", True),
    ("render", "use_file_extension", True),
    ("image", "file_format", "OPEN_EXR_MULTILAYER"),
    ("image", "color_depth", "32"),
    ("image", "exr_codec", "NONE"),
    ("image", "color_mode", "RGBA"),
    ("view_layer", "use_pass_z", True),
    ("view_layer", "use_pass_combined", True),
)
"""What the pass renders change, on the render settings, their image settings and the view layer."""


@contextlib.contextmanager
def _pass_settings(scene: bpy.types.Scene) -> Iterator[None]:
    """``PASS_SETTINGS`` for the block; everything (the output path and the frame too) put back after."""
    owners = {"render": scene.render, "image": scene.render.image_settings, "view_layer": bpy.context.view_layer}
    saved = [(owners[owner], name, getattr(owners[owner], name)) for owner, name, _ in PASS_SETTINGS]
    path, frame = scene.render.filepath, scene.frame_current
    try:
        for owner, name, value in PASS_SETTINGS:
            setattr(owners[owner], name, value)
        yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)
        scene.render.filepath = path
        scene.frame_set(frame)


@contextlib.contextmanager
def _visible(
    scene: bpy.types.Scene, shown: list[bpy.types.Object], holdout: bpy.types.Object | None = None
) -> Iterator[None]:
    """Only ``shown`` renders (every other object's ``hide_render`` set for the block), and ``holdout`` as a
    holdout: it hides what is behind it and adds nothing."""
    hidden = {obj.name: (obj.hide_render, obj.is_holdout) for obj in scene.objects}
    try:
        for obj in scene.objects:
            if obj.type != "CAMERA":
                obj.hide_render = obj not in shown and obj != holdout
                obj.is_holdout = obj == holdout
        yield
    finally:
        for obj in scene.objects:
            if obj.name in hidden:
                obj.hide_render, obj.is_holdout = hidden[obj.name]


def _alpha_link(material: bpy.types.Material):
    """The link feeding the layer material's mix (texture alpha -> Fac), built by ``scene.materials``."""
    for link in material.node_tree.links:
        if link.to_node.type == "MIX_SHADER" and link.to_socket.name == "Fac":
            return link
    return None


@contextlib.contextmanager
def _depth_materials(layers: list[bpy.types.Object]) -> Iterator[None]:
    """Make the layers opaque wherever they have any coverage, so the Z pass holds their depth."""
    changes = []
    try:
        for obj in layers:
            material = obj.active_material
            link = _alpha_link(material) if material is not None and material.use_nodes else None
            if link is None:
                raise ExportError(f"{obj.name}'s material is not Photo3D's layer material; its depth cannot render")
            tree = material.node_tree
            step = tree.nodes.new("ShaderNodeMath")
            step.operation = "GREATER_THAN"
            step.inputs[1].default_value = 0.0  # any coverage: the colour pass counts it too
            source, target = link.from_socket, link.to_socket
            tree.links.new(source, step.inputs[0])
            tree.links.new(step.outputs[0], target)
            changes.append((material, step, source, target, material.surface_render_method))
            material.surface_render_method = "DITHERED"  # writes depth; a 0/1 alpha dithers to exactly that
        yield
    finally:
        for material, step, source, target, method in reversed(changes):
            material.node_tree.nodes.remove(step)
            material.node_tree.links.new(source, target)
            material.surface_render_method = method


def _render(scene: bpy.types.Scene, path: Path) -> dict[str, np.ndarray]:
    """Render the current frame to ``path`` (multilayer EXR) and return RGBA (h, w, 4) and Z, top row first."""
    scene.render.filepath = str(path)
    result = bpy.ops.render.render(write_still=True)
    if "FINISHED" not in result or not path.is_file():
        raise ExportError(f"Eevee did not render the EXR pass {path.name}")
    channels = read_exr_file(path)
    path.unlink()

    def find(suffix: str) -> np.ndarray:
        matches = [name for name in channels if name.endswith(suffix)]
        if not matches:
            raise ExportError(f"the pass render has no {suffix[1:]} channel (found {', '.join(sorted(channels))})")
        return channels[sorted(matches)[0]]

    rgba = np.stack([find(f".Combined.{c}") for c in "RGBA"], axis=-1)
    return {"rgba": rgba, "z": find(".Depth.Z")}


def _frame_layers(scene, layers, backdrop, folder: Path, frame: int) -> tuple[list[np.ndarray], list[np.ndarray], dict]:
    colours, depths = [], []
    for obj in layers:
        # The opaque backdrop hides the parts of nearer layers behind it in the beauty: hold it out here too.
        with _visible(scene, [obj], holdout=backdrop if obj != backdrop else None):
            colours.append(_render(scene, folder / f"colour_{frame}_{obj[LAYER_KEY]}.exr")["rgba"])
            with _depth_materials([obj]):
                depths.append(_render(scene, folder / f"depth_{frame}_{obj[LAYER_KEY]}.exr")["z"])
    with _visible(scene, layers):
        beauty = _render(scene, folder / f"beauty_{frame}.exr")
        with _depth_materials(layers):
            beauty["z"] = _render(scene, folder / f"beauty_depth_{frame}.exr")["z"]
    return colours, depths, beauty


def mattes(alphas: list[np.ndarray]) -> list[np.ndarray]:
    """Each layer's share of the beauty (layers back to front): its alpha times what every nearer layer lets
    through. They sum to the beauty's alpha."""
    out, through = [None] * len(alphas), np.ones_like(alphas[0])
    for i in range(len(alphas) - 1, -1, -1):
        out[i] = alphas[i] * through
        through = through * (1.0 - alphas[i])
    return out


def _multilayer(colours, depths, beauty, indices) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    channels: dict[str, np.ndarray] = {}
    types: dict[str, int] = {}
    for c, name in enumerate("RGBA"):
        channels[name] = beauty["rgba"][..., c]
    channels["Z"] = np.where(beauty["rgba"][..., 3] > 0, beauty["z"], BACKGROUND_Z)
    types["Z"] = FLOAT
    for index, rgba, z, matte in zip(indices, colours, depths, mattes([c[..., 3] for c in colours]), strict=True):
        prefix = f"L{index:02d}"
        for c, name in enumerate("RGBA"):
            channels[f"{prefix}.{name}"] = rgba[..., c]
        channels[f"{prefix}.Z"] = np.where(rgba[..., 3] > 0, z, BACKGROUND_Z)
        types[f"{prefix}.Z"] = FLOAT
        channels[f"{prefix}.matte"] = matte
    return channels, {name: types.get(name, HALF) for name in channels}


def _deep(colours, depths) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One sample per layer that covers a pixel, sorted front to back (nearest Z first)."""
    alpha = np.stack([c[..., 3] for c in colours])  # (layers, h, w)
    z = np.stack(depths)
    rgb = np.stack([c[..., :3] for c in colours])
    covered = alpha > 0
    key = np.where(covered, z, np.inf)
    order = np.argsort(key, axis=0, kind="stable")  # nearest first; uncovered last
    counts = covered.sum(axis=0)
    take = np.take_along_axis
    sorted_alpha, sorted_z = take(alpha, order, 0), take(key, order, 0)
    sorted_rgb = np.stack([take(rgb[..., c], order, 0) for c in range(3)], -1)
    # Pixels in row-major order, each pixel's samples nearest first.
    keep = np.arange(alpha.shape[0])[:, None, None] < counts[None]
    mask = np.moveaxis(keep, 0, -1).reshape(-1)
    flat = lambda a: np.moveaxis(a, 0, -1).reshape(-1)[mask]  # noqa: E731 - local reshape helper
    samples = {
        "R": flat(sorted_rgb[..., 0]),
        "G": flat(sorted_rgb[..., 1]),
        "B": flat(sorted_rgb[..., 2]),
        "A": flat(sorted_alpha),
        "Z": flat(sorted_z),
    }
    samples["ZBack"] = samples["Z"].copy()
    return counts, samples


class ExrFrames:
    """The EXR frames of one export, rendered one frame at a time (``render``) between ``open`` and
    ``close``: the pass settings are in force and the scratch folder exists only in between."""

    def __init__(self, photo: PhotoScene, folder: Path, frames: tuple[int, int], deep: bool, layered: bool):
        self.scene = photo.scene
        if self.scene.render.engine != eevee_engine_id():
            raise ExportError(f"EXR passes render with Eevee; the scene uses {self.scene.render.engine}")
        self.layers = photo.layers
        if not self.layers:
            raise ExportError(f"{photo.name} has no layer objects to render")
        self.indices = [int(obj[LAYER_KEY]) for obj in self.layers]
        self.backdrop = self.layers[0] if photo.manifest.representation == "mesh" else None
        self.folder, self.frames = folder, list(range(frames[0], frames[1] + 1))
        self.names = {
            "exr": frame_files(photo.name, frames, deep=False),
            "deep": frame_files(photo.name, frames, deep=True),
        }
        wanted = {"exr": layered, "deep": deep}
        self.files: dict[str, list[str]] = {key: [] for key, on in wanted.items() if on}
        pairs = zip(self.indices, self.layers, strict=True)
        self.attributes = {"photo3d:layers": ",".join(f"L{i:02d}={obj.name}" for i, obj in pairs)}
        self._stack: contextlib.ExitStack | None = None
        self._scratch = Path()

    def open(self) -> None:
        self._stack = contextlib.ExitStack()
        self._scratch = Path(self._stack.enter_context(tempfile.TemporaryDirectory(prefix="photo3d-passes-")))
        self._stack.enter_context(_pass_settings(self.scene))
        (self.folder / EXR_FOLDER).mkdir(exist_ok=True)

    def close(self) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None

    def render(self, position: int) -> None:
        """Render and write frame ``self.frames[position]``."""
        frame = self.frames[position]
        self.scene.frame_set(frame)
        colours, depths, beauty = _frame_layers(self.scene, self.layers, self.backdrop, self._scratch, frame)
        if "exr" in self.files:
            channels, types = _multilayer(colours, depths, beauty, self.indices)
            relative = self.names["exr"][position]
            write_exr(self.folder / relative, channels, types, attributes=self.attributes)
            self.files["exr"].append(relative)
        if "deep" in self.files:
            counts, samples = _deep(colours, depths)
            relative = self.names["deep"][position]
            write_deep_exr(self.folder / relative, counts, samples, attributes=self.attributes)
            self.files["deep"].append(relative)


def render_exr_frames(
    photo: PhotoScene, folder: Path, frames: tuple[int, int], deep: bool, layered: bool, progress: Progress
) -> dict[str, list[str]]:
    """Render and write every EXR frame into ``folder`` (the comp package being written), in one call."""
    passes = ExrFrames(photo, folder, frames, deep, layered)
    passes.open()
    try:
        total = len(passes.frames)
        for position, frame in enumerate(passes.frames):
            progress.update(position / total, f"EXR frame {frame} ({position + 1} of {total})")
            passes.render(position)
    finally:
        passes.close()
    return passes.files
