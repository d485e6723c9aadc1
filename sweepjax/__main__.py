"""``python -m sweepjax``: the command line."""

from sweepjax.cli import main
from sweepjax.cli.fast_exit import exit

if __name__ == "__main__":
    exit(main())
