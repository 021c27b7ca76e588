"""The report: targets against DESIGN.md, the markdown table, the side-by-side picture and strict JSON."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .metrics import ViewMasks

# DESIGN.md, "Evaluation on real data": (overlap PSNR, overlap SSIM, disoccluded PSNR, disoccluded SSIM).
DESIGN_REFERENCE: dict[str, dict[str, tuple[float, float, float, float]]] = {
    "motorcycle": {"rubber_sheet": (17.3, 0.74, 10.4, 0.25), "splat_telea": (22.5, 0.85, 16.3, 0.58)},
    "cones": {"rubber_sheet": (22.7, 0.80, 12.9, 0.38), "splat_telea": (24.2, 0.79, 15.6, 0.44)},
}
TARGET_DISOCCLUDED_GAIN_DB = 1.0
TARGET_OVERLAP_LOSS_DB = 1.0


def _label(image: np.ndarray, text: str) -> np.ndarray:
    import cv2

    out = np.ascontiguousarray(image.copy())
    scale = max(0.4, out.shape[1] / 900)
    thickness = max(1, int(round(scale * 2)))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    cv2.rectangle(out, (0, 0), (tw + 8, th + base + 8), (0, 0, 0), -1)
    cv2.putText(out, text, (4, th + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return out


def mask_overlay(image: np.ndarray, masks: ViewMasks) -> np.ndarray:
    """The true right view with disoccluded pixels red, out-of-view darkened and unknown-GT holes blue."""
    out = np.asarray(image, np.float64).copy()
    out[masks.out_of_view] *= 0.25
    out[masks.disoccluded] = 0.35 * out[masks.disoccluded] + 0.65 * np.array([255.0, 0.0, 0.0])
    out[masks.unknown] = 0.35 * out[masks.unknown] + 0.65 * np.array([0.0, 80.0, 255.0])
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def side_by_side(rows: list[list[tuple[str, np.ndarray]]]) -> np.ndarray:
    """Labelled panels side by side per row; rows scaled to the widest one and stacked."""
    import cv2

    strips = [np.concatenate([_label(img, text) for text, img in row], axis=1) for row in rows]
    width = max(s.shape[1] for s in strips)
    scaled = []
    for strip in strips:
        if strip.shape[1] != width:
            height = int(round(strip.shape[0] * width / strip.shape[1]))
            strip = cv2.resize(strip, (width, height), interpolation=cv2.INTER_LINEAR)
        scaled.append(strip)
    return np.concatenate(scaled, axis=0)


def targets(pairs: dict[str, dict[str, dict[str, float]]], methods: list[str]) -> dict[str, Any]:
    """Pass/fail per pair and method against DESIGN.md's figures and against the same-mask numpy splat + Telea.

    Target: disoccluded PSNR at least 1 dB above the best reference, overlap PSNR at most 1 dB below it
    (the best reference on disoccluded pixels is splat + Telea in both DESIGN.md rows).
    """
    out: dict[str, Any] = {}
    for name, scores in pairs.items():
        design = DESIGN_REFERENCE.get(name)
        same = scores.get("reference_splat_telea")
        entry: dict[str, Any] = {}
        for method in methods:
            got = scores.get(method)
            if got is None:
                continue
            verdicts: dict[str, Any] = {}
            if design is not None:
                best = max(design.values(), key=lambda ref: ref[2])
                verdicts["vs_design"] = _target_entry(got, best[0], best[2])
            if same is not None:
                verdicts["vs_same_masks"] = _target_entry(got, same["overlap_psnr"], same["disoccluded_psnr"])
            entry[method] = verdicts
        out[name] = entry
    return out


def _target_entry(got: dict[str, float], overlap_ref: float, disoccluded_ref: float) -> dict[str, Any]:
    need_dis = disoccluded_ref + TARGET_DISOCCLUDED_GAIN_DB
    need_overlap = overlap_ref - TARGET_OVERLAP_LOSS_DB
    # NaN (a failed method) compares False: no pass.
    ok_dis = got["disoccluded_psnr"] >= need_dis
    ok_overlap = got["overlap_psnr"] >= need_overlap
    return {
        "disoccluded_psnr_needed": round(need_dis, 3),
        "disoccluded_psnr": round(got["disoccluded_psnr"], 3),
        "overlap_psnr_needed": round(need_overlap, 3),
        "overlap_psnr": round(got["overlap_psnr"], 3),
        "pass": bool(ok_dis and ok_overlap),
    }


def markdown_table(pairs: dict[str, dict[str, dict[str, float]]]) -> str:
    """Both masks' numbers per pair and method, with DESIGN.md's figures where it has them."""
    lines = [
        "| pair | method | overlap PSNR / SSIM | disoccluded PSNR / SSIM | DESIGN.md overlap | DESIGN.md disoccluded |",
        "|---|---|---|---|---|---|",
    ]
    design_name = {"reference_splat_telea": "splat_telea", "reference_rubber_numpy": "rubber_sheet"}
    for pair, methods in pairs.items():
        for method, m in methods.items():
            ref = DESIGN_REFERENCE.get(pair, {}).get(design_name.get(method, ""))
            design = (f"{ref[0]:.1f} / {ref[1]:.2f}", f"{ref[2]:.1f} / {ref[3]:.2f}") if ref else ("", "")
            lines.append(
                f"| {pair} | {method} | {m['overlap_psnr']:.2f} / {m['overlap_ssim']:.3f} "
                f"| {m['disoccluded_psnr']:.2f} / {m['disoccluded_ssim']:.3f} | {design[0]} | {design[1]} |"
            )
    return "\n".join(lines)


def rounded(values: dict[str, float]) -> dict[str, float]:
    """Scores rounded to 4 decimals for the report."""
    return {k: round(float(v), 4) for k, v in values.items()}


def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as None and numpy scalars as Python numbers, for strict JSON."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
