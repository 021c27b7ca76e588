"""``python -m core models export-onnx``: local torch/transformers weights turned into the ONNX files the
ONNX backends run, each checked against torch before it is kept.

depth: a transformers depth model folder -> ``OUT/model.onnx`` (dynamic height and width) plus its configs.
segmentation: a transformers SAM folder -> ``OUT/encoder.onnx`` and ``OUT/decoder.onnx`` in the split the
official segment-anything export uses, plus the processor config. inpainting: a big-lama-interface
TorchScript file -> ``OUT/lama.onnx`` at a fixed 512 x 512. Every network runs in torch and in ONNX Runtime
on the same input; the largest absolute and relative differences are reported, and above ``TOLERANCE``
(relative) the export is deleted and the command fails. The legacy TorchScript exporter (``dynamo=False``)
at opset 17 is used: it needs only the ``onnx`` package, not onnxscript.
"""

from __future__ import annotations

import argparse
import os
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, ModelError

OPSET = 17
TOLERANCE = 1e-4
"""Largest accepted relative difference: max |torch - onnx| / max |torch|, over each output."""
LAMA_SIZE = 512
"""Published LaMa ONNX exports are fixed at 512 x 512; ours matches so either file runs the same way."""
EXPORT_TASKS = ("depth", "segmentation", "inpainting")


@dataclass
class Difference:
    """How far ONNX Runtime is from torch on one output."""

    network: str
    output: str
    max_abs: float
    max_rel: float

    def line(self) -> str:
        return f"{self.network} {self.output}: max abs {self.max_abs:.3g}, max rel {self.max_rel:.3g}"


@dataclass
class ExportResult:
    """The files written and the parity of each."""

    files: list[Path] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)


def difference(network: str, output: str, expected: np.ndarray, actual: np.ndarray) -> Difference:
    """Max absolute and relative (to the largest torch magnitude) difference; shapes must agree."""
    expected, actual = np.asarray(expected, np.float64), np.asarray(actual, np.float64)
    if expected.shape != actual.shape:
        raise ModelError(f"{network} {output}: ONNX Runtime gave shape {actual.shape}, torch {expected.shape}")
    if not np.isfinite(actual).all():
        raise ModelError(f"{network} {output}: ONNX Runtime gave non-finite values")
    max_abs = float(np.abs(expected - actual).max()) if expected.size else 0.0
    scale = float(np.abs(expected).max()) if expected.size else 0.0
    return Difference(network, output, max_abs, max_abs / scale if scale > 0 else max_abs)


def _export(module: Any, args: tuple, path: Path, inputs: list[str], outputs: list[str], dynamic: dict) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # The legacy exporter warns that it is legacy, and traces warn on every shape read: neither is news.
        warnings.simplefilter("ignore")
        with torch.no_grad():
            torch.onnx.export(
                module,
                args,
                str(path),
                dynamo=False,
                opset_version=OPSET,
                input_names=inputs,
                output_names=outputs,
                dynamic_axes=dynamic or None,
                do_constant_folding=True,
            )


def _ort_run(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    from .onnx_runtime import open_session

    return open_session(str(path), "cpu", "exported model").run(None, feeds)


def _check(result: ExportResult, network: str, names: list[str], torch_out: list, ort_out: list) -> None:
    for name, expected, actual in zip(names, torch_out, ort_out, strict=True):
        result.differences.append(difference(network, name, expected.detach().cpu().numpy(), actual))


def _load_transformers(source: str, loader: Callable[[str], Any], what: str) -> Any:
    try:
        return loader(source)
    except Exception as exc:
        raise ModelError(f"cannot load {what} from {source}: {exc}") from exc


# --- depth ---------------------------------------------------------------------------------------------


def _traceable_depth_head(head: Any) -> None:
    """Make Depth Anything's head follow the input size in a trace.

    transformers' head resizes to ``int(patch_height * patch_size)``: the ``int`` turns the traced size into
    a constant, so the export would give every input the trace's output size (a 924-wide input came out 770
    wide). The same computation without the ``int`` keeps it dynamic. Heads without these parts are left as
    they are; the parity check at several sizes catches what that breaks.
    """
    import types

    import torch

    needed = ("conv1", "conv2", "conv3", "activation1", "activation2", "max_depth", "head_in_index", "patch_size")
    if not all(hasattr(head, name) for name in needed):
        return

    def forward(self: Any, hidden_states: list, patch_height: Any, patch_width: Any) -> torch.Tensor:
        hidden = self.conv1(hidden_states[self.head_in_index])
        size = (patch_height * self.patch_size, patch_width * self.patch_size)
        hidden = torch.nn.functional.interpolate(hidden, size, mode="bilinear", align_corners=True)
        hidden = self.activation1(self.conv2(hidden))
        depth = self.activation2(self.conv3(hidden)) * self.max_depth
        return depth.squeeze(dim=1)

    head.forward = types.MethodType(forward, head)


class _DepthWrapper:
    """``pixel_values -> predicted_depth`` as a plain module for the tracer."""

    @staticmethod
    def build(model: Any) -> Any:
        import torch

        if hasattr(model, "head"):
            _traceable_depth_head(model.head)

        class Wrapper(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
                return self.model(pixel_values=pixel_values).predicted_depth

        return Wrapper().eval()


def export_depth(
    source: str, out_dir: Path, sizes: tuple[tuple[int, int], ...] = ((518, 686), (392, 518))
) -> ExportResult:
    """Export a transformers depth model folder to ``out_dir/model.onnx`` with dynamic height and width.

    Traced at the first of ``sizes`` and checked at every one of them, so a size baked into the trace
    (an output that does not follow the input) fails the check.
    """
    import torch
    from transformers import AutoModelForDepthEstimation

    model = _load_transformers(
        source,
        lambda s: AutoModelForDepthEstimation.from_pretrained(s, local_files_only=True, use_safetensors=True),
        "depth model",
    )
    wrapper = _DepthWrapper.build(model.float().eval())
    path = out_dir / "model.onnx"
    result = ExportResult(files=[path])
    generator = torch.Generator().manual_seed(0)
    samples = [torch.rand((1, 3, h, w), generator=generator) * 4 - 2 for h, w in sizes]
    _export(
        wrapper,
        (samples[0],),
        path,
        ["pixel_values"],
        ["predicted_depth"],
        {
            "pixel_values": {0: "batch", 2: "height", 3: "width"},
            "predicted_depth": {0: "batch", 1: "height", 2: "width"},
        },
    )
    for name in ("config.json", "preprocessor_config.json"):
        if os.path.isfile(os.path.join(source, name)):
            shutil.copyfile(os.path.join(source, name), out_dir / name)
            result.files.append(out_dir / name)
    for sample in samples:
        with torch.no_grad():
            expected = wrapper(sample)
        actual = _ort_run(path, {"pixel_values": sample.numpy()})
        _check(result, f"depth {sample.shape[3]}x{sample.shape[2]}", ["predicted_depth"], [expected], actual)
    return result


# --- segmentation ----------------------------------------------------------------------------------------


def _sam_modules(model: Any) -> tuple[Any, Any]:
    """(encoder, decoder) modules with the official segment-anything ONNX interface around a transformers SAM."""
    import torch
    import torch.nn.functional as functional

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.vision = model.vision_encoder

        def forward(self, image: torch.Tensor) -> torch.Tensor:
            return self.vision(image)[0]

    class Decoder(torch.nn.Module):
        """segment-anything's ``SamOnnxModel`` interface; prompts batch along the first axis.

        Only the three multimask outputs are given (``SamPredictor``'s ``multimask_output=True``), as the
        transformers decoder computes them.
        """

        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.img_size = int(model.prompt_encoder.input_image_size)

        def forward(
            self,
            image_embeddings: torch.Tensor,
            point_coords: torch.Tensor,
            point_labels: torch.Tensor,
            mask_input: torch.Tensor,
            has_mask_input: torch.Tensor,
            orig_im_size: torch.Tensor,
        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            prompt = self.model.prompt_encoder
            # transformers shifts to pixel centres itself; the points already hold their padding point.
            sparse = prompt._embed_points(point_coords[None], point_labels[None], pad=False)
            no_mask = prompt.no_mask_embed.weight.reshape(1, -1, 1, 1)
            dense = has_mask_input * prompt.mask_embed(mask_input) + (1 - has_mask_input) * no_mask
            low_res, scores = self.model.mask_decoder(
                image_embeddings=image_embeddings,
                image_positional_embeddings=self.model.get_image_wide_positional_embeddings(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=True,
            )
            low_res, scores = low_res[0], scores[0]
            # segment-anything's mask_postprocessing: to the padded input, crop the padding, to orig_im_size.
            masks = functional.interpolate(
                low_res, (self.img_size, self.img_size), mode="bilinear", align_corners=False
            )
            size = orig_im_size.to(torch.float32)
            prepadded = torch.floor(size * (self.img_size / torch.max(size)) + 0.5).to(torch.int64)
            masks = masks[..., : prepadded[0], : prepadded[1]]
            original = orig_im_size.to(torch.int64)
            masks = functional.interpolate(masks, size=(original[0], original[1]), mode="bilinear", align_corners=False)
            return masks, scores, low_res

    return Encoder().eval(), Decoder().eval()


def export_sam(source: str, out_dir: Path, prompts: int = 5) -> ExportResult:
    """Export a transformers SAM folder to ``out_dir/encoder.onnx`` and ``out_dir/decoder.onnx``.

    The decoder is traced with ``prompts`` prompts and checked with another count, so a baked batch size
    fails the check.
    """
    import torch
    from transformers import SamModel

    model = _load_transformers(
        source, lambda s: SamModel.from_pretrained(s, local_files_only=True, use_safetensors=True), "SAM model"
    )
    encoder, decoder = _sam_modules(model.float().eval())
    size = decoder.img_size
    generator = torch.Generator().manual_seed(0)
    image = torch.rand((1, 3, size, size), generator=generator) * 4 - 2
    encoder_path, decoder_path = out_dir / "encoder.onnx", out_dir / "decoder.onnx"
    result = ExportResult(files=[encoder_path, decoder_path])
    _export(encoder, (image,), encoder_path, ["image"], ["image_embeddings"], {})
    with torch.no_grad():
        embeddings = encoder(image)
    result_embeddings = _ort_run(encoder_path, {"image": image.numpy()})
    _check(result, "sam encoder", ["image_embeddings"], [embeddings], result_embeddings)

    low_res = 4 * embeddings.shape[-1]

    def prompt_inputs(count: int, im_size: tuple[int, int]) -> tuple[torch.Tensor, ...]:
        coords = torch.rand((count, 2, 2), generator=generator) * size
        coords[:, 1] = 0.0
        labels = torch.tensor([[1.0, -1.0]]).repeat(count, 1)
        return (
            embeddings,
            coords,
            labels,
            torch.zeros((1, 1, low_res, low_res)),
            torch.zeros(1),
            torch.tensor(im_size, dtype=torch.float32),
        )

    names = ["image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input", "orig_im_size"]
    outputs = ["masks", "iou_predictions", "low_res_masks"]
    _export(
        decoder,
        prompt_inputs(prompts, (size, size * 3 // 4)),
        decoder_path,
        names,
        outputs,
        {
            "point_coords": {0: "prompts", 1: "points"},
            "point_labels": {0: "prompts", 1: "points"},
            "masks": {0: "prompts", 2: "height", 3: "width"},
            "iou_predictions": {0: "prompts"},
            "low_res_masks": {0: "prompts"},
        },
    )
    for count, im_size in ((prompts, (size * 3 // 4, size)), (prompts + 2, (size // 2, size))):
        feeds = prompt_inputs(count, im_size)
        with torch.no_grad():
            expected = decoder(*feeds)
        actual = _ort_run(decoder_path, {name: value.numpy() for name, value in zip(names, feeds, strict=True)})
        _check(result, f"sam decoder x{count}", outputs, list(expected), actual)
    for name in ("preprocessor_config.json",):
        if os.path.isfile(os.path.join(source, name)):
            shutil.copyfile(os.path.join(source, name), out_dir / name)
            result.files.append(out_dir / name)
    return result


# --- inpainting ------------------------------------------------------------------------------------------


def export_lama(source: str, out_dir: Path, size: int = LAMA_SIZE) -> ExportResult:
    """Export a big-lama-interface TorchScript file (``forward(image, mask) -> image``) to
    ``out_dir/lama.onnx`` at a fixed ``size`` x ``size``, the shape published LaMa exports have."""
    import torch

    from .lama import load_lama

    module = load_lama(source, "cpu")
    path = out_dir / "lama.onnx"
    result = ExportResult(files=[path])
    generator = torch.Generator().manual_seed(0)
    image = torch.rand((1, 3, size, size), generator=generator)
    mask = (torch.rand((1, 1, size, size), generator=generator) > 0.7).float()
    try:
        _export(module, (image, mask), path, ["image", "mask"], ["output"], {})
    except Exception as exc:
        raise ModelError(
            f"cannot export {source} to ONNX ({type(exc).__name__}: {str(exc).strip().splitlines()[0]}); "
            "big-lama's Fourier convolutions need an ONNX-friendly rewrite: use a published LaMa ONNX file instead"
        ) from exc
    with torch.no_grad():
        expected = module(image, mask)
    _check(result, "lama", ["output"], [expected], _ort_run(path, {"image": image.numpy(), "mask": mask.numpy()}))
    return result


# --- the command -----------------------------------------------------------------------------------------


def export_onnx(task: str, source: str, out_dir: Path, tolerance: float = TOLERANCE) -> ExportResult:
    """Export ``source`` for ``task`` into ``out_dir`` and check it against torch; ``ModelError`` (and the
    written files removed) when a difference is above ``tolerance``."""
    exporters = {"depth": export_depth, "segmentation": export_sam, "inpainting": export_lama}
    if task not in exporters:
        raise InputError(f"unknown task {task!r}: use one of {', '.join(EXPORT_TASKS)}")
    out_dir = Path(out_dir)
    result = exporters[task](source, out_dir)
    worst = max(result.differences, key=lambda d: d.max_rel)
    if worst.max_rel > tolerance:
        for path in result.files:
            path.unlink(missing_ok=True)
        raise ModelError(
            f"the ONNX export of {source} does not match torch: {worst.line()} is above {tolerance:g} (relative); "
            "nothing was kept"
        )
    return result


def add_export_onnx_parser(models: argparse.ArgumentParser, models_dir_help: str) -> None:
    """Add ``export-onnx`` to the ``models`` command's subcommands."""
    actions = next(action for action in models._actions if isinstance(action, argparse._SubParsersAction))
    export = actions.add_parser(
        "export-onnx",
        help="turn local torch/transformers weights into ONNX files, checked against torch",
        description="depth: a transformers depth model folder -> OUTPUT/model.onnx; segmentation: a transformers "
        "SAM folder -> OUTPUT/encoder.onnx and decoder.onnx; inpainting: a big-lama-interface TorchScript file "
        "-> OUTPUT/lama.onnx (512 x 512). Each is compared with torch and removed if they differ.",
    )
    export.add_argument("task", choices=EXPORT_TASKS)
    export.add_argument("source", help="model folder or hub id (depth, segmentation), TorchScript file (inpainting)")
    export.add_argument("-o", "--output", required=True, help="folder to write the ONNX file(s) into")
    export.add_argument("--models-dir", help=models_dir_help)
    export.add_argument(
        "--tolerance", type=float, default=TOLERANCE, help=f"largest relative difference (default {TOLERANCE:g})"
    )


def run_export_onnx(args: argparse.Namespace, models_dir: str | None) -> int:
    """Run ``python -m core models export-onnx``: print each output's difference from torch and each file."""
    from .weights import WeightsNeed, locate

    kind = "file" if args.task == "inpainting" else "transformers"
    source = locate(WeightsNeed(f"{args.task} model", args.source, kind), models_dir, offline=True)
    result = export_onnx(args.task, source, Path(args.output), args.tolerance)
    for difference_ in result.differences:
        print(f"parity  {difference_.line()}")
    for path in result.files:
        print(f"wrote   {path}")
    return 0
