"""Video input (in progress): shots (``shots``: cut detection, where every temporal state resets) and depth
stable over time (``temporal_depth``: per-frame scale and shift aligned to the shot, a flow-warped moving
average with a forward-backward check)."""
