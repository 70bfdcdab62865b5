"""Manufacturing rules on 2D material grids, as pure functions of a boolean solid mask.

Each rule returns a number >= 0 that is 0 when the rule is met and grows the worse it is broken,
so it serves both as a feasibility test and as a penalty. Solid cells are joined through shared
edges (4-connectivity): two cells touching only at a corner are not welded. Void uses
8-connectivity, the complementary choice, so that a closed solid ring always encloses its hole.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

SOLID_CONNECTIVITY = ndimage.generate_binary_structure(2, 1)
VOID_CONNECTIVITY = ndimage.generate_binary_structure(2, 2)


def solid_mask(design: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Cells with density at or above ``threshold`` are solid."""
    return np.asarray(design) >= threshold


def count_pieces(mask: np.ndarray) -> int:
    """Number of separate solid pieces."""
    return int(ndimage.label(mask, structure=SOLID_CONNECTIVITY)[1])


def disconnected_fraction(mask: np.ndarray) -> float:
    """Fraction of the solid that is not part of the largest piece; 1.0 for an empty design.

    A part must come out of the die or the machine in one piece: any material apart from the
    main body is scrap, or a second part nobody asked for.
    """
    total = int(mask.sum())
    if total == 0:
        return 1.0
    labels, n = ndimage.label(mask, structure=SOLID_CONNECTIVITY)
    if n <= 1:
        return 0.0
    largest = int(np.bincount(labels.ravel())[1:].max())
    return (total - largest) / total


def count_enclosed_voids(mask: np.ndarray) -> int:
    """Number of void regions fully enclosed by solid (not reaching the grid border).

    In an extruded profile each enclosed hollow needs its own mandrel in a porthole die.
    """
    labels, n = ndimage.label(~mask, structure=VOID_CONNECTIVITY)
    if n == 0:
        return 0
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    return n - int(np.count_nonzero(border))


def thin_feature_fraction(mask: np.ndarray, min_width: int) -> float:
    """Fraction of the solid that lies in features narrower than ``min_width`` cells.

    Measured as the area removed by a morphological opening with a ``min_width`` square: a wall,
    spur or strut thinner than that in either direction disappears under the opening. Outside the
    grid counts as void.
    """
    total = int(mask.sum())
    if total == 0 or min_width <= 1:
        return 0.0
    opened = ndimage.binary_opening(mask, structure=np.ones((min_width, min_width), dtype=bool))
    return float(np.count_nonzero(mask & ~opened)) / total
