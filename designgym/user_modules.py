"""Importing a module that the user names on the command line (``mylab.envs:mylab/Bracket-v0``,
``--search-space spaces:mine``).

``python -m designgym`` can import a module of the working folder, but the ``designgym`` command cannot:
a console script's path starts at its own folder, not the working one. A module that is not found is
therefore looked for in the working folder too, as ``python -m`` would find it.
"""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType


def import_user_module(name: str) -> ModuleType:
    """``importlib.import_module(name)``, looking in the working folder when the module is not found."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name.split(".")[0] or os.getcwd() in sys.path:
            raise
    sys.path.append(os.getcwd())
    return importlib.import_module(name)
