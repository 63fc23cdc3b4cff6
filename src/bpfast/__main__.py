"""``python -m bpfast``: the bpfast command line (see bpfast.cli)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
