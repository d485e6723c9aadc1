"""``python -m sweepjax``: the command line."""

import sys

from sweepjax.cli import main

if __name__ == "__main__":
    sys.exit(main())
