"""Frame ranges of a shot: ``--frames 13-24`` renders one chunk, and a farm splits a shot into chunks."""

from __future__ import annotations

import re

_RANGE = re.compile(r"^\s*(\d{1,9})\s*-\s*(\d{1,9})\s*$")


def parse_frame_range(text: str, shot_frames: int) -> tuple[int, int]:
    """``"A-B"`` as ``(A, B)``, frames of a shot numbered 1..``shot_frames``; ValueError naming what is wrong."""
    found = _RANGE.match(text)
    if not found:
        raise ValueError(f"a frame range is FIRST-LAST, e.g. 13-24, not {text!r}")
    first, last = int(found.group(1)), int(found.group(2))
    if first < 1 or last < first:
        raise ValueError(f"frame range {first}-{last} must have 1 <= FIRST <= LAST")
    if last > shot_frames:
        raise ValueError(f"frame range {first}-{last} ends after the shot's last frame, {shot_frames}")
    return first, last


def frame_chunks(first: int, last: int, size: int) -> list[tuple[int, int]]:
    """``first..last`` cut into consecutive chunks of ``size`` frames (the last one may be shorter)."""
    if size < 1 or last < first:
        raise ValueError(f"cannot cut frames {first}-{last} into chunks of {size}")
    return [(start, min(start + size - 1, last)) for start in range(first, last + 1, size)]
