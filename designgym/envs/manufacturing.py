"""Manufacturing rules on 2D material grids, as pure functions of a boolean solid mask.

Each rule returns a number >= 0 that is 0 when the rule is met and grows the worse it is broken,
so it serves both as a feasibility test and as a penalty. Solid cells are joined through shared
edges (4-connectivity): two cells touching only at a corner are not welded. Void uses
8-connectivity, the complementary choice, so that a closed solid ring always encloses its hole.
Printing without supports (the overhang rule and its repairs) is :mod:`designgym.envs.printing`.
"""

from __future__ import annotations

from collections.abc import Callable

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


def floating_fraction(mask: np.ndarray, anchored: np.ndarray) -> float:
    """Fraction of the solid not joined through solid to any ``anchored`` cell; 1.0 for an empty design.

    ``anchored`` marks the cells that touch a support. Material that hangs on nothing carries no load
    and, once printed or cast, simply falls off.
    """
    total = int(mask.sum())
    if total == 0:
        return 1.0
    return float(total - np.count_nonzero(_joined(mask, anchored))) / total


def keep_budget_joined(density: np.ndarray, anchored: np.ndarray, cells: int) -> np.ndarray:
    """The ``cells`` densest cells of ``density`` that are joined through solid to an ``anchored`` cell.

    A density field (a generator's output, a grey optimum) becomes a solid mask of exactly
    ``cells`` cells with no floating material: the densest ``cells`` cells are taken, pieces not
    joined to an anchored cell are dropped, and the shortfall is made up from the densest cells on
    the boundary of what is kept, a layer at a time, so every added cell is joined too. Ties in
    density go to the lower flat index. Where the anchored cells cannot reach ``cells`` cells
    (never on a connected grid) the mask is as large as they reach.
    """
    density = np.asarray(density, dtype=np.float64)
    anchored = np.asarray(anchored, dtype=bool)
    if density.shape != anchored.shape:
        raise ValueError(f"density has shape {density.shape} but anchored has {anchored.shape}")
    total = density.size
    cells = int(min(max(cells, 0), total))
    flat = density.ravel()
    order = np.argsort(-flat, kind="stable")
    rank = np.empty(total, dtype=np.int64)
    rank[order] = np.arange(total)  # 0 = densest; the tie-break of every choice below
    kept = np.zeros(total, dtype=bool)
    kept[order[:cells]] = True
    kept = _joined(kept.reshape(density.shape), anchored)
    return _grow(kept, anchored, rank, cells)


def _joined(mask: np.ndarray, anchored: np.ndarray) -> np.ndarray:
    """The solid of ``mask`` joined through solid to an ``anchored`` cell."""
    labels, _ = ndimage.label(mask, structure=SOLID_CONNECTIVITY)
    held = np.unique(labels[anchored & mask])
    return np.isin(labels, held[held > 0])


def _grow(kept: np.ndarray, anchored: np.ndarray, rank: np.ndarray, cells: int,
          allowed: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """``kept`` grown to ``cells`` cells from the cells touching it (the ``anchored`` ones when it is
    empty), a layer at a time, best ``rank`` first (0 = densest), only where ``allowed(kept)`` says so."""
    missing = cells - int(kept.sum())
    while missing > 0:
        reach = ndimage.binary_dilation(kept, structure=SOLID_CONNECTIVITY) if kept.any() else anchored
        frontier = reach & ~kept if allowed is None else reach & ~kept & allowed(kept)
        candidates = np.flatnonzero(frontier.ravel())
        if candidates.size == 0:
            break
        chosen = candidates[np.argsort(rank[candidates], kind="stable")[:missing]]
        kept.ravel()[chosen] = True
        missing -= chosen.size
    return kept


def keep_budget_walled(density: np.ndarray, cells: int, min_width: int) -> np.ndarray:
    """``cells`` (or up to ``min_width**2 - 1`` more) of the densest cells of ``density``, in one
    piece, with no feature narrower than ``min_width`` cells.

    The densest ``m`` cells are opened with a ``min_width`` square (what :func:`thin_feature_fraction`
    measures) and all but the largest piece dropped, for the largest ``m`` found by bisection that
    leaves fewer than ``cells`` cells; the piece then grows by whole ``min_width`` squares that
    touch it, the densest first, until it has ``cells``. The result is a union of such squares, so
    it is its own opening (nothing thin) and one piece. Ties in density go to the lower index.
    """
    density = np.asarray(density, dtype=np.float64)
    total = density.size
    width = max(int(min_width), 1)
    cells = int(min(max(cells, 0), total))
    order = np.argsort(-density.ravel(), kind="stable")
    square = np.ones((width, width), dtype=bool)

    def cleaned(m: int) -> np.ndarray:
        mask = np.zeros(total, dtype=bool)
        mask[order[:m]] = True
        mask = ndimage.binary_opening(mask.reshape(density.shape), structure=square) if width > 1 \
            else mask.reshape(density.shape)
        labels, n = ndimage.label(mask, structure=SOLID_CONNECTIVITY)
        if n > 1:
            mask = labels == (1 + int(np.argmax(np.bincount(labels.ravel())[1:])))
        return mask

    if cells == 0:
        return np.zeros(density.shape, dtype=bool)
    low, high = cells, total  # the smallest m whose cleaned set reaches ``cells``
    while low < high:
        middle = (low + high) // 2
        if int(cleaned(middle).sum()) >= cells:
            high = middle
        else:
            low = middle + 1
    exact = cleaned(low)
    if int(exact.sum()) == cells:
        return exact
    return _grow_by_squares(cleaned(low - 1), density, cells, width)


def _grow_by_squares(mask: np.ndarray, density: np.ndarray, cells: int, width: int) -> np.ndarray:
    """Add ``width`` squares that overlap or touch ``mask`` (any square if it is empty), the densest
    new cells first, preferring squares that do not overshoot ``cells``, until it has ``cells``."""
    from numpy.lib.stride_tricks import sliding_window_view

    mask = mask.copy()
    rows, cols = density.shape
    if rows < width or cols < width:
        return mask
    windows = (rows - width + 1, cols - width + 1)
    while int(mask.sum()) < cells:
        inside = sliding_window_view(mask, (width, width)).sum(axis=(2, 3))
        new = width * width - inside
        fresh = sliding_window_view(np.where(mask, 0.0, density), (width, width)).sum(axis=(2, 3))
        if mask.any():
            reach = ndimage.binary_dilation(mask, structure=SOLID_CONNECTIVITY)
            touching = sliding_window_view(reach, (width, width)).any(axis=(2, 3))
        else:
            touching = np.ones(windows, dtype=bool)
        candidates = touching & (new > 0)
        if not candidates.any():
            break
        missing = cells - int(mask.sum())
        fits = candidates & (new <= missing)
        pool = fits if fits.any() else candidates & (new == new[candidates].min())
        value = np.where(pool, fresh / np.maximum(new, 1), -np.inf)
        i, j = np.unravel_index(int(np.argmax(value)), windows)
        mask[i : i + width, j : j + width] = True
    return mask


def load_path_broken(mask: np.ndarray, anchored: np.ndarray, loaded: np.ndarray) -> float:
    """1.0 when no solid ``loaded`` cell is joined through solid to an ``anchored`` cell, else 0.0."""
    labels, _ = ndimage.label(mask, structure=SOLID_CONNECTIVITY)
    at_load = set(np.unique(labels[loaded & mask]).tolist()) - {0}
    at_support = set(np.unique(labels[anchored & mask]).tolist()) - {0}
    return 0.0 if at_load & at_support else 1.0


def disk(radius: float) -> np.ndarray:
    """Boolean disk of the given radius in cells, as a structuring element."""
    reach = int(np.floor(radius))
    yy, xx = np.mgrid[-reach : reach + 1, -reach : reach + 1]
    return (xx * xx + yy * yy) <= radius * radius + 1e-9


def member_size_violation(mask: np.ndarray, r_min: float, allowance: int = 0) -> float:
    """Area changed by an opening and a closing with a disk of radius ``r_min``, over the solid area.

    The opening removes members thinner than about ``2 r_min``; the closing fills gaps and holes
    narrower than that. Both are zero for a design that respects the minimum member and gap size.
    Outside the grid counts as void; 1.0 for an empty design.

    A disk cannot reach into a sharp corner, so with ``allowance=0`` every convex pixel corner
    counts, and a staircase edge (any slanted edge on a grid) counts at each step. ``allowance=k``
    forgives changes within ``k`` cells (8-neighbourhood) of the opened or closed shape's edge:
    pixel steps and corners pass, struts and gaps narrower than the disk still count beyond ``k``
    cells from thicker material. :func:`member_defects` says which cells.
    """
    mask = np.asarray(mask, dtype=bool)
    total = int(mask.sum())
    if total == 0:
        return 1.0
    thin, narrow = member_defects(mask, r_min, allowance)
    return float(np.count_nonzero(thin) + np.count_nonzero(narrow)) / total


def member_defects(mask: np.ndarray, r_min: float, allowance: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The cells :func:`member_size_violation` counts: ``(thin, narrow)``, the solid cells an opening with
    the disk removes and the void cells a closing fills, each beyond the ``allowance``."""
    mask = np.asarray(mask, dtype=bool)
    if allowance < 0:
        raise ValueError(f"allowance must be >= 0 cells, got {allowance}")
    if r_min < 1 or not mask.any():
        return np.zeros_like(mask), np.zeros_like(mask)
    element = disk(r_min)
    pad = element.shape[0] + allowance
    padded = np.pad(mask, pad)
    opened = ndimage.binary_opening(padded, structure=element)
    closed = ndimage.binary_closing(padded, structure=element)
    if allowance:
        square = np.ones((3, 3), dtype=bool)
        opened = ndimage.binary_dilation(opened, structure=square, iterations=allowance) & padded
        closed = ndimage.binary_erosion(closed, structure=square, iterations=allowance, border_value=1) | padded
    inside = (slice(pad, pad + mask.shape[0]), slice(pad, pad + mask.shape[1]))
    # A closing never fills outside the grid's own cells beyond what the padding holds: only the grid counts.
    return (padded & ~opened)[inside], (closed & ~padded)[inside]


def asymmetry(mask: np.ndarray, axis: str = "vertical") -> float:
    """Fraction of the solid whose mirror image across the grid's centre line is void.

    ``"vertical"`` mirrors left and right (a vertical symmetry line), ``"horizontal"`` top and bottom.
    """
    if axis not in ("vertical", "horizontal"):
        raise ValueError(f"axis must be 'vertical' or 'horizontal', got {axis!r}")
    total = int(mask.sum())
    if total == 0:
        return 0.0
    mirrored = mask[:, ::-1] if axis == "vertical" else mask[::-1, :]
    return float(np.count_nonzero(mask & ~mirrored)) / total
