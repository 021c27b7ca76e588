"""A tiny Depth Anything (DINOv2 backbone + DPT neck/head) saved like a real checkpoint folder."""

from __future__ import annotations

from pathlib import Path

import torch


def make_tiny_depth_model(folder: Path, metric: bool = False, max_depth: int = 20) -> Path:
    """Save a random tiny Depth Anything model and its image processor into ``folder``; returns ``folder``."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config
    from transformers.models.dpt.image_processing_pil_dpt import DPTImageProcessorPil

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    backbone = Dinov2Config(
        image_size=56,
        patch_size=14,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        out_indices=[1, 2],
        reshape_hidden_states=False,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone,
        patch_size=14,
        reassemble_hidden_size=32,
        reassemble_factors=[2, 1],
        neck_hidden_sizes=[8, 16],
        fusion_hidden_size=16,
        head_hidden_size=8,
        # Wider than the default 0.02 so random outputs vary across the image instead of collapsing to ~0.
        initializer_range=0.1,
        depth_estimation_type="metric" if metric else "relative",
        # transformers 5 configs are strict dataclasses: max_depth must be an int, not 20.0.
        max_depth=int(max_depth) if metric else 1,
    )
    torch.manual_seed(0)
    model = DepthAnythingForDepthEstimation(config).eval()
    model.save_pretrained(folder)
    # The PIL backend needs no torchvision; AutoImageProcessor resolves either backend from this config.
    processor = DPTImageProcessorPil(
        size={"height": 56, "width": 56},
        ensure_multiple_of=14,
        keep_aspect_ratio=True,
        do_resize=True,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    )
    processor.save_pretrained(folder)
    return folder
