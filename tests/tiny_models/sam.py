"""A tiny Segment Anything (ViT encoder, prompt encoder, mask decoder) saved like a real checkpoint folder."""

from __future__ import annotations

from pathlib import Path

import torch

IMAGE_SIZE = 128
PATCH_SIZE = 16
HIDDEN = 32


def make_tiny_sam(folder: Path) -> Path:
    """Save a random tiny ``SamModel`` and its ``SamProcessor`` into ``folder``; returns ``folder``."""
    from transformers import (
        SamConfig,
        SamMaskDecoderConfig,
        SamModel,
        SamProcessor,
        SamPromptEncoderConfig,
        SamVisionConfig,
    )
    from transformers.models.sam.image_processing_pil_sam import SamImageProcessorPil

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vision = SamVisionConfig(
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=2,
        mlp_dim=64,
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        output_channels=HIDDEN,
        window_size=4,
        global_attn_indexes=[1],
        # The shared positional embedding has 2 * num_pos_feats channels: it must equal the prompt width.
        num_pos_feats=HIDDEN // 2,
        # The default 1e-10 makes image embeddings (nearly) constant; this lets the image matter.
        initializer_range=0.02,
    )
    # The mask embedding's first layer norm runs over mask_input_channels // 4 channels: ONNX Runtime 1.23
    # refuses a LayerNorm over one, so 8 (real SAM has 16).
    prompt = SamPromptEncoderConfig(
        hidden_size=HIDDEN, image_size=IMAGE_SIZE, patch_size=PATCH_SIZE, mask_input_channels=8
    )
    decoder = SamMaskDecoderConfig(
        hidden_size=HIDDEN, mlp_dim=64, num_hidden_layers=2, num_attention_heads=2, iou_head_hidden_dim=32
    )
    config = SamConfig(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder)
    torch.manual_seed(0)
    model = SamModel(config).eval()
    model.save_pretrained(folder)
    # The PIL backend needs no torchvision; the saved config loads into either backend. Low-res masks are
    # 4 x the embedding grid (IMAGE_SIZE / PATCH_SIZE), as in real SAM (64 -> 256).
    low_res = 4 * IMAGE_SIZE // PATCH_SIZE
    image_processor = SamImageProcessorPil(
        size={"longest_edge": IMAGE_SIZE},
        pad_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        mask_size={"longest_edge": low_res},
        mask_pad_size={"height": low_res, "width": low_res},
    )
    SamProcessor(image_processor=image_processor).save_pretrained(folder)
    return folder
