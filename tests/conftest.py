import numpy as np
import pytest

import designgym  # noqa: F401  (registers the built-in envs)
from designgym.envs.extrusion.problem import Extrusion


@pytest.fixture(scope="session")
def extrusion() -> Extrusion:
    return Extrusion()


def i_beam(size: int = 32, flange: int = 3, web: int = 2, width: int = 24) -> np.ndarray:
    """A symmetric I-section: full-height web, flanges at the top and bottom rows."""
    grid = np.zeros((size, size), dtype=np.float32)
    left = (size - width) // 2
    grid[:flange, left : left + width] = 1
    grid[size - flange :, left : left + width] = 1
    mid = size // 2
    grid[:, mid - web // 2 : mid - web // 2 + web] = 1
    return grid
