"""The whole job: photo in, validated layer package out. Each stage is timed and cancellable."""

from __future__ import annotations

import dataclasses
import datetime
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .contact_sheet import layer_thumbnail, make_contact_sheet, thumb_height
from .depth import DepthResult, estimate_depth, load_depth_file
from .errors import InputError
from .geometry import LayerMesh, build_layer_mesh, build_mpi
from .harmonize import harmonize_depth
from .inpaint import LayerFill, inpaint_layers
from .layers import Layer, build_layers
from .load import LoadedImage, load_image
from .models import SEGMENTATION_WITHOUT_WEIGHTS, ModelCache, check_models
from .options import HarmonizeOptions, PipelineOptions
from .package import FORMAT_NAME, FORMAT_VERSION, Manifest, save_mesh_file, write_package_atomically
from .progress import Progress
from .segment import segment_image
from .textures import bleed_colour, layer_rgba, write_png

CONTACT_SHEET_NAME = "contact_sheet.png"


@dataclass
class PipelineResult:
    package_path: Path
    manifest: Manifest
    """The typed manifest, as written."""

    @property
    def timings(self) -> dict[str, float]:
        return self.manifest.timings


@dataclass
class SceneLayers:
    """Everything the package stage needs, kept in memory until it is written atomically."""

    loaded: LoadedImage
    depth: DepthResult
    harmonized: np.ndarray
    layers: list[Layer]
    fills: list[LayerFill]
    meshes: list[LayerMesh]
    mpi: list[Any]
    info: dict[str, Any]


def _depth_stage(loaded: LoadedImage, options: PipelineOptions, progress: Progress, cache) -> DepthResult:
    if options.depth.depth_file:
        return load_depth_file(options.depth.depth_file, loaded.work_size, options.depth, options.load.max_pixels)
    return estimate_depth(loaded.work_rgb, options.depth, options.runtime, progress, cache)


def _harmonize_options(options: PipelineOptions) -> HarmonizeOptions:
    """The harmonize weights for this depth source: a supplied depth file is trusted (see the option)."""
    settings = options.harmonize
    if options.depth.depth_file and settings.trust_depth_file:
        return dataclasses.replace(
            settings,
            data_weight_interior=max(settings.data_weight_interior, 4.0),
            data_weight_edge=max(settings.data_weight_edge, 2.0),
            boundary_weight=min(settings.boundary_weight, 0.5),
        )
    return settings


def compute_layers(
    image_path: str | os.PathLike,
    options: PipelineOptions,
    progress: Progress | None = None,
    cache: ModelCache | None = None,
) -> SceneLayers:
    """Run every stage but the package writing; the result holds arrays only."""
    progress = progress or Progress()
    options.validate()
    check_models(options)
    with progress.stage("load"):
        loaded = load_image(image_path, options.load)
    with progress.stage("depth"):
        depth = _depth_stage(loaded, options, progress, cache)
        if depth.depth.shape != loaded.work_size:
            raise InputError(f"depth map is {depth.depth.shape} but the working image is {loaded.work_size}")
    with progress.stage("segment"):
        labels = segment_image(loaded.work_rgb, depth.depth, options.segment, options.runtime, progress, cache)
    with progress.stage("harmonize"):
        harmonized, solver = harmonize_depth(depth.depth, labels, _harmonize_options(options), progress)
    with progress.stage("layers"):
        layers = build_layers(harmonized, labels, options.layers)
    with progress.stage("inpaint"):
        fills = inpaint_layers(loaded.work_rgb, harmonized, layers, options.inpaint, options.runtime, progress, cache)
    meshes: list[LayerMesh] = []
    mpi: list[Any] = []
    with progress.stage("geometry"):
        h, w = loaded.work_size
        work_camera = loaded.camera.scaled(w, h)
        if options.geometry.representation == "mesh":
            for i, fill in enumerate(fills):
                progress.update(i / len(fills), f"mesh {i + 1}/{len(fills)}")
                meshes.append(build_layer_mesh(fill.extent, fill.depth, work_camera, options.geometry.max_triangles))
        else:
            rgba = [np.dstack([f.rgb, f.extent.astype(np.float32)]) for f in fills]
            mpi = build_mpi(rgba, [f.depth for f in fills], options.geometry.mpi_planes)
    info = {
        "segments": int(labels.max()) + 1,
        "harmonize_iterations": solver.iterations,
        "harmonize_residual": solver.relative_residual,
    }
    return SceneLayers(loaded, depth, harmonized, layers, fills, meshes, mpi, info)


def _layer_entry(index: int, layer: Layer, fill: LayerFill) -> dict[str, Any]:
    depths = fill.depth[fill.extent]
    return {
        "index": index,
        "name": f"layer_{index:02d}",
        "texture": f"layers/{index:02d}_color.png",
        "depth_range": [float(depths.min()), float(depths.max())],
        "median_depth": layer.median_depth,
        "pixel_count": int(layer.mask.sum()),
        "inpainted_fraction": round(fill.inpainted_fraction, 6),
    }


def _absolute_if_file(source: str, options: PipelineOptions) -> str:
    """A depth file is recorded by absolute path, so the manifest still names it from elsewhere."""
    return str(Path(source).absolute()) if options.depth.depth_file else source


def _models_used(options: PipelineOptions, depth: DepthResult) -> dict[str, str]:
    segment = options.segment.model
    return {
        "depth": depth.source,
        "segmentation": "superpixel (weights-free)" if segment in SEGMENTATION_WITHOUT_WEIGHTS else segment,
        "inpaint": options.inpaint.lama_model
        if options.inpaint.method == "lama"
        else f"opencv-{options.inpaint.method}",
    }


def write_scene_package(
    scene: SceneLayers, out_dir: str | os.PathLike, options: PipelineOptions, progress: Progress
) -> tuple[Path, Manifest]:
    """Write textures, meshes or planes, the contact sheet and the manifest, atomically; returns both."""
    loaded = scene.loaded

    def fill(tmp: Path) -> dict[str, Any]:
        (tmp / "layers").mkdir()
        entries = []
        # Thumbnails for the contact sheet: one full-resolution texture is alive at a time (400 MB at 100 MP).
        textures = []
        thumb_h = thumb_height(*loaded.work_size)
        if options.geometry.representation == "mesh":
            for i, (layer, layer_fill, mesh) in enumerate(zip(scene.layers, scene.fills, scene.meshes, strict=True)):
                progress.update(i / len(scene.layers), f"layer {i + 1}/{len(scene.layers)}")
                entry = _layer_entry(i, layer, layer_fill)
                rgba = layer_rgba(loaded.source_rgb, loaded.source_alpha, layer.mask, layer_fill)
                write_png(tmp / entry["texture"], rgba)
                textures.append(layer_thumbnail(rgba, thumb_h))
                del rgba  # before the next layer's texture is built, not after
                entry["mesh"] = f"layers/{i:02d}_mesh.npz"
                save_mesh_file(tmp / entry["mesh"], mesh.vertices, mesh.uvs, mesh.faces)
                entry["vertices"] = len(mesh.vertices)
                entry["triangles"] = len(mesh.faces)
                entries.append(entry)
        else:
            # Planes nothing lands on are left out: they would only cost texture memory in Blender.
            planes = [plane for plane in scene.mpi if (plane.rgba[..., 3] > 0.5 / 255).any()]
            for i, plane in enumerate(planes):
                progress.update(i / len(planes), f"plane {i + 1}/{len(planes)}")
                rgba = bleed_colour(np.clip(plane.rgba * 255.0 + 0.5, 0, 255).astype(np.uint8))
                entry = {
                    "index": i,
                    "name": f"plane_{i:02d}",
                    "texture": f"layers/{i:02d}_plane.png",
                    "plane_depth": float(plane.depth),
                    "depth_range": [float(plane.depth), float(plane.depth)],
                    "pixel_count": int((plane.rgba[..., 3] > 0).sum()),
                    "inpainted_fraction": None,
                }
                write_png(tmp / entry["texture"], rgba)
                entries.append(entry)
                textures.append(layer_thumbnail(rgba, thumb_h))
        np.save(tmp / "depth.npy", scene.harmonized.astype(np.float32))
        write_png(tmp / CONTACT_SHEET_NAME, make_contact_sheet(loaded.work_rgb, scene.harmonized, textures, entries))
        all_depths = scene.harmonized
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "created_by": f"photo3d {__version__}",
            "created_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "source": {
                "path": str(Path(loaded.path).absolute()),
                "width": int(loaded.source_size[1]),
                "height": int(loaded.source_size[0]),
                "sha256": loaded.sha256,
                "mode": loaded.mode,
                "bit_depth": loaded.bit_depth,
                "orientation": loaded.orientation,
                "has_alpha": loaded.source_alpha is not None,
            },
            "camera": loaded.camera.to_dict(),
            "work_size": list(loaded.work_size),
            "depth": {
                "convention": "z-depth: distance along the camera's viewing axis; camera space is x right, "
                "y up, camera looking down -z (Blender)",
                "units": scene.depth.units,
                "kind": scene.depth.kind,
                "source": _absolute_if_file(scene.depth.source, options),
                "scale": 1.0,
                "min": float(all_depths.min()),
                "max": float(all_depths.max()),
                "map": "depth.npy",
            },
            "representation": options.geometry.representation,
            "layers": entries,
            "contact_sheet": CONTACT_SHEET_NAME,
            "models": _models_used(options, scene.depth),
            "options": options.to_dict(),
            "stats": scene.info,
            # Written once, with the package: the package stage's own time runs up to this point.
            "timings": progress.timings_so_far(),
        }

    with progress.stage("package"):
        package = write_package_atomically(out_dir, fill)
    return package.root, package.manifest


def convert_image(
    image_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: PipelineOptions | None = None,
    progress: Progress | None = None,
    cache: ModelCache | None = None,
) -> PipelineResult:
    """Run the whole pipeline on one photo and write its layer package to ``out_dir``."""
    options = options or PipelineOptions()
    progress = progress or Progress()
    scene = compute_layers(image_path, options, progress, cache)
    path, manifest = write_scene_package(scene, out_dir, options, progress)
    return PipelineResult(path, manifest)
