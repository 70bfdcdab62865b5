"""Tune hyperparameters: the same options as `designgym tune` (see `python scripts/tune.py --help`)."""

import sys

from designgym.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["tune", *sys.argv[1:]]))
