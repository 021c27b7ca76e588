"""Inpainting: holes only behind nearer layers, context never from nearer layers, harmonic depth."""

from __future__ import annotations

import numpy as np
import pytest

from core.inpaint import inpaint_layers, layer_holes
from core.layers import Layer
from core.options import InpaintOptions


def _layer(index, mask):
    return Layer(index=index, mask=mask, labels=[index], median_depth=1.0, sort_key=float(index))


def _three_layers(h=80, w=120):
    yy, xx = np.mgrid[0:h, 0:w]
    middle = (yy >= 20) & (yy < 60) & (xx >= 20) & (xx < 70)
    near = (yy >= 30) & (yy < 50) & (xx >= 55) & (xx < 95)
    middle &= ~near
    far = ~(middle | near)
    rgb = np.zeros((h, w, 3), np.float32)
    rgb[far] = (0.1, 0.2, 0.9)  # blue wall
    rgb[middle] = (0.1, 0.8, 0.2)  # green box
    rgb[near] = (1.0, 0.0, 0.0)  # red post, nearest
    # The wall is a slanted plane (linear in disparity); the others are flat.
    disparity = np.where(far, 0.1 + 0.001 * xx, np.where(middle, 0.4, 0.8)).astype(np.float32)
    layers = [_layer(0, far), _layer(1, middle), _layer(2, near)]
    return rgb, 1.0 / disparity, layers, (far, middle, near), xx


def test_holes_are_the_hidden_band_and_the_far_layer_is_full():
    _, _, layers, (far, middle, near), xx = _three_layers()
    (hidden0, hole0), (hidden1, hole1), (hidden2, hole2) = layer_holes(layers, band_px=6)
    assert np.array_equal(hole0, middle | near)  # farthest: everything nearer
    assert np.array_equal(hidden1, near) and not hole2.any() and not hidden2.any()
    # The middle layer fills only the part of the near post within 6 px of itself.
    assert hole1.any() and (hole1 <= near).all()
    assert xx[hole1].max() <= 69 + 6 and xx[hole1].min() >= 55


@pytest.mark.parametrize("method", ["telea", "ns"])
def test_fill_never_takes_colour_from_nearer_layers(method):
    rgb, depth, layers, (far, middle, near), _ = _three_layers()
    fills = inpaint_layers(rgb, depth, layers, InpaintOptions(method=method, band_fraction=0.1))
    wall, box, post = fills
    assert wall.extent.all()
    # No red (the nearest layer's colour) anywhere in what was filled behind it.
    assert wall.rgb[wall.hole][:, 0].max() < 0.35
    assert box.rgb[box.hole][:, 0].max() < 0.35
    # The box's fill continues the box (green), the wall's continues blue-green context.
    assert box.rgb[box.hole][:, 1].mean() > 0.5
    assert np.array_equal(post.rgb, rgb) and not post.hole.any()
    # Observed pixels keep the photo exactly.
    assert np.array_equal(wall.rgb[far], rgb[far])


def test_depth_fill_extends_the_layer_plane_and_ignores_nearer_depth():
    rgb, depth, layers, (far, middle, near), xx = _three_layers()
    wall = inpaint_layers(rgb, depth, layers, InpaintOptions(method="telea"))[0]
    expected = 1.0 / (0.1 + 0.001 * xx)
    # Harmonic extension of a slanted plane (linear in disparity) continues it under the boxes.
    assert np.abs(wall.depth - expected)[wall.hole].max() < 0.05 * expected.min()
    assert np.isfinite(wall.depth).all() and (wall.depth > 0).all()


def test_band_zero_fills_only_the_farthest_layer():
    rgb, depth, layers, _, _ = _three_layers()
    fills = inpaint_layers(rgb, depth, layers, InpaintOptions(band_fraction=0.0))
    assert fills[0].hole.any() and not fills[1].hole.any()
    assert fills[1].inpainted_fraction == 0.0


def test_a_hidden_fill_stays_behind_what_hides_it():
    """Layers are grouped by their masks' medians, so a far layer can reach nearer than a nearer one locally:
    here the wall leans in on the left, in front of the box's left part. Its fill behind the box must still be
    behind the box, or in the photo's own view the wall's opaque fill would cover the box."""
    h, w = 60, 90
    yy, xx = np.mgrid[0:h, 0:w]
    box = (yy >= 15) & (yy < 45) & (xx >= 10) & (xx < 60)
    wall = ~box
    # The wall's disparity runs from 0.9 (left, near) down to 0.1 (right); the box sits at 0.5.
    disparity = np.where(box, 0.5, 0.9 - 0.8 * xx / w).astype(np.float32)
    rgb = np.zeros((h, w, 3), np.float32)
    fills = inpaint_layers(rgb, 1.0 / disparity, [_layer(0, wall), _layer(1, box)], InpaintOptions(method="telea"))
    backdrop = fills[0]
    hidden = backdrop.hole & box
    assert hidden.any()
    # Behind the box by at least the margin, everywhere it is hidden (the harmonic fill alone reaches 0.8).
    assert (1.0 / backdrop.depth[hidden] <= 0.5 * (1.0 - 0.01) + 1e-6).all()
    # Where nothing hides it, the wall keeps its own depth.
    assert np.allclose(1.0 / backdrop.depth[wall], disparity[wall], rtol=1e-5)
