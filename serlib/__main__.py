"""``python -m serlib``: the same command line as ``serlib``."""

import sys

from serlib.tools.cli import main

sys.exit(main())
