"""Tiny random models of the real architectures exported to ONNX once per test run, with their torch sources.

``onnx_models(tmp_path_factory)`` builds (once per process) a folder holding: a tiny Depth Anything and its
``model.onnx``; a tiny SAM and its ``encoder.onnx`` / ``decoder.onnx`` (segment-anything's split, made by
``core.models.onnx_export``) and ``vision_encoder.onnx`` / ``prompt_encoder_mask_decoder.onnx`` (the
transformers.js split SlimSAM is published in, made here); a tiny big-lama-interface TorchScript file and
its fixed 512 x 512 ``lama.onnx``.
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

from core.models.onnx_export import ExportResult, export_depth, export_lama, export_sam

DEPTH_SIZES = ((56, 70), (42, 84), (70, 42))
"""The tiny depth export is traced at the first size and checked at all: a baked shape fails."""


@dataclass(frozen=True)
class OnnxModels:
    """Where everything was written, and the parity each export measured."""

    depth_source: Path
    depth_onnx: Path
    """Folder holding ``model.onnx`` and the configs."""
    sam_source: Path
    sam_onnx: Path
    """Folder holding ``encoder.onnx`` and ``decoder.onnx``."""
    sam_js: Path
    """Folder holding ``vision_encoder.onnx`` and ``prompt_encoder_mask_decoder.onnx``."""
    lama_source: Path
    lama_onnx: Path
    """The ``lama.onnx`` file."""
    exports: dict[str, ExportResult]


def export_sam_transformers_js(source: Path, out_dir: Path) -> Path:
    """Export a transformers SAM folder in the transformers.js split (what Xenova's SlimSAM files hold)."""
    import torch
    from transformers import SamModel

    model = SamModel.from_pretrained(source, use_safetensors=True).eval()

    class Vision(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model  # a submodule, so its weights become initializers, not traced constants

        def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self.model.vision_encoder(pixel_values)[0], self.model.get_image_wide_positional_embeddings()

    class Decoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_points, input_labels, image_embeddings, image_positional_embeddings):
            sparse, dense = self.model.prompt_encoder(input_points, input_labels, None, None)
            masks, scores = self.model.mask_decoder(
                image_embeddings=image_embeddings,
                image_positional_embeddings=image_positional_embeddings,
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=True,
            )
            return scores, masks

    size = int(model.prompt_encoder.input_image_size)
    pixels = torch.rand((1, 3, size, size))
    out_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        embeddings, positions = Vision()(pixels)
        torch.onnx.export(
            Vision(),
            (pixels,),
            str(out_dir / "vision_encoder.onnx"),
            dynamo=False,
            opset_version=17,
            input_names=["pixel_values"],
            output_names=["image_embeddings", "image_positional_embeddings"],
        )
        points = torch.rand((1, 3, 1, 2)) * size
        labels = torch.ones((1, 3, 1), dtype=torch.int64)
        torch.onnx.export(
            Decoder(),
            (points, labels, embeddings, positions),
            str(out_dir / "prompt_encoder_mask_decoder.onnx"),
            dynamo=False,
            opset_version=17,
            input_names=["input_points", "input_labels", "image_embeddings", "image_positional_embeddings"],
            output_names=["iou_scores", "pred_masks"],
            dynamic_axes={
                "input_points": {1: "prompts", 2: "points"},
                "input_labels": {1: "prompts", 2: "points"},
                "iou_scores": {1: "prompts"},
                "pred_masks": {1: "prompts"},
            },
        )
    return out_dir


def _build(root: Path) -> OnnxModels:
    from tests.tiny_models import make_tiny_depth_model, make_tiny_lama
    from tests.tiny_models.sam import make_tiny_sam

    depth_source = make_tiny_depth_model(root / "depth-torch")
    sam_source = make_tiny_sam(root / "sam-torch")
    lama_source = make_tiny_lama(root / "tiny-lama.pt")
    exports = {
        "depth": export_depth(str(depth_source), root / "depth-onnx", sizes=DEPTH_SIZES),
        "segmentation": export_sam(str(sam_source), root / "sam-onnx"),
        "inpainting": export_lama(str(lama_source), root / "lama-onnx"),
    }
    sam_js = export_sam_transformers_js(sam_source, root / "sam-js")
    return OnnxModels(
        depth_source=depth_source,
        depth_onnx=root / "depth-onnx",
        sam_source=sam_source,
        sam_onnx=root / "sam-onnx",
        sam_js=sam_js,
        lama_source=lama_source,
        lama_onnx=root / "lama-onnx" / "lama.onnx",
        exports=exports,
    )


_BUILT: list[OnnxModels] = []
_LOCK = threading.Lock()


def onnx_models(tmp_path_factory) -> OnnxModels:
    """The exported tiny models, built on first use and shared by every test file of the run."""
    with _LOCK:
        if not _BUILT:
            _BUILT.append(_build(tmp_path_factory.mktemp("onnx-models")))
        return _BUILT[0]


def catalog_files(exported: OnnxModels) -> dict[str, Path]:
    """The tiny exports under the paths the model manager's catalog gives the real files (its ``path``s)."""
    return {
        "depth-anything-v2-small/model.onnx": exported.depth_onnx / "model.onnx",
        "slimsam-77/vision_encoder.onnx": exported.sam_js / "vision_encoder.onnx",
        "slimsam-77/prompt_encoder_mask_decoder.onnx": exported.sam_js / "prompt_encoder_mask_decoder.onnx",
        "lama/lama_fp32.onnx": exported.lama_onnx,
    }


def install_catalog_models(folder: Path, exported: OnnxModels) -> Path:
    """Copy the tiny exports into ``folder`` where the model manager would have downloaded the real ones."""
    import shutil

    for relative, source in catalog_files(exported).items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, folder / relative)
    return folder
