"""The whole job: photo in, validated layer package out. Each stage is timed and cancellable.

``convert_image`` opens the package's staging folder once the layers are known and writes each layer's
texture on helper threads (``textures.TextureJobs``) as soon as its fill is done, so the PNG encoding runs
while the depth fill, the geometry and the rest of the package stage go on; the package is published only
after every texture is written and checked. ``compute_layers`` and ``write_scene_package`` are the same
work in two steps (all textures are written in the package stage then).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .camera import Camera
from .contact_sheet import make_contact_sheet, thumb_height
from .depth import DepthResult, estimate_depth, load_depth_file
from .errors import InputError, PackageError
from .geometry import LayerMesh, build_layer_mesh, build_mpi, rebase_uvs
from .harmonize import HarmonizeInfo, harmonize_depth
from .inpaint import LayerFill, inpaint_layers, wait_result
from .layers import Layer, build_layers
from .load import LoadedImage, load_image
from .models import SEGMENTATION_WITHOUT_WEIGHTS, ModelCache, check_models
from .models.registry import recording_backends
from .options import HarmonizeOptions, PipelineOptions
from .package import FORMAT_NAME, FORMAT_VERSION, Manifest, save_mesh_file
from .package.files import check_texture
from .package.writer import StagedPackage, staged_package
from .progress import Progress
from .segment import segment_image
from .textures import TextureJobs, bleed_colour, clear_unseen, layer_rgba, texture_border, write_png

CONTACT_SHEET_NAME = "contact_sheet.png"
TEXTURES_ALIVE = 2
"""Full-resolution textures that may exist at once while they are built and written (400 MB each at 100 MP)."""


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


@dataclass
class _Analysis:
    """The stages up to the layers: what the fills, meshes and textures are made from."""

    loaded: LoadedImage
    depth: DepthResult
    labels: np.ndarray
    harmonized: np.ndarray
    solver: HarmonizeInfo
    layers: list[Layer]


def _analyse(image_path, options: PipelineOptions, progress: Progress, cache: ModelCache | None) -> _Analysis:
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
    return _Analysis(loaded, depth, labels, harmonized, solver, layers)


def _fill_and_mesh(
    analysis: _Analysis,
    options: PipelineOptions,
    progress: Progress,
    cache: ModelCache | None,
    textures: _PackageTextures | None = None,
) -> SceneLayers:
    """The inpaint and geometry stages. Each mesh layer's mesh (and with ``textures`` its texture) starts on a
    helper as soon as its fill is done, while the next layers are filled; the geometry stage waits for them."""
    loaded, layers = analysis.loaded, analysis.layers
    h, w = loaded.work_size
    work_camera = loaded.camera.scaled(w, h)
    meshes: list[LayerMesh] = []
    mpi: list[Any] = []
    with _mesh_jobs(options) as mesh_jobs:

        def on_fill(index: int, fill: LayerFill) -> None:
            if textures is not None:
                textures.add_layer(index, layers[index], fill)
            mesh_jobs.futures.append(mesh_pool.submit(_layer_mesh, fill, work_camera, loaded, options))

        mesh_pool = mesh_jobs.pool
        with progress.stage("inpaint"):
            fills = inpaint_layers(
                loaded.work_rgb,
                analysis.harmonized,
                layers,
                options.inpaint,
                options.runtime,
                progress,
                cache,
                on_fill if mesh_pool is not None else None,
                _border_px(loaded, options),
            )
        with progress.stage("geometry"):
            if mesh_pool is not None:
                for i, job in enumerate(mesh_jobs.futures):
                    progress.update(i / len(fills), f"mesh {i + 1}/{len(fills)}")
                    meshes.append(wait_result(job, progress))
            else:
                rgba = [np.dstack([f.rgb, f.extent.astype(np.float32)]) for f in fills]
                mpi = build_mpi(rgba, [f.depth for f in fills], options.geometry.mpi_planes)
    info = {
        "segments": int(analysis.labels.max()) + 1,
        "harmonize_iterations": analysis.solver.iterations,
        "harmonize_residual": analysis.solver.relative_residual,
    }
    return SceneLayers(loaded, analysis.depth, analysis.harmonized, layers, fills, meshes, mpi, info)


@dataclass
class _MeshJobs:
    """The helper that builds one conversion's meshes (None for MPI planes) and their futures, in layer order."""

    pool: ThreadPoolExecutor | None
    futures: list[Future] = dataclasses.field(default_factory=list)


@contextlib.contextmanager
def _mesh_jobs(options: PipelineOptions) -> Iterator[_MeshJobs]:
    """One helper thread for the meshes: they take turns with each other (the triangulator holds the GIL) and
    overlap the fills. Leaving the block drops the meshes not yet started and waits for the running one."""
    mesh = options.geometry.representation == "mesh"
    jobs = _MeshJobs(ThreadPoolExecutor(max_workers=1, thread_name_prefix="photo3d-mesh") if mesh else None)
    try:
        yield jobs
    finally:
        if jobs.pool is not None:
            for job in jobs.futures:
                job.cancel()
            jobs.pool.shutdown(wait=True)


def _layer_mesh(fill: LayerFill, work_camera: Camera, loaded: LoadedImage, options: PipelineOptions) -> LayerMesh:
    """One layer's mesh over its fill, with UVs into its texture at the photo's resolution."""
    camera = work_camera.extended(fill.border)
    mesh = build_layer_mesh(fill.extent, fill.depth, camera, options.geometry.max_triangles)
    texture = texture_border(fill.border, loaded.work_size, loaded.source_size)
    return rebase_uvs(mesh, fill.extent.shape, fill.border, loaded.source_size, texture)


def compute_layers(
    image_path: str | os.PathLike,
    options: PipelineOptions,
    progress: Progress | None = None,
    cache: ModelCache | None = None,
) -> SceneLayers:
    """Run every stage but the package writing; the result holds arrays only."""
    progress = progress or Progress()
    return _fill_and_mesh(_analyse(image_path, options, progress, cache), options, progress, cache)


class _PackageTextures:
    """The layer textures of a package being staged, built and written by ``TextureJobs`` helpers.

    Each texture is checked on its helper right after it is written, so the package's final check need not
    inflate it: a file from our encoder (``textures.write_png``, valid by construction) must have its header
    and hold every byte the encoder wrote; one from any other writer is inflated in full, as ``read_package``
    does.
    """

    def __init__(self, staged: StagedPackage, loaded: LoadedImage, progress: Progress):
        self._folder = staged.folder
        self._loaded = loaded
        with staged.writing():
            (self._folder / "layers").mkdir()
        self.thumb_height = thumb_height(*loaded.work_size)
        self.names: dict[int, str] = {}
        # ``write_png`` is looked up when called, so a test may replace ``core.pipeline.write_png``.
        self._jobs = TextureJobs(
            write=lambda path, rgba: write_png(path, rgba),
            cancelled=lambda: progress.cancel_token.cancelled,
            live=TEXTURES_ALIVE,
        )
        self._progress = progress

    def _submit(self, index: int, name: str, size: tuple[int, int], build) -> None:
        path = self._folder / name
        self.names[index] = name

        def check(written: object) -> None:
            ours = isinstance(written, int) and not isinstance(written, bool)  # bytes from ``write_png``
            check_texture(path, name, size, full=not ours)
            if ours and path.stat().st_size != written:
                raise PackageError(f"texture {name} holds {path.stat().st_size} bytes; {written} were written")

        self._jobs.submit(index, path, build, self.thumb_height, check)

    def add_layer(self, index: int, layer: Layer, fill: LayerFill) -> None:
        """Start layer ``index``'s texture at the photo's resolution."""
        loaded = self._loaded
        grown = 2 * texture_border(fill.border, loaded.work_size, loaded.source_size)
        size = (loaded.source_size[1] + grown, loaded.source_size[0] + grown)
        self._submit(
            index,
            _texture_name(index),
            size,
            lambda: clear_unseen(layer_rgba(loaded.source_rgb, loaded.source_alpha, layer.mask, fill)),
        )

    def add_plane(self, index: int, plane: Any) -> None:
        """Start MPI plane ``index``'s texture at the working resolution."""
        size = (self._loaded.work_size[1], self._loaded.work_size[0])
        self._submit(
            index,
            f"layers/{index:02d}_plane.png",
            size,
            lambda: bleed_colour(np.clip(plane.rgba * 255.0 + 0.5, 0, 255).astype(np.uint8)),
        )

    def thumbnails(self) -> list[np.ndarray]:
        """Wait for every texture (honouring a cancel); their thumbnails in index order."""
        found = self._jobs.results(self._progress.check)
        return [found[index] for index in sorted(found)]

    def close(self) -> None:
        self._jobs.close()


@contextlib.contextmanager
def _staged_with_textures(
    out_dir: str | os.PathLike, loaded: LoadedImage, progress: Progress
) -> Iterator[tuple[StagedPackage, _PackageTextures]]:
    """A staging folder and the texture helpers writing into it; the helpers are stopped before it goes."""
    with staged_package(out_dir) as staged:
        textures = _PackageTextures(staged, loaded, progress)
        try:
            yield staged, textures
        finally:
            textures.close()


def _border_px(loaded: LoadedImage, options: PipelineOptions) -> int:
    """Working pixels the backdrop and the layers the frame cuts reach past each edge of the photo
    (``InpaintOptions.border_fraction``): none for MPI planes, whose textures are the working frame, nor for
    photos with transparency."""
    if options.geometry.representation != "mesh" or loaded.source_alpha is not None:
        return 0
    return int(round(options.inpaint.border_fraction * loaded.work_size[1]))


def _texture_name(index: int) -> str:
    return f"layers/{index:02d}_color.png"


def _layer_entry(index: int, layer: Layer, fill: LayerFill, loaded: LoadedImage) -> dict[str, Any]:
    depths = fill.depth[fill.extent]
    entry = {
        "index": index,
        "name": f"layer_{index:02d}",
        "texture": _texture_name(index),
        "depth_range": [float(depths.min()), float(depths.max())],
        "median_depth": layer.median_depth,
        "pixel_count": int(layer.mask.sum()),
        "inpainted_fraction": round(fill.inpainted_fraction, 6),
    }
    if fill.border:
        entry["border"] = texture_border(fill.border, loaded.work_size, loaded.source_size)
    return entry


def _absolute_if_file(source: str, options: PipelineOptions) -> str:
    """A depth file is recorded by absolute path, so the manifest still names it from elsewhere."""
    return str(Path(source).absolute()) if options.depth.depth_file else source


def _models_used(options: PipelineOptions, depth: DepthResult, runs_on: dict[str, str] | None = None) -> dict[str, str]:
    """What made each part, and for the networks what they ran on (``depth_runs_on``: backend and device or
    ONNX Runtime execution provider)."""
    segment = options.segment.model
    used = {
        "depth": depth.source,
        "segmentation": "superpixel (weights-free)" if segment in SEGMENTATION_WITHOUT_WEIGHTS else segment,
        "inpaint": options.inpaint.lama_model
        if options.inpaint.method == "lama"
        else f"opencv-{options.inpaint.method}",
    }
    names = {"depth": "depth", "segmentation": "segmentation", "inpainting": "inpaint"}
    for task, text in sorted((runs_on or {}).items()):
        used[f"{names.get(task, task)}_runs_on"] = text
    return used


def _write_package(
    scene: SceneLayers,
    staged: StagedPackage,
    textures: _PackageTextures,
    options: PipelineOptions,
    progress: Progress,
    runs_on: dict[str, str] | None = None,
) -> tuple[Path, Manifest]:
    """The package stage: meshes, depth map, contact sheet and manifest next to the textures, then publish."""
    loaded = scene.loaded
    folder = staged.folder
    with progress.stage("package"), staged.writing():
        entries = []
        if options.geometry.representation == "mesh":
            for i, (layer, layer_fill, mesh) in enumerate(zip(scene.layers, scene.fills, scene.meshes, strict=True)):
                progress.update(i / len(scene.layers), f"layer {i + 1}/{len(scene.layers)}")
                if i not in textures.names:
                    textures.add_layer(i, layer, layer_fill)
                entry = _layer_entry(i, layer, layer_fill, loaded)
                entry["mesh"] = f"layers/{i:02d}_mesh.npz"
                save_mesh_file(folder / entry["mesh"], mesh.vertices, mesh.uvs, mesh.faces)
                entry["vertices"] = len(mesh.vertices)
                entry["triangles"] = len(mesh.faces)
                entries.append(entry)
        else:
            # Planes nothing lands on are left out: they would only cost texture memory in Blender.
            planes = [plane for plane in scene.mpi if (plane.rgba[..., 3] > 0.5 / 255).any()]
            for i, plane in enumerate(planes):
                textures.add_plane(i, plane)
                entries.append(
                    {
                        "index": i,
                        "name": f"plane_{i:02d}",
                        "texture": textures.names[i],
                        "plane_depth": float(plane.depth),
                        "depth_range": [float(plane.depth), float(plane.depth)],
                        "pixel_count": int((plane.rgba[..., 3] > 0).sum()),
                        "inpainted_fraction": None,
                    }
                )
        np.save(folder / "depth.npy", scene.harmonized.astype(np.float32))
        progress.update(0.9, "textures")
        thumbnails = textures.thumbnails()
        sheet = make_contact_sheet(loaded.work_rgb, scene.harmonized, thumbnails, entries)
        write_png(folder / CONTACT_SHEET_NAME, sheet)
        all_depths = scene.harmonized
        manifest = {
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
            "models": _models_used(options, scene.depth, runs_on),
            "options": options.to_dict(),
            "stats": scene.info,
            # Written once, with the package: the package stage's own time runs up to this point.
            "timings": progress.timings_so_far(),
        }
        # Every texture was checked on its helper right after it was written (see ``_PackageTextures``).
        package = staged.publish(manifest, verified_textures=textures.names.values())
    return package.root, package.manifest


def write_scene_package(
    scene: SceneLayers, out_dir: str | os.PathLike, options: PipelineOptions, progress: Progress
) -> tuple[Path, Manifest]:
    """Write textures, meshes or planes, the contact sheet and the manifest, atomically; returns both."""
    with _staged_with_textures(out_dir, scene.loaded, progress) as (staged, textures):
        return _write_package(scene, staged, textures, options, progress)


def convert_image(
    image_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: PipelineOptions | None = None,
    progress: Progress | None = None,
    cache: ModelCache | None = None,
) -> PipelineResult:
    """Run the whole pipeline on one photo and write its layer package to ``out_dir``.

    The output folder is checked and staged once the layers are known (before the inpaint stage): from there
    on textures are written into the staging folder while the later stages run.
    """
    options = options or PipelineOptions()
    progress = progress or Progress()
    with recording_backends() as runs_on:
        analysis = _analyse(image_path, options, progress, cache)
        with _staged_with_textures(out_dir, analysis.loaded, progress) as (staged, textures):
            scene = _fill_and_mesh(analysis, options, progress, cache, textures)
            path, manifest = _write_package(scene, staged, textures, options, progress, runs_on)
    return PipelineResult(path, manifest)
