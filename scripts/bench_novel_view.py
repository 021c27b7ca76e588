"""Novel-view benchmark on real stereo pairs; the code is the package scripts/novel_view (``--help`` for more).

    .venv/bin/python scripts/bench_novel_view.py [motorcycle] [FOLDER ...] [--tuned] \\
        --json out/novel_view.json --png out/novel_view.png
"""

import runpy
import sys
from pathlib import Path

if __name__ == "__main__":
    # Run as a file, this script's folder is on sys.path, not the repository root that ``scripts.novel_view``
    # and ``core`` import from. alter_sys=False keeps argv[0], so ``--help`` still names this script.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    runpy.run_module("scripts.novel_view", run_name="__main__", alter_sys=False)
