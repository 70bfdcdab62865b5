"""Train an agent: the same options as `designgym train` (see `python scripts/train.py --help`)."""

import sys

from designgym.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["train", *sys.argv[1:]]))
