"""``python -m scripts.novel_view`` (from the repository root): run the benchmark's command line."""

from __future__ import annotations

import os
import sys

from .cli import main

if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # bpy may hang at interpreter exit.
    os._exit(code)
