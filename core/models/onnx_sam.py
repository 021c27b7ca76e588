"""Segment Anything (SAM, SlimSAM, MobileSAM) exported to ONNX as an image encoder and a prompt decoder.

The split is segment-anything's own: ``encoder.onnx`` takes the normalised image resized so its longest
side is the encoder's size and padded to a square, and gives ``image_embeddings``; ``decoder.onnx`` takes
``image_embeddings``, ``point_coords``, ``point_labels``, ``mask_input``, ``has_mask_input`` and
``orig_im_size`` and gives ``masks``, ``iou_predictions`` and ``low_res_masks``. The encoder runs once per
photo; the decoder runs on batches of the stage's point grid (one point at a time when its prompt axis is
fixed at 1). The grid and NMS stay in ``core.segment``, as for the torch backend.

The transformers.js split (``vision_encoder.onnx`` giving ``image_embeddings`` and
``image_positional_embeddings``; ``prompt_encoder_mask_decoder.onnx`` taking them with ``input_points`` and
``input_labels`` and giving ``iou_scores`` and low-resolution ``pred_masks``, as SlimSAM's published export
has) runs the same way; its masks are upscaled here like the torch backend does.
"""

from __future__ import annotations

import os

import cv2
import numpy as np
from PIL import Image

from ..errors import ModelError
from .cache import ModelCache
from .onnx_runtime import OnnxNet, is_onnx_file, normalisation, open_session, sidecar_json
from .registry import register_backend
from .runtime import Runtime
from .weights import WeightsNeed, locate

MASK_THRESHOLD = 0.0
STABILITY_OFFSET = 1.0
"""As SAM's automatic mask generator (and the torch backend): a mask is logits > 0, stability at +-1."""
DECODER_BATCH = 16
"""Prompts per decoder run: its ``masks`` output is computed at the prompt frame's size whatever outputs are
asked for, so this bounds memory to 16 x 4 frame-sized float maps (256 MB at 1024)."""
UPSCALE_CHUNK = 16
"""Masks resized to the photo at a time."""
DECODER_INPUTS = ("image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input", "orig_im_size")
DECODER_OUTPUTS = ("masks", "iou_predictions")
JS_DECODER_INPUTS = ("input_points", "input_labels", "image_embeddings", "image_positional_embeddings")
JS_DECODER_OUTPUTS = ("pred_masks", "iou_scores")
SPLITS = (("encoder.onnx", "decoder.onnx"), ("vision_encoder.onnx", "prompt_encoder_mask_decoder.onnx"))
"""File names of a folder's encoder and decoder: segment-anything's export, then transformers.js'."""
DEFAULT_IMAGE_SIZE = 1024
_SAM_MEAN = (0.485, 0.456, 0.406)
_SAM_STD = (0.229, 0.224, 0.225)
"""segment-anything's pixel mean/std (123.675, 116.28, 103.53 / 58.395, 57.12, 57.375) on a 0..1 scale."""


def model_files(model: str) -> tuple[str, str] | None:
    """(encoder, decoder) for a folder holding both, or an encoder file with its ``decoder`` sibling."""
    value = os.path.expanduser((model or "").strip())
    if os.path.isdir(value):
        for folder in (value, os.path.join(value, "onnx")):
            for encoder_name, decoder_name in SPLITS:
                encoder, decoder = os.path.join(folder, encoder_name), os.path.join(folder, decoder_name)
                if os.path.isfile(encoder) and os.path.isfile(decoder):
                    return encoder, decoder
        return None
    if is_onnx_file(value):
        folder, name = os.path.split(value)
        if "encoder" not in name.lower():
            return None
        if name.lower() == SPLITS[1][0]:
            return value, os.path.join(folder, SPLITS[1][1])
        at = name.lower().rindex("encoder")
        return value, os.path.join(folder, name[:at] + "decoder" + name[at + len("encoder") :])
    return None


def resized_frame(height: int, width: int, longest: int) -> tuple[int, int]:
    """(h, w) of a photo resized so its longest side is ``longest``: segment-anything's and transformers' rule."""
    scale = longest / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def stability_scores(
    logits: np.ndarray, threshold: float = MASK_THRESHOLD, offset: float = STABILITY_OFFSET
) -> np.ndarray:
    """IoU of each mask at ``threshold + offset`` with itself at ``threshold - offset``: (M, h, w) -> (M,)."""
    flat = logits.reshape(len(logits), -1)
    inner = np.count_nonzero(flat > threshold + offset, axis=1)
    outer = np.count_nonzero(flat > threshold - offset, axis=1)
    return (inner / np.maximum(outer, 1)).astype(np.float32)


def multimask(masks: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The multimask candidates of a decoder's output: segment-anything's export gives four per prompt with
    the single-mask answer first, which ``SamPredictor`` drops; three or one are taken as they are."""
    if masks.shape[1] == 4:
        return masks[:, 1:], scores[:, 1:]
    return masks, scores


class _OnnxPrompts:
    """A photo embedded by the ONNX encoder: decodes batches of single-point prompts."""

    def __init__(self, backend: OnnxSam, rgb: np.ndarray):
        self.backend = backend
        self.size = rgb.shape[:2]
        side = backend.image_size
        frame_h, frame_w = resized_frame(*self.size, side)
        self.frame_size = (frame_w, frame_h)
        # The same uint8 quantisation and PIL bilinear resize as transformers' SAM processor, so both
        # backends see the same pixels.
        image = Image.fromarray((np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))
        resized = np.asarray(image.resize((frame_w, frame_h), Image.BILINEAR), np.float32) / 255.0
        padded = np.zeros((side, side, 3), np.float32)
        padded[:frame_h, :frame_w] = (resized - backend.mean) / backend.std
        encoder = backend.encoder
        outputs = encoder.run(None, {backend.encoder_input: padded.transpose(2, 0, 1)[None]})
        named = dict(zip(encoder.outputs, outputs, strict=True))
        self.embeddings = named.get("image_embeddings", outputs[0])
        self.positions = named.get("image_positional_embeddings")
        if self.embeddings.ndim != 4 or (backend.js and self.positions is None):
            raise ModelError(
                f"SAM encoder {encoder.path} gave {', '.join(f'{k} {v.shape}' for k, v in named.items())}: expected "
                "image_embeddings (1, C, h, w)" + (" and image_positional_embeddings" if backend.js else "")
            )

    def _decode(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(masks (P, M, mh, mw) logits, scores (P, M)) for single-point prompts: at the frame's size from
        segment-anything's decoder, at low resolution from transformers.js'."""
        decoder = self.backend.decoder
        count = len(points)
        if self.backend.js:
            # transformers' prompt encoder adds the padding point itself when no box is given.
            feeds = {
                "input_points": points.reshape(1, count, 1, 2).astype(np.float32),
                "input_labels": np.ones((1, count, 1), np.int64),
                "image_embeddings": self.embeddings,
                "image_positional_embeddings": self.positions,
            }
            masks, scores = decoder.run(list(JS_DECODER_OUTPUTS), feeds)
            masks, scores = masks[0], scores[0]
        else:
            coords = np.zeros((count, 2, 2), np.float32)
            coords[:, 0] = points  # the second point is the padding point (label -1), as SamPredictor adds
            labels = np.tile(np.array([[1.0, -1.0]], np.float32), (count, 1))
            side = decoder.fixed("mask_input", 2) or 4 * self.embeddings.shape[2]
            frame_w, frame_h = self.frame_size
            # orig_im_size = the frame: the decoder's own upsampling stops at the frame (cheap), and the masks
            # are resized to the photo only for the prompts that pass the score filter.
            feeds = {
                "image_embeddings": self.embeddings,
                "point_coords": coords,
                "point_labels": labels,
                "mask_input": np.zeros((1, 1, side, decoder.fixed("mask_input", 3) or side), np.float32),
                "has_mask_input": np.zeros(1, np.float32),
                "orig_im_size": np.array([frame_h, frame_w], np.float32),
            }
            masks, scores = decoder.run(list(DECODER_OUTPUTS), feeds)
        if masks.ndim != 4 or scores.shape != masks.shape[:2] or masks.shape[0] != count:
            raise ModelError(
                f"SAM decoder {decoder.path} gave masks {masks.shape} and scores {scores.shape} for {count} prompts"
            )
        return multimask(masks, scores)

    def _to_photo(self, logits: np.ndarray) -> np.ndarray:
        """(M, mh, mw) logits -> (M, h, w) at the photo's size (cv2 bilinear = torch's align_corners=False)."""
        h, w = self.size
        stack = np.ascontiguousarray(logits.transpose(1, 2, 0), np.float32)
        if self.backend.js:
            # Like SAM: bilinear to the padded input, crop the padding, then to the photo.
            side = self.backend.image_size
            frame_w, frame_h = self.frame_size
            stack = cv2.resize(stack, (side, side), interpolation=cv2.INTER_LINEAR).reshape(side, side, -1)
            stack = np.ascontiguousarray(stack[:frame_h, :frame_w])
        full = cv2.resize(stack, (w, h), interpolation=cv2.INTER_LINEAR).reshape(h, w, len(logits))
        return full.transpose(2, 0, 1)

    def masks(
        self, points: np.ndarray, pred_iou_threshold: float, stability_threshold: float
    ) -> tuple[np.ndarray, np.ndarray]:
        h, w = self.size
        points = np.asarray(points, np.float32).reshape(-1, 2)
        batch = self.backend.decoder_batch
        new_masks, new_scores = [np.zeros((0, h, w), bool)], [np.zeros(0, np.float32)]
        for start in range(0, len(points), batch):
            logits, ious = self._decode(points[start : start + batch])
            logits = logits.reshape(-1, *logits.shape[2:])
            ious = ious.reshape(-1).astype(np.float32)
            survivors = np.nonzero(ious >= pred_iou_threshold)[0]  # the cheap filter before any resizing
            for first in range(0, len(survivors), UPSCALE_CHUNK):
                part = survivors[first : first + UPSCALE_CHUNK]
                full = self._to_photo(logits[part])
                masks = full > MASK_THRESHOLD
                good = (stability_scores(full) >= stability_threshold) & masks.reshape(len(part), -1).any(axis=1)
                new_masks.append(masks[good])
                new_scores.append(ious[part][good])
        return np.concatenate(new_masks), np.concatenate(new_scores).astype(np.float32)


@register_backend
class OnnxSam:
    """A SAM-family ONNX encoder/decoder pair (a folder with ``encoder.onnx`` and ``decoder.onnx``, or the
    encoder file with its ``decoder`` sibling), run by ONNX Runtime."""

    task = "segmentation"
    name = "onnx-sam"

    def __init__(
        self, encoder: OnnxNet, decoder: OnnxNet, mean: np.ndarray, std: np.ndarray, source: str, image_size: int
    ):
        self.encoder = encoder
        self.decoder = decoder
        self.mean = mean
        self.std = std
        self.source = source
        self.provider = encoder.provider
        """The execution provider that runs the encoder (the decoder's is ``decoder.provider``)."""
        self.js = "input_points" in decoder.inputs
        """True for the transformers.js split (low-resolution masks), False for segment-anything's."""
        decoder.require(
            inputs=JS_DECODER_INPUTS if self.js else DECODER_INPUTS,
            outputs=JS_DECODER_OUTPUTS if self.js else DECODER_OUTPUTS,
        )
        self.encoder_input = next(iter(encoder.inputs))
        shape = encoder.inputs[self.encoder_input]
        fixed_h, fixed_w = encoder.fixed(self.encoder_input, 2), encoder.fixed(self.encoder_input, 3)
        if len(shape) != 4 or encoder.fixed(self.encoder_input, 1) != 3 or fixed_h != fixed_w:
            raise ModelError(
                f"SAM encoder {encoder.path} takes {self.encoder_input} of shape {shape}: expected a (1, 3, S, S) "
                "normalised image, as segment-anything's and transformers' exports take"
            )
        self.image_size = fixed_h or image_size
        """The encoder's square input side: its fixed size, else the processor config's (1024 by default)."""
        prompt_axis = decoder.fixed("input_points", 1) if self.js else decoder.fixed("point_coords", 0)
        self.decoder_batch = DECODER_BATCH if prompt_axis is None else 1

    @classmethod
    def handles(cls, model: str) -> bool:
        value = os.path.expanduser((model or "").strip())
        return model_files(model) is not None or is_onnx_file(value)

    @classmethod
    def needs(cls, model: str) -> tuple[WeightsNeed, ...]:
        files = model_files(model)
        if files is None:
            raise ModelError(
                f"{model!r} is not a SAM ONNX export: give a folder with encoder.onnx and decoder.onnx, "
                "or the encoder file (its name containing 'encoder', the decoder beside it)"
            )
        return tuple(
            WeightsNeed(f"SAM {part}", path, "checkpoint")
            for part, path in zip(("encoder", "decoder"), files, strict=True)
        )

    @classmethod
    def open(cls, model: str, runtime: Runtime, cache: ModelCache) -> OnnxSam:
        encoder_need, decoder_need = cls.needs(model)
        encoder = locate(encoder_need, runtime.models_dir, runtime.offline)
        decoder = locate(decoder_need, runtime.models_dir, runtime.offline)
        return cache.get(
            ("onnx-sam", encoder, decoder, runtime.device), lambda: cls.load(encoder, decoder, runtime.device)
        )

    @classmethod
    def load(cls, encoder_path: str, decoder_path: str, device: str) -> OnnxSam:
        """Open both files and check the decoder's interface."""
        encoder = open_session(encoder_path, device, "SAM encoder")
        decoder = open_session(decoder_path, device, "SAM decoder")
        config = sidecar_json(encoder_path, "preprocessor_config.json")
        mean, std = normalisation(config, _SAM_MEAN, _SAM_STD)
        size = (config or {}).get("size")
        longest = size.get("longest_edge") if isinstance(size, dict) else None
        image_size = longest if isinstance(longest, int) and longest > 0 else DEFAULT_IMAGE_SIZE
        return cls(encoder, decoder, mean, std, os.path.dirname(os.path.abspath(encoder_path)), image_size)

    def embed(self, rgb: np.ndarray) -> _OnnxPrompts:
        return _OnnxPrompts(self, rgb)
