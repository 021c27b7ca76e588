"""Each network through torch and through ONNX Runtime, and whole stills at 1080p, with random weights.

The networks are the real architectures of the defaults, randomly initialised (no weights are needed):
Depth Anything V2 Small (transformers, DINOv2-S backbone), SAM ViT-B and a SlimSAM-77-class SAM
(transformers ``SamModel``), and big-lama's FFC-ResNet generator (``bench_models_arch.BigLama``). Each is
saved like a real checkpoint (a transformers folder, a big-lama-interface TorchScript file) and exported
with the project's exporter (``core.models.onnx_export``; SlimSAM in the transformers.js split it is
published in), into ``$XDG_CACHE_HOME/bench-models/`` (``~/.cache`` without it), where later runs find
and reuse them. The random weights make timings meaningful and outputs not: masks, depth and fills are
noise, so the stills' segmentation and inpainting counts are not those of a real photo.

Timings go through the project's backends (``TransformersDepth`` / ``OnnxDepth`` ``.predict``,
``TransformersSam`` / ``OnnxSam`` ``.embed`` and ``.masks``, ``TorchScriptLama`` / ``OnnxLama`` ``.fill``),
so the preprocessing counts, and the raw network (module or session) is timed too. Each figure is the
median of ``--repeat`` runs after one warm-up run; a measurement stops early (at least one run) when its
runs pass ``--max-seconds``, and its row says how many it had. ``max abs`` / ``max rel`` compare torch and
ONNX Runtime on the same input (rel: over the largest torch magnitude). The stills are
``core.pipeline.convert_image`` on the Motorcycle photo at 1920 x 1080 with the networks warm in one
``ModelCache``; per stage the manifest's timings.

    XDG_CACHE_HOME=.cache .venv/bin/python scripts/bench_models.py [--repeat 5] [--json FILE] [--threads N]
        [--device cpu|cuda] [--tensorrt] [--only depth,sam,lama,still] [--still-repeat 3] [--max-seconds 60]

On a GPU machine ``--device cuda`` runs torch on CUDA and ONNX Runtime with its CUDA execution provider
(``--tensorrt`` tries TensorRT first: an engine is built per input shape, minutes for a ViT); a side that is
not available there is reported as such.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

STILL_SIZE = (1920, 1080)
SECTIONS = ("depth", "sam", "lama", "still")
DEPTH_V2_SMALL_PARAMS = 24.8e6
BIG_LAMA_PARAMS = 51e6
LAMA_SIZE = 512
SLIMSAM_77 = {"hidden_size": 168, "mlp_dim": 696}
"""``Zigeng/SlimSAM-uniform-77``'s config.json (and Xenova/slimsam-77-uniform's): a ViT-B encoder, 12 layers
and 12 heads, pruned to these widths; everything else is SamConfig's default."""


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bench-models"


# --- measuring ---------------------------------------------------------------------------------------------


@dataclass
class Row:
    network: str
    size: str
    torch_ms: float | None = None
    ort_ms: float | None = None
    max_abs: float | None = None
    max_rel: float | None = None
    runs: str = ""
    load: float = 0.0
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.torch_ms is None or self.ort_ms is None or self.ort_ms <= 0:
            return None
        return self.torch_ms / self.ort_ms


@dataclass
class Bench:
    repeat: int
    max_seconds: float
    torch_device: str | None
    ort_device: str | None
    rows: list[Row] = field(default_factory=list)
    stills: list[dict] = field(default_factory=list)
    parameters: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    still_repeat: int = 3

    def sync(self) -> None:
        if self.torch_device and self.torch_device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()

    def time(self, run: Callable[[], Any], sync: bool = False) -> tuple[float, int, Any]:
        """(median ms, timed runs, the last result) of ``run`` after one warm-up call."""
        result = run()
        if sync:
            self.sync()
        seconds: list[float] = []
        while len(seconds) < self.repeat and (not seconds or sum(seconds) < self.max_seconds):
            started = time.perf_counter()
            result = run()
            if sync:
                self.sync()
            seconds.append(time.perf_counter() - started)
        return statistics.median(seconds) * 1000.0, len(seconds), result

    def row(
        self,
        network: str,
        size: str,
        torch_run: Callable[[], Any] | None,
        ort_run: Callable[[], Any] | None,
        compare: Callable[[Any, Any], tuple[float, float]] | None = None,
        note: str | Callable[[], str] = "",
        torch_sync: bool = True,
    ) -> tuple[Any, Any]:
        """Time both sides (either may be None: not available), compare their results, print the row."""
        row = Row(network, size)
        torch_out = ort_out = None
        runs = []
        if torch_run is not None:
            row.torch_ms, count, torch_out = self.time(torch_run, sync=torch_sync)
            runs.append(str(count))
        else:
            runs.append("-")
        if ort_run is not None:
            row.ort_ms, count, ort_out = self.time(ort_run)
            runs.append(str(count))
        else:
            runs.append("-")
        row.runs = "/".join(runs)
        if compare is not None and torch_out is not None and ort_out is not None:
            row.max_abs, row.max_rel = compare(torch_out, ort_out)
        row.note = note() if callable(note) else note
        row.load = os.getloadavg()[0]
        self.rows.append(row)
        print_row(row, flush=True)
        return torch_out, ort_out


def difference(expected: Any, actual: Any) -> tuple[float, float]:
    """Max |torch - ORT| and that over max |torch| (the project's parity measure)."""
    from core.models.onnx_export import difference as parity

    found = parity("", "", _numpy(expected), _numpy(actual))
    return found.max_abs, found.max_rel


def worst(*pairs: tuple[float, float]) -> tuple[float, float]:
    return max(pair[0] for pair in pairs), max(pair[1] for pair in pairs)


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        return value.detach().float().cpu().numpy()
    return np.asarray(value)


HEADER = (
    f"{'network':<34}{'size':>11}{'torch ms':>11}{'ORT ms':>11}{'torch/ORT':>10}{'max abs':>10}{'max rel':>10}"
    f"{'runs':>7}{'load':>6}"
)


def _cell(value: float | None, spec: str, width: int) -> str:
    return f"{'n/a':>{width}}" if value is None else f"{value:>{width}{spec}}"


def print_row(row: Row, flush: bool = False) -> None:
    line = (
        f"{row.network:<34}{row.size:>11}{_cell(row.torch_ms, '.1f', 11)}{_cell(row.ort_ms, '.1f', 11)}"
        f"{_cell(row.ratio, '.2f', 10)}{_cell(row.max_abs, '.2g', 10)}{_cell(row.max_rel, '.2g', 10)}"
        f"{row.runs:>7}{row.load:>6.2f}"
    )
    print(line + (f"  {row.note}" if row.note else ""), flush=flush)


def load_text() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


# --- cached builds -----------------------------------------------------------------------------------------


def cached(folder: Path, build: Callable[[Path], dict | None]) -> dict:
    """``folder`` built by ``build(part_folder)`` once: written beside it and renamed when complete, so an
    interrupted build is redone. Returns what ``build`` recorded (kept in ``folder/built.json``)."""
    record = folder / "built.json"
    if record.is_file():
        return json.loads(record.read_text())
    part = folder.with_name(folder.name + ".part")
    shutil.rmtree(part, ignore_errors=True)
    part.mkdir(parents=True)
    started = time.perf_counter()
    info = build(part) or {}
    info["build_seconds"] = round(time.perf_counter() - started, 1)
    (part / "built.json").write_text(json.dumps(info, indent=2))
    shutil.rmtree(folder, ignore_errors=True)
    part.rename(folder)
    print(f"built   {folder} in {info['build_seconds']:.0f} s", flush=True)
    return info


@contextlib.contextmanager
def silenced() -> Iterator[None]:
    """stdout and stderr, the file descriptors (C++ prints there too), sent to /dev/null for a while."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            os.dup2(null.fileno(), 2)
            yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)


def _export_record(result: Any) -> dict:
    """An ``ExportResult``'s parity, as JSON."""
    return {"parity": [asdict(item) for item in result.differences]}


def _print_export(name: str, info: dict) -> None:
    from core.models.onnx_export import TOLERANCE

    for item in info.get("parity", []):
        flag = "" if item["max_rel"] <= TOLERANCE else f"  ABOVE the exporter's tolerance {TOLERANCE:g}"
        print(
            f"export  {name}: {item['network']} {item['output']}: max abs {item['max_abs']:.3g}, "
            f"max rel {item['max_rel']:.3g}{flag}"
        )


def depth_source(folder: Path) -> dict:
    """Depth Anything V2 Small's architecture (its Hub config.json) with random weights."""
    import torch
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config
    from transformers.models.dpt.image_processing_pil_dpt import DPTImageProcessorPil

    backbone = Dinov2Config(
        hidden_size=384,
        num_hidden_layers=12,
        num_attention_heads=6,
        patch_size=14,
        image_size=518,
        mlp_ratio=4,
        out_indices=[3, 6, 9, 12],
        reshape_hidden_states=False,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone,
        patch_size=14,
        reassemble_hidden_size=384,
        reassemble_factors=[4, 2, 1, 0.5],
        neck_hidden_sizes=[48, 96, 192, 384],
        fusion_hidden_size=64,
        head_hidden_size=32,
        depth_estimation_type="relative",
    )
    torch.manual_seed(0)
    model = DepthAnythingForDepthEstimation(config).eval()
    model.save_pretrained(folder)
    DPTImageProcessorPil(
        size={"height": 518, "width": 518},
        ensure_multiple_of=14,
        keep_aspect_ratio=True,
        do_resize=True,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    ).save_pretrained(folder)
    return {"parameters": sum(p.numel() for p in model.parameters())}


def sam_source(folder: Path, vision: dict) -> dict:
    """A transformers SAM (ViT-B by SamConfig's defaults, or pruned widths) with random weights and the
    default processor (longest side 1024, padded square, 256 low-resolution masks)."""
    import torch
    from transformers import SamConfig, SamModel, SamProcessor, SamVisionConfig
    from transformers.models.sam.image_processing_pil_sam import SamImageProcessorPil

    # SamVisionConfig's initializer_range of 1e-10 would make the image embeddings all but constant.
    config = SamConfig(vision_config=SamVisionConfig(initializer_range=0.02, **vision))
    torch.manual_seed(0)
    model = SamModel(config).eval()
    model.save_pretrained(folder)
    processor = SamImageProcessorPil(
        size={"longest_edge": 1024},
        pad_size={"height": 1024, "width": 1024},
        mask_size={"longest_edge": 256},
        mask_pad_size={"height": 256, "width": 256},
    )
    SamProcessor(image_processor=processor).save_pretrained(folder)
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "encoder_parameters": sum(p.numel() for p in model.vision_encoder.parameters()),
    }


def lama_files(folder: Path) -> dict:
    """big-lama's generator with random weights as a big-lama-interface TorchScript file, the project's
    exporter tried on it, and the DFT-as-matrix-product rewrite (same weights) exported at 512 x 512."""
    import torch
    from bench_models_arch import make_big_lama, parameter_count

    from core.errors import ModelError
    from core.models.onnx_export import _export, difference, export_lama

    model = make_big_lama(0, "fft")
    generator = torch.Generator().manual_seed(0)
    image = torch.rand((1, 3, LAMA_SIZE, LAMA_SIZE), generator=generator)
    mask = (torch.rand((1, 1, LAMA_SIZE, LAMA_SIZE), generator=generator) > 0.7).float()
    with warnings.catch_warnings():
        # torch 2.13 deprecates torch.jit, but big-lama ships as TorchScript, so the stand-in must too.
        warnings.simplefilter("ignore")
        torch.jit.trace(model, (image, mask)).save(str(folder / "big-lama.pt"))
    info: dict[str, Any] = {"parameters": parameter_count(model)}
    try:
        with silenced():  # the legacy exporter prints the whole graph when an operator is missing
            result = export_lama(str(folder / "big-lama.pt"), folder / "fft")
        info["fft_export"] = "exported"
        info.update(_export_record(result))
    except ModelError as exc:
        info["fft_export"] = str(exc)
    rewrite = make_big_lama(0, "matmul")
    rewrite.load_state_dict(model.state_dict())
    _export(rewrite, (image, mask), folder / "lama.onnx", ["image", "mask"], ["output"], {})
    from core.models.onnx_runtime import open_session

    with torch.no_grad():
        expected = model(image, mask).numpy()
    actual = open_session(str(folder / "lama.onnx"), "cpu", "LaMa").run(
        None, {"image": image.numpy(), "mask": mask.numpy()}
    )
    info["parity"] = [asdict(difference("lama (DFT rewrite)", "output", expected, actual[0]))]
    return info


# --- sections ----------------------------------------------------------------------------------------------


@dataclass
class Photo:
    path: Path
    depth_file: Path
    rgb: np.ndarray
    """The working image (h, w, 3) float32, as the pipeline's stages get it."""


def make_photo(root: Path) -> Photo:
    from bench_pipeline import _make_inputs

    from core.load import load_image
    from core.options import LoadOptions

    folder = root / "photo"
    image = folder / f"photo_{STILL_SIZE[0]}.png"
    depth = folder / f"depth_{STILL_SIZE[0]}.npy"
    if not (image.is_file() and depth.is_file()):
        folder.mkdir(parents=True, exist_ok=True)
        _make_inputs(folder, *STILL_SIZE)
    return Photo(image, depth, load_image(image, LoadOptions()).work_rgb)


def bench_depth(bench: Bench, root: Path, photo: Photo) -> None:
    import cv2

    from core.depth import network_input_size
    from core.models.depth import TransformersDepth
    from core.models.onnx_depth import OnnxDepth
    from core.models.onnx_export import export_depth
    from core.models.runtime import Runtime
    from core.options import DepthOptions

    source = root / "depth-anything-v2-small" / "torch"
    onnx = root / "depth-anything-v2-small" / "onnx"
    height, width = photo.rgb.shape[:2]
    in_h, in_w = network_input_size(height, width, DepthOptions().input_size, 14)
    built = cached(source, depth_source)
    bench.parameters["depth-anything-v2-small"] = built["parameters"]
    print(f"params  Depth Anything V2 Small: {built['parameters'] / 1e6:.2f} M (published 24.8 M)")
    info = cached(onnx, lambda out: _export_record(export_depth(str(source), out, sizes=((in_h, in_w), (392, 518)))))
    _print_export("depth", info)
    resized = np.clip(cv2.resize(photo.rgb, (in_w, in_h), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)
    torch_net = TransformersDepth.load(str(source), Runtime(device=bench.torch_device)) if bench.torch_device else None
    ort_net = OnnxDepth.load(str(onnx / "model.onnx"), bench.ort_device) if bench.ort_device else None
    size = f"{in_w}x{in_h}"
    note = f"ORT on {ort_net.provider}" if ort_net else ""
    bench.row(
        "depth v2-S backend .predict",
        size,
        torch_net and (lambda: torch_net.predict(resized, (height, width))),
        ort_net and (lambda: ort_net.predict(resized, (height, width))),
        difference,
        note=f"-> {width}x{height}; {note}",
    )
    net = ort_net or torch_net
    pixels = np.ascontiguousarray(((resized - net.mean) / net.std).transpose(2, 0, 1)[None], np.float32)

    def torch_raw() -> Any:
        import torch

        with torch.inference_mode():
            tensor = torch.from_numpy(pixels).to(bench.torch_device)
            return torch_net.model(pixel_values=tensor).predicted_depth

    bench.row(
        "depth v2-S raw network",
        size,
        torch_net and torch_raw,
        ort_net and (lambda: ort_net.net.run(["predicted_depth"], {"pixel_values": pixels})[0]),
        difference,
    )


def _sam_split_feeds(prompts: Any, points: np.ndarray, embeddings: np.ndarray) -> dict[str, np.ndarray]:
    """segment-anything's decoder inputs for single-point prompts, as ``OnnxSam`` builds them."""
    count = len(points)
    coords = np.zeros((count, 2, 2), np.float32)
    coords[:, 0] = points
    labels = np.tile(np.array([[1.0, -1.0]], np.float32), (count, 1))
    side = 4 * embeddings.shape[2]
    frame_w, frame_h = prompts.frame_size
    return {
        "image_embeddings": embeddings,
        "point_coords": coords,
        "point_labels": labels,
        "mask_input": np.zeros((1, 1, side, side), np.float32),
        "has_mask_input": np.zeros(1, np.float32),
        "orig_im_size": np.array([frame_h, frame_w], np.float32),
    }


def bench_sam(bench: Bench, root: Path, photo: Photo) -> None:
    from core.models.onnx_export import export_sam
    from core.models.onnx_sam import OnnxSam, model_files
    from core.models.segmentation import TransformersSam
    from core.options import SegmentOptions
    from core.segment import point_grid
    from tests.onnx_models import export_sam_transformers_js

    options = SegmentOptions()
    variants = (
        ("sam-vit-b", "SAM ViT-B", {}, "segment-anything split (core.models.onnx_export.export_sam)"),
        ("slimsam-77", "SlimSAM-77", SLIMSAM_77, "transformers.js split, as Xenova/slimsam-77-uniform"),
    )
    for key, title, vision, split in variants:
        source = root / key / "torch"
        onnx = root / key / "onnx"
        built = cached(source, lambda out, vision=vision: sam_source(out, vision))
        bench.parameters[key] = built["parameters"]
        bench.parameters[f"{key} encoder"] = built["encoder_parameters"]
        print(f"params  {title}: {built['parameters'] / 1e6:.2f} M, encoder {built['encoder_parameters'] / 1e6:.2f} M")
        if key == "sam-vit-b":
            info = cached(onnx, lambda out, source=source: _export_record(export_sam(str(source), out)))
        else:

            def js(out: Path, source: Path = source) -> dict:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    export_sam_transformers_js(source, out)
                for name in ("preprocessor_config.json", "processor_config.json"):
                    if (source / name).is_file():
                        shutil.copyfile(source / name, out / name)
                return {}

            info = cached(onnx, js)
        _print_export(title, info)
        print(f"onnx    {title}: {split}")
        torch_net = TransformersSam.load(str(source), bench.torch_device) if bench.torch_device else None
        ort_net = OnnxSam.load(*model_files(str(onnx)), bench.ort_device) if bench.ort_device else None
        _bench_one_sam(bench, title, photo, torch_net, ort_net, options, point_grid)
        del torch_net, ort_net


def _bench_one_sam(bench, title, photo, torch_net, ort_net, options, point_grid) -> None:
    import torch

    rgb = photo.rgb
    note = f"ORT on {ort_net.provider}" if ort_net else ""
    torch_image, ort_image = bench.row(
        f"{title} encoder .embed",
        "1024",
        torch_net and (lambda: torch_net.embed(rgb)),
        ort_net and (lambda: ort_net.embed(rgb)),
        lambda t, o: difference(t.embeddings, o.embeddings),
        note=note,
    )
    pixel_values = None
    if torch_net is not None:
        image8 = (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        pixel_values = torch_net.processor(images=image8, return_tensors="pt")["pixel_values"].to(torch_net.device)

    def torch_encoder() -> Any:
        with torch.inference_mode():
            return torch_net.model.get_image_embeddings(pixel_values)

    def ort_encoder() -> Any:
        if pixel_values is not None:
            pixels = pixel_values.cpu().numpy()
        else:
            pixels = np.zeros((1, 3, ort_net.image_size, ort_net.image_size), np.float32)
        return ort_net.encoder.run(None, {ort_net.encoder_input: pixels})[0]

    bench.row(f"{title} encoder raw", "1024", torch_net and torch_encoder, ort_net and ort_encoder, difference)

    frame_w, frame_h = (torch_image or ort_image).frame_size
    points = point_grid(options.points_per_side, frame_w, frame_h)
    batch = options.points_per_batch
    kept: dict[str, int] = {}

    def all_prompts(image: Any, side: str) -> Any:
        def run() -> int:
            count = 0
            for start in range(0, len(points), batch):
                masks, _ = image.masks(
                    points[start : start + batch], options.pred_iou_threshold, options.stability_threshold
                )
                count += len(masks)
            kept[side] = count
            return count

        return run

    bench.row(
        f"{title} {len(points)} prompts .masks",
        f"{options.points_per_side}^2/{batch}",
        torch_image and all_prompts(torch_image, "torch"),
        ort_image and all_prompts(ort_image, "ort"),
        note=lambda: "masks kept (random weights): " + ", ".join(f"{k} {v}" for k, v in kept.items()),
    )
    first = points[:batch].astype(np.float32)
    embeddings = torch_image.embeddings if torch_image is not None else None

    def torch_decoder() -> Any:
        with torch.inference_mode():
            chunk = torch.as_tensor(first, device=torch_net.device)
            out = torch_net.model(
                image_embeddings=embeddings,
                input_points=chunk[None, :, None, :],
                input_labels=torch.ones((1, len(chunk), 1), dtype=torch.long, device=torch_net.device),
                multimask_output=True,
            )
            return out.pred_masks[0], out.iou_scores[0]

    def ort_decoder() -> Any:
        # The torch embeddings when there are some, so the difference is the decoder's alone.
        image = ort_image
        own = _numpy(embeddings) if embeddings is not None else image.embeddings
        if ort_net.js:
            feeds = {
                "input_points": first.reshape(1, len(first), 1, 2),
                "input_labels": np.ones((1, len(first), 1), np.int64),
                "image_embeddings": own,
                "image_positional_embeddings": image.positions,
            }
            masks, scores = ort_net.decoder.run(["pred_masks", "iou_scores"], feeds)
            return masks[0], scores[0]
        masks, scores = ort_net.decoder.run(["low_res_masks", "iou_predictions"], _sam_split_feeds(image, first, own))
        return masks, scores

    bench.row(
        f"{title} decoder raw x{batch}",
        "256 masks",
        torch_net and torch_decoder,
        ort_net and ort_decoder,
        lambda t, o: worst(difference(t[0], o[0]), difference(t[1], o[1])),
        note="low-res logits and IoU scores"
        + ("" if ort_net is None or ort_net.js else "; + frame-size masks in .masks"),
    )


def hole_set(photo: Photo) -> tuple[np.ndarray, np.ndarray]:
    """The inpainting input of the 1080p still (as ``core.inpaint`` gives the network): ground-truth depth
    and superpixels, so a real photo's layers and holes, not random weights' ones."""
    from core.inpaint import layer_holes
    from core.models import ModelCache
    from core.options import PipelineOptions
    from core.pipeline import _analyse
    from core.progress import Progress

    options = PipelineOptions.from_dict(
        {"runtime": {"device": "cpu"}, "depth": {"depth_file": str(photo.depth_file)}, "segment": {"model": "none"}}
    )
    analysis = _analyse(photo.path, options, Progress(), ModelCache())
    rgb = analysis.loaded.work_rgb
    holes = layer_holes(analysis.layers, options.inpaint.band_fraction * rgb.shape[1])
    todo = [hidden for hidden, hole in holes if hole.any()]
    images = np.stack([np.where(hidden[..., None], 0.0, rgb) for hidden in todo]).astype(np.float32)
    return images, np.stack(todo)


def bench_lama(bench: Bench, root: Path, photo: Photo) -> None:
    import torch

    from core.models.inpainting import TorchScriptLama
    from core.models.lama import load_lama
    from core.models.onnx_lama import OnnxLama, hole_crops
    from core.models.onnx_runtime import open_session

    folder = root / "big-lama"
    info = cached(folder, lama_files)
    bench.parameters["big-lama"] = info["parameters"]
    print(f"params  big-lama (FFC-ResNet, this rewrite): {info['parameters'] / 1e6:.2f} M (published ~51 M)")
    print(f"onnx    big-lama through core.models.onnx_export.export_lama: {info['fft_export']}")
    _print_export("big-lama", info)
    if info["fft_export"] != "exported":
        bench.notes.append(
            "big-lama's torch.fft ops do not export with the project's exporter (legacy TorchScript exporter, "
            "opset 17): " + info["fft_export"].split(";")[0] + ". The ORT figures are of the same network "
            "with its FFTs written as DFT matrix products (scripts/bench_models_arch.py), which exports; a "
            "published LaMa ONNX file (Carve/LaMa-ONNX) may run differently."
        )
    path = folder / "big-lama.pt"
    module = load_lama(str(path), bench.torch_device) if bench.torch_device else None
    ort_net = OnnxLama(open_session(str(folder / "lama.onnx"), bench.ort_device, "LaMa")) if bench.ort_device else None
    generator = torch.Generator().manual_seed(1)
    image = torch.rand((1, 3, LAMA_SIZE, LAMA_SIZE), generator=generator)
    mask = (torch.rand((1, 1, LAMA_SIZE, LAMA_SIZE), generator=generator) > 0.7).float()

    def torch_raw() -> Any:
        with torch.inference_mode():
            return module(image.to(bench.torch_device), mask.to(bench.torch_device))

    feeds = {"image": image.numpy(), "mask": mask.numpy()}
    bench.row(
        "big-lama raw network",
        f"{LAMA_SIZE}x{LAMA_SIZE}",
        torch_raw if module is not None else None,
        ort_net and (lambda: ort_net.net.run(["output"], feeds)[0]),
        difference,
        note=(f"ORT on {ort_net.provider}; " if ort_net else "") + "ORT: DFT-as-matmul rewrite",
    )
    images, masks = hole_set(photo)
    crops = sum(len(hole_crops(hole)) for hole in masks)
    height, width = masks.shape[1:]
    torch_fill = TorchScriptLama(module, bench.torch_device, str(path)) if module is not None else None
    bench.row(
        f"big-lama .fill, {len(masks)} layers",
        f"{width}x{height}",
        torch_fill and (lambda: torch_fill.fill(images, masks)),
        ort_net and (lambda: ort_net.fill(images, masks)),
        note=f"torch: whole frame per layer; ORT: {crops} crops at {LAMA_SIZE}; hidden "
        f"{masks.mean() * 100:.0f}% of pixels",
    )


def built_models(root: Path) -> dict[str, Path]:
    """The cached models the stills use, those built so far."""
    places = {
        "depth torch": (root / "depth-anything-v2-small" / "torch", ""),
        "depth onnx": (root / "depth-anything-v2-small" / "onnx", "model.onnx"),
        "slimsam-77": (root / "slimsam-77" / "torch", ""),
        "slimsam-77 onnx": (root / "slimsam-77" / "onnx", ""),
        "lama torch": (root / "big-lama", "big-lama.pt"),
        "lama onnx": (root / "big-lama", "lama.onnx"),
    }
    return {
        key: folder / name if name else folder
        for key, (folder, name) in places.items()
        if (folder / "built.json").is_file()
    }


def bench_stills(bench: Bench, photo: Photo, models: dict[str, Path]) -> None:
    from core.models import ModelCache, Runtime, backend_for
    from core.options import PipelineOptions
    from core.pipeline import convert_image
    from core.progress import Progress

    variants = []
    onnx_side = bench.ort_device and "depth onnx" in models and "slimsam-77 onnx" in models
    torch_side = bench.torch_device and "depth torch" in models and "slimsam-77" in models
    if onnx_side:
        for inpaint in ("telea", "lama"):
            if inpaint == "lama" and "lama onnx" not in models:
                continue
            variants.append(
                (
                    "ONNX",
                    bench.ort_device,
                    models["depth onnx"],
                    models["slimsam-77 onnx"],
                    inpaint,
                    models.get("lama onnx"),
                )
            )
    if torch_side:
        for inpaint in ("telea", "lama"):
            if inpaint == "lama" and "lama torch" not in models:
                continue
            variants.append(
                (
                    "torch",
                    bench.torch_device,
                    models["depth torch"],
                    models["slimsam-77"],
                    inpaint,
                    models.get("lama torch"),
                )
            )
    for runtime_name, device, depth, segment, inpaint, lama in variants:
        data: dict[str, Any] = {
            "runtime": {"device": device},
            "depth": {"model": str(depth)},
            "segment": {"model": str(segment)},
            "inpaint": {"method": inpaint},
        }
        if inpaint == "lama":
            data["inpaint"]["lama_model"] = str(lama)
        options = PipelineOptions.from_dict(data)
        cache = ModelCache()
        runtime = Runtime.from_options(options.runtime)
        # Networks opened once, as the worker keeps them: the runs time the conversion, not the loading.
        backend_for("depth", options.depth.model, runtime, cache)
        backend_for("segmentation", options.segment.model, runtime, cache)
        if inpaint == "lama":
            backend_for("inpainting", options.inpaint.lama_model, runtime, cache)
        walls: list[float] = []
        stages: dict[str, list[float]] = {}
        stats: dict = {}
        with tempfile.TemporaryDirectory() as tmp:
            while len(walls) < bench.still_repeat and (not walls or sum(walls) < bench.max_seconds * 3):
                started = time.perf_counter()
                result = convert_image(photo.path, Path(tmp) / f"pkg{len(walls)}", options, Progress(), cache)
                walls.append(time.perf_counter() - started)
                for stage, seconds in result.manifest.timings.items():
                    stages.setdefault(stage, []).append(seconds)
                stats = {
                    "layers": len(result.manifest.layers),
                    "segments": result.manifest.stats.get("segments"),
                    "runs_on": {k: v for k, v in result.manifest.models.items() if k.endswith("_runs_on")},
                }
        still = {
            "name": f"{runtime_name} depth+SlimSAM, {inpaint}",
            "wall_s": statistics.median(walls),
            "walls_s": [round(w, 3) for w in walls],
            "stages_s": {stage: statistics.median(values) for stage, values in stages.items()},
            "load": os.getloadavg()[0],
            **stats,
        }
        bench.stills.append(still)
        print_still(still, flush=True)


def print_still(still: dict, flush: bool = False) -> None:
    split = ", ".join(f"{stage} {seconds:.2f}" for stage, seconds in still["stages_s"].items())
    print(
        f"still   {still['name']:<30} wall {still['wall_s']:6.2f} s (median of {len(still['walls_s'])}: "
        f"{', '.join(f'{w:.2f}' for w in still['walls_s'])}); load {still['load']:.2f}\n"
        f"        stages: {split}\n"
        f"        {still['layers']} layers, {still['segments']} segments; "
        + "; ".join(f"{k} {v}" for k, v in still["runs_on"].items()),
        flush=flush,
    )


# --- devices and threads -----------------------------------------------------------------------------------


def resolve_devices(device: str) -> tuple[str | None, str | None, list[str]]:
    """(torch device, ONNX Runtime device, lines saying what is not available) for ``--device``."""
    if device == "cpu":
        return "cpu", "cpu", []
    import onnxruntime
    import torch

    missing = []
    torch_device: str | None = "cuda"
    if not torch.cuda.is_available():
        torch_device = None
        missing.append(f"torch on cuda: not available (torch {torch.__version__} sees no CUDA GPU)")
    ort_device: str | None = "cuda"
    providers = onnxruntime.get_available_providers()
    if "CUDAExecutionProvider" not in providers:
        ort_device = None
        missing.append(
            f"ONNX Runtime on cuda: not available (onnxruntime {onnxruntime.__version__} lists "
            f"{', '.join(providers)}; install onnxruntime-gpu)"
        )
    return torch_device, ort_device, missing


def limit_threads(threads: int) -> None:
    """``threads`` for torch and for every ONNX Runtime session the backends open."""
    import onnxruntime
    import torch

    torch.set_num_threads(threads)
    make = onnxruntime.SessionOptions

    def options() -> Any:
        made = make()
        made.intra_op_num_threads = threads
        made.inter_op_num_threads = 1
        return made

    onnxruntime.SessionOptions = options


# --- main --------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per measurement, after a warm-up")
    parser.add_argument("--still-repeat", type=int, default=3, help="conversions per still")
    parser.add_argument(
        "--max-seconds", type=float, default=60.0, help="stop repeating a measurement past this (stills: 3x)"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--threads", type=int, help="threads for torch and ONNX Runtime (default: theirs)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--tensorrt", action="store_true", help="with --device cuda: TensorRT first, then CUDA")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    args = parser.parse_args()
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown or args.repeat < 1 or args.still_repeat < 1:
        parser.error(f"unknown --only {', '.join(unknown)}" if unknown else "--repeat and --still-repeat must be >= 1")

    warnings.filterwarnings("ignore", message=".*TypedStorage.*")
    if args.tensorrt:
        from core.models.onnx_runtime import PROVIDERS_ENV

        os.environ[PROVIDERS_ENV] = "TensorrtExecutionProvider,CUDAExecutionProvider"
    torch_device, ort_device, missing = resolve_devices(args.device)
    for line in missing:
        print(line)
    if torch_device is None and ort_device is None:
        print(f"--device {args.device}: not available here; nothing to measure")
        return 2
    if args.threads:
        limit_threads(args.threads)
    import onnxruntime
    import torch
    import transformers

    bench = Bench(args.repeat, args.max_seconds, torch_device, ort_device)
    bench.still_repeat = args.still_repeat
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    print(
        f"Photo3D model benchmark: device {args.device} (torch {torch_device or 'n/a'}, ONNX Runtime "
        f"{ort_device or 'n/a'}), torch {torch.__version__} ({torch.get_num_threads()} threads), transformers "
        f"{transformers.__version__}, onnxruntime {onnxruntime.__version__}, {os.cpu_count()} CPUs; "
        f"median of {args.repeat} after a warm-up; cache {root}; load {load_text()}",
        flush=True,
    )
    photo = make_photo(root)
    started = time.perf_counter()
    if any(name in only for name in ("depth", "sam", "lama")):
        print(HEADER, flush=True)
    if "depth" in only:
        bench_depth(bench, root, photo)
    if "sam" in only:
        bench_sam(bench, root, photo)
    if "lama" in only:
        bench_lama(bench, root, photo)
    if "still" in only:
        models = built_models(root)
        if not all(key in models for key in ("depth torch", "depth onnx", "slimsam-77", "slimsam-77 onnx")):
            print("still: the depth and SAM models are not built yet: run with --only depth,sam first")
        else:
            bench_stills(bench, photo, models)

    print()
    print(f"Summary (load {load_text()}, {time.perf_counter() - started:.0f} s)")
    if bench.rows:
        print(HEADER)
        for row in bench.rows:
            print_row(row)
    for still in bench.stills:
        print_still(still)
    if bench.parameters:
        print("parameters: " + ", ".join(f"{name} {count / 1e6:.2f} M" for name, count in bench.parameters.items()))
    for note in bench.notes:
        print(f"note: {note}")
    if args.json:
        payload = {
            "device": args.device,
            "torch_device": torch_device,
            "ort_device": ort_device,
            "not_available": missing,
            "repeat": args.repeat,
            "rows": [{**asdict(row), "ratio": row.ratio} for row in bench.rows],
            "stills": bench.stills,
            "parameters": bench.parameters,
            "notes": bench.notes,
            "load_average": os.getloadavg(),
        }
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
