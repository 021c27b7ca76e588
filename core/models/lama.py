"""big-lama inpainting through its TorchScript file, with the interface simple-lama-inpainting uses.

The module takes ``image`` (N, 3, H, W) float 0..1 and ``mask`` (N, 1, H, W) float {0, 1} with H and W
multiples of 8, and returns the inpainted image (N, 3, H, W) in 0..1.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from ..errors import InputError, ModelError

_MULTIPLE = 8


def load_lama(path: str, device: str):
    """Load the big-lama TorchScript module on ``device`` in eval mode (returns a ``torch.jit.ScriptModule``)."""
    import torch

    if not os.path.isfile(path):
        raise ModelError(f"big-lama weights {path} not found")
    try:
        # Trust note: a TorchScript archive carries no pickled Python objects, but it does carry its own
        # compiled graph, which runs as it is: load big-lama only from a source you trust. The networks that
        # have them load from safetensors (no code at all); big-lama is only published as TorchScript, which
        # torch 2.13 deprecates. An ONNX export is the planned replacement.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(path, map_location=device)
    except Exception as exc:
        raise ModelError(
            f"cannot load {path} as a TorchScript big-lama model ({exc}); "
            "use the big-lama.pt file that simple-lama-inpainting downloads"
        ) from exc
    return module.eval()


def _pad_amount(size: int) -> int:
    return (-size) % _MULTIPLE


def _pad(array: np.ndarray, pad_h: int, pad_w: int) -> np.ndarray:
    """Reflect-pad the spatial axes (1 and 2) at the bottom/right; reflection repeats for tiny images."""
    for axis, amount in ((1, pad_h), (2, pad_w)):
        if amount:
            widths = [(0, 0)] * array.ndim
            widths[axis] = (0, amount)
            # numpy cannot reflect an axis of length 1; repeating the edge is the same thing there.
            mode = "reflect" if array.shape[axis] > 1 else "edge"
            array = np.pad(array, widths, mode=mode)
    return array


def checked_batch(images: np.ndarray, masks: np.ndarray, who: str) -> tuple[np.ndarray, np.ndarray]:
    """``images`` (N, h, w, 3) as float32 0..1 and ``masks`` (N, h, w) as bool; InputError naming ``who``
    when the shapes do not match."""
    images = np.asarray(images)
    masks = np.asarray(masks)
    if images.ndim != 4 or images.shape[3] != 3:
        raise InputError(f"{who} needs images of shape (N, h, w, 3), got {images.shape}")
    if masks.shape != images.shape[:3]:
        raise InputError(f"{who} masks {masks.shape} do not match images {images.shape[:3]}")
    return np.clip(images.astype(np.float32), 0.0, 1.0), masks.astype(bool)


def run_lama(
    module,
    images: np.ndarray,
    masks: np.ndarray,
    device: str,
    batch_size: int | None = None,
) -> np.ndarray:
    """Inpaint the True pixels of ``masks`` (N, h, w) in ``images`` (N, h, w, 3 float32 0..1).

    All holes go through in one batch unless ``batch_size`` splits them. Known pixels are returned
    unchanged; only masked pixels take the network's output.
    """
    import torch

    images, holes = checked_batch(images, masks, "run_lama")
    count, height, width = holes.shape
    if count == 0 or not holes.any():
        return images.copy()

    pad_h, pad_w = _pad_amount(height), _pad_amount(width)
    padded_images = _pad(images, pad_h, pad_w)
    padded_masks = _pad(holes.astype(np.float32), pad_h, pad_w)
    step = count if not batch_size or batch_size < 1 else batch_size
    results = []
    with torch.inference_mode():
        for start in range(0, count, step):
            image_t = torch.from_numpy(np.ascontiguousarray(padded_images[start : start + step]))
            image_t = image_t.permute(0, 3, 1, 2).contiguous().to(device)
            mask_t = torch.from_numpy(np.ascontiguousarray(padded_masks[start : start + step]))[:, None]
            mask_t = mask_t.to(device)
            try:
                output = module(image_t, mask_t)
            except torch.cuda.OutOfMemoryError as exc:
                raise ModelError(
                    f"big-lama ran out of GPU memory on {image_t.shape[0]} images of "
                    f"{image_t.shape[3]}x{image_t.shape[2]}; use a smaller batch or the cpu device"
                ) from exc
            if output.ndim != 4 or output.shape[1] != 3:
                raise ModelError(f"big-lama returned shape {tuple(output.shape)}, expected (N, 3, H, W)")
            results.append(output[:, :, :height, :width].float().clamp(0.0, 1.0).permute(0, 2, 3, 1).cpu())
    filled = torch.cat(results).numpy().astype(np.float32)
    return np.where(holes[..., None], filled, images)
