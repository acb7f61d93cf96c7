"""``python -m harmony_dimse``: the command line."""

import sys

from .cli import main

sys.exit(main())
