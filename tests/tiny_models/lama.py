"""A tiny TorchScript module with big-lama's ``forward(image, mask) -> image`` interface."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn


class TinyLama(nn.Module):
    """Two convolutions over (masked image, mask) with a sigmoid, like big-lama's input/output contract."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(4, 8, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(8, 3, kernel_size=3, padding=1)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # big-lama also rejects inputs that are not multiples of 8; the wrapper must pad.
        if image.shape[2] % 8 != 0 or image.shape[3] % 8 != 0:
            raise RuntimeError("image height and width must be multiples of 8")
        masked = image * (1.0 - mask)
        hidden = torch.relu(self.conv1(torch.cat([masked, mask], dim=1)))
        return torch.sigmoid(self.conv2(hidden))


def make_tiny_lama(path: Path) -> Path:
    """Script and save a random ``TinyLama`` at ``path``; returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        # torch 2.13 deprecates torch.jit, but big-lama ships as TorchScript, so the stand-in must too.
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(TinyLama().eval())
    scripted.save(str(path))
    return path
