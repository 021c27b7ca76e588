"""Video input (in progress): frames in (``reader``: a video file through PyAV or a numbered image sequence),
shots (``shots``: cut detection, where every temporal state resets) and depth stable over time
(``temporal_depth``: per-frame scale and shift aligned to the shot, a flow-warped moving average with a
forward-backward check)."""
