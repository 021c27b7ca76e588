"""Networks for ``bench_models.py`` that no installed package provides: big-lama's generator.

``BigLama`` is the FFC-ResNet generator of LaMa (Suvorov et al., "Resolution-robust Large Mask Inpainting
with Fourier Convolutions", 2022) as big-lama configures it (``configs/training/big-lama.yaml``): a 7 x 7
input convolution to 64 channels, 3 stride-2 downsampling convolutions (64 -> 128 -> 256 -> 512, the last
one splitting its output 1 : 3 into local and global channels), 18 FFC residual blocks at 512 channels
with ``ratio_gin = ratio_gout = 0.75`` (the global 384 go through a spectral transform: 1 x 1 convolution,
``rfftn`` over height and width, 1 x 1 convolution with batch norm and ReLU on the real and imaginary parts,
``irfftn``, 1 x 1 convolution), 3 transposed convolutions back to 64 channels and a 7 x 7 convolution to
RGB with a sigmoid; reflection padding throughout, batch norm in eval mode, no local Fourier unit. Wrapped
in the interface of the ``big-lama.pt`` TorchScript file: ``forward(image, mask)`` with the hole zeroed
and the mask as a fourth channel, the known pixels put back on the output. About 51 M parameters.

The spectral transform runs either through ``torch.fft`` (as LaMa does) or through real matrix products
with the DFT matrices of the feature map's size (``dft="matmul"``): the same numbers with the same weights,
but only MatMul and elementwise ops, so the legacy TorchScript ONNX exporter, which has no FFT symbolics,
can export it (at one fixed size: the matrices are constants of the trace).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

LOCAL, GLOBAL = 0, 1


def dft_matrices(length: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, sin) of 2 pi n k / length, (length, length): the real and minus the imaginary DFT kernel."""
    # numpy, not torch: in a trace these become constants instead of Cos/Sin nodes on float64.
    length = int(length)
    index = np.arange(length, dtype=np.int64)
    angle = 2.0 * np.pi * (np.outer(index, index) % length) / length
    return (torch.from_numpy(np.cos(angle)).to(device, dtype), torch.from_numpy(np.sin(angle)).to(device, dtype))


def rfft2_matmul(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.fft.rfftn(x, dim=(-2, -1), norm="ortho")`` as (real, imaginary), with matrix products only."""
    height, width = int(x.shape[-2]), int(x.shape[-1])
    half = width // 2 + 1
    cos_w, sin_w = dft_matrices(width, x.device, x.dtype)
    cos_h, sin_h = dft_matrices(height, x.device, x.dtype)
    scale = 1.0 / math.sqrt(height * width)
    # Along the width: a real input, so only the first width // 2 + 1 frequencies.
    real = torch.matmul(x, cos_w[:, :half])
    imag = -torch.matmul(x, sin_w[:, :half])
    # Along the height, complex: (C - iS)(a + ib) = (Ca + Sb) + i(Cb - Sa).
    out_real = torch.matmul(cos_h, real) + torch.matmul(sin_h, imag)
    out_imag = torch.matmul(cos_h, imag) - torch.matmul(sin_h, real)
    return out_real * scale, out_imag * scale


def irfft2_matmul(real: torch.Tensor, imag: torch.Tensor, width: int) -> torch.Tensor:
    """``torch.fft.irfftn(complex(real, imag), s=(h, width), dim=(-2, -1), norm="ortho")`` with matrix
    products only (the imaginary parts of the zero and Nyquist frequencies are ignored, as c2r does)."""
    height, half = int(real.shape[-2]), int(real.shape[-1])
    cos_h, sin_h = dft_matrices(height, real.device, real.dtype)
    cos_w, sin_w = dft_matrices(width, real.device, real.dtype)
    scale = 1.0 / math.sqrt(height * width)
    # Inverse along the height, complex: (C + iS)(a + ib) = (Ca - Sb) + i(Cb + Sa).
    mid_real = torch.matmul(cos_h, real) - torch.matmul(sin_h, imag)
    mid_imag = torch.matmul(cos_h, imag) + torch.matmul(sin_h, real)
    # Hermitian sum along the width: every frequency but 0 (and width / 2 when even) counts twice.
    weight = np.full((half, 1), 2.0)
    weight[0] = 1.0
    if width % 2 == 0:
        weight[-1] = 1.0
    weight = torch.from_numpy(weight).to(real.device, real.dtype)
    cos_t = cos_w[:half, :] * weight
    sin_t = sin_w[:half, :] * weight
    return (torch.matmul(mid_real, cos_t) - torch.matmul(mid_imag, sin_t)) * scale


class FourierUnit(nn.Module):
    """LaMa's ``FourierUnit``: a 1 x 1 convolution (+ BN + ReLU) on the stacked real and imaginary parts of
    the feature map's 2-D real FFT (norm ``ortho``)."""

    def __init__(self, channels: int, dft: str = "fft"):
        super().__init__()
        self.conv_layer = nn.Conv2d(channels * 2, channels * 2, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm2d(channels * 2)
        self.relu = nn.ReLU(inplace=True)
        self.dft = dft

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        if self.dft == "fft":
            ffted = torch.fft.rfftn(x, dim=(-2, -1), norm="ortho")
            real, imag = ffted.real, ffted.imag
        else:
            real, imag = rfft2_matmul(x)
        # (b, c, 2, h, w/2+1) -> (b, 2c, h, w/2+1), real and imaginary of a channel side by side, as LaMa.
        stacked = torch.stack((real, imag), dim=2).reshape(batch, channels * 2, height, -1)
        stacked = self.relu(self.bn(self.conv_layer(stacked)))
        stacked = stacked.reshape(batch, channels, 2, height, -1)
        real, imag = stacked[:, :, 0], stacked[:, :, 1]
        if self.dft == "fft":
            return torch.fft.irfftn(torch.complex(real, imag), s=x.shape[-2:], dim=(-2, -1), norm="ortho")
        return irfft2_matmul(real, imag, int(width))


class SpectralTransform(nn.Module):
    """LaMa's ``SpectralTransform`` without the local Fourier unit (big-lama: ``enable_lfu: false``)."""

    def __init__(self, in_channels: int, out_channels: int, dft: str = "fft"):
        super().__init__()
        half = out_channels // 2
        self.conv1 = nn.Sequential(
            nn.Conv2d(in_channels, half, kernel_size=1, bias=False), nn.BatchNorm2d(half), nn.ReLU(inplace=True)
        )
        self.fu = FourierUnit(half, dft)
        self.conv2 = nn.Conv2d(half, out_channels, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        return self.conv2(x + self.fu(x))


def _conv(cin: int, cout: int, kernel: int, stride: int, padding: int) -> nn.Module | None:
    if cin == 0 or cout == 0:
        return None
    return nn.Conv2d(cin, cout, kernel, stride, padding, bias=False, padding_mode="reflect")


class FFCBnAct(nn.Module):
    """LaMa's ``FFC_BN_ACT``: the four paths local/global -> local/global, then BN + ReLU on each part."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int,
        ratio_gin: float,
        ratio_gout: float,
        stride: int = 1,
        padding: int = 0,
        dft: str = "fft",
    ):
        super().__init__()
        in_g = int(cin * ratio_gin)
        out_g = int(cout * ratio_gout)
        in_l, out_l = cin - in_g, cout - out_g
        self.out_l, self.out_g = out_l, out_g
        self.convl2l = _conv(in_l, out_l, kernel, stride, padding)
        self.convl2g = _conv(in_l, out_g, kernel, stride, padding)
        self.convg2l = _conv(in_g, out_l, kernel, stride, padding)
        self.convg2g = SpectralTransform(in_g, out_g, dft) if in_g and out_g else None
        self.bn_l = nn.BatchNorm2d(out_l) if out_l else None
        self.bn_g = nn.BatchNorm2d(out_g) if out_g else None
        self.act = nn.ReLU(inplace=True)

    def forward(self, x_l: torch.Tensor, x_g: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        out_l = out_g = None
        if self.out_l:
            out_l = self.convl2l(x_l)
            if self.convg2l is not None and x_g is not None:
                out_l = out_l + self.convg2l(x_g)
            out_l = self.act(self.bn_l(out_l))
        if self.out_g:
            out_g = self.convl2g(x_l)
            if self.convg2g is not None and x_g is not None:
                out_g = out_g + self.convg2g(x_g)
            out_g = self.act(self.bn_g(out_g))
        return out_l, out_g


class FFCResnetBlock(nn.Module):
    """Two 3 x 3 FFC layers with a residual connection on both the local and the global part."""

    def __init__(self, dim: int, ratio: float, dft: str = "fft"):
        super().__init__()
        self.conv1 = FFCBnAct(dim, dim, 3, ratio, ratio, padding=1, dft=dft)
        self.conv2 = FFCBnAct(dim, dim, 3, ratio, ratio, padding=1, dft=dft)

    def forward(self, x_l: torch.Tensor, x_g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y_l, y_g = self.conv1(x_l, x_g)
        y_l, y_g = self.conv2(y_l, y_g)
        return x_l + y_l, x_g + y_g


class FFCResNetGenerator(nn.Module):
    """big-lama's generator: (N, 4, H, W) masked image + mask -> (N, 3, H, W) in 0..1 (H, W multiples of 8)."""

    def __init__(self, ngf: int = 64, downsampling: int = 3, blocks: int = 18, ratio: float = 0.75, dft: str = "fft"):
        super().__init__()
        self.pad_in = nn.ReflectionPad2d(3)
        self.conv_in = FFCBnAct(4, ngf, 7, 0.0, 0.0, dft=dft)
        downs = []
        for i in range(downsampling):
            cin, cout = ngf * 2**i, ngf * 2 ** (i + 1)
            last = i == downsampling - 1
            downs.append(FFCBnAct(cin, cout, 3, 0.0, ratio if last else 0.0, stride=2, padding=1, dft=dft))
        self.downs = nn.ModuleList(downs)
        dim = ngf * 2**downsampling
        self.blocks = nn.ModuleList(FFCResnetBlock(dim, ratio, dft) for _ in range(blocks))
        ups: list[nn.Module] = []
        for i in range(downsampling):
            cin = ngf * 2 ** (downsampling - i)
            ups += [
                nn.ConvTranspose2d(cin, cin // 2, 3, stride=2, padding=1, output_padding=1),
                nn.BatchNorm2d(cin // 2),
                nn.ReLU(inplace=True),
            ]
        self.ups = nn.Sequential(*ups)
        self.out = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_l, x_g = self.conv_in(self.pad_in(x), None)
        for down in self.downs:
            x_l, x_g = down(x_l, x_g)
        for block in self.blocks:
            x_l, x_g = block(x_l, x_g)
        return self.out(self.ups(torch.cat([x_l, x_g], dim=1)))


class BigLama(nn.Module):
    """The ``big-lama.pt`` interface: ``forward(image (N, 3, H, W) 0..1, mask (N, 1, H, W) {0, 1})``."""

    def __init__(self, dft: str = "fft"):
        super().__init__()
        self.generator = FFCResNetGenerator(dft=dft)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        masked = image * (1.0 - mask)
        predicted = self.generator(torch.cat([masked, mask], dim=1))
        return mask * predicted + (1.0 - mask) * image


def make_big_lama(seed: int = 0, dft: str = "fft") -> BigLama:
    """A randomly initialised ``BigLama`` in eval mode. The residual branches' last batch norms start at a
    small scale so 18 blocks of random weights keep the activations in range (trained big-lama's are)."""
    torch.manual_seed(seed)
    model = BigLama(dft)
    for block in model.generator.blocks:
        for norm in (block.conv2.bn_l, block.conv2.bn_g):
            nn.init.constant_(norm.weight, 0.1)
    return model.eval()


def parameter_count(module: nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())
