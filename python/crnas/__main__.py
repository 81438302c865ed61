"""``python -m crnas``: the command line."""

import sys

from crnas.cli import main

sys.exit(main())
