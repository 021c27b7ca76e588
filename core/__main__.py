"""``python -m core``: the command-line interface and the worker."""

import sys

from .cli import main

sys.exit(main())
