#!/usr/bin/env bash
# Set up the environment (if needed), lint, and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh dev
# Blender's shader cache and other caches live in the project so repeated runs reuse them.
export XDG_CACHE_HOME="${XDG_CACHE_HOME:-$PWD/.cache}"
.venv/bin/python -m ruff check .
.venv/bin/python -m ruff format --check .
.venv/bin/python -m pytest "$@"
