"""Procedural cross-sections of extruded profiles, as training data for a generative model.

A section is a boolean grid of shape ``(rows, cols)``: ``True`` is solid material, row 0 is the top.
Every section this module returns is guaranteed to

* be one 4-connected piece of solid,
* have no feature thinner than ``min_wall`` cells (its opening by a ``min_wall`` square is itself),
* enclose exactly as many hollows (8-connected void not touching the border) as its family intends:
  0 for open sections and bars, 1 for tubes, 2 for the two-cell box,
* cover between 8 % and 70 % of the grid.

Most families are unions of axis-aligned rectangles at least ``min_wall`` cells thick, which meets
the wall rule by construction. Round families are digitised from distance thresholds and then
opened, which removes the single-cell spurs a digital circle grows at its poles. Each candidate is
checked against all the rules and redrawn if it fails, so the guarantees hold whatever the grid.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from tqdm import tqdm

from designgym.envs.manufacturing import (
    SOLID_CONNECTIVITY,
    count_enclosed_voids,
    count_pieces,
    thin_feature_fraction,
)

SECTION_FAMILIES: tuple[str, ...] = (
    "rect_bar",
    "round_bar",
    "rect_tube",
    "round_tube",
    "two_cell_box",
    "i_beam",
    "channel",
    "t_section",
    "angle",
    "z_section",
    "hat_section",
)

_HOLLOWS: dict[str, int] = {
    "rect_bar": 0,
    "round_bar": 0,
    "rect_tube": 1,
    "round_tube": 1,
    "two_cell_box": 2,
    "i_beam": 0,
    "channel": 0,
    "t_section": 0,
    "angle": 0,
    "z_section": 0,
    "hat_section": 0,
}


_MIN_AREA_FRACTION = 0.08
_MAX_AREA_FRACTION = 0.7

# The thickest wall, flange or web on a 32-cell grid; it scales with the grid so that larger grids
# are finer renderings of the same family rather than thinner-walled profiles.
_MAX_THICKNESS_AT_32 = 5
# Smallest width of a slot, cell or flange outstand, so that a hollow or a notch reads as such and a
# die could still cut it.
_MIN_GAP = 2
# Profiles span at least this fraction of the grid in each direction; compact bars may be smaller
# because their area, not their extent, is what the area rule limits.
_PROFILE_MIN_EXTENT = 0.45
_BAR_MIN_EXTENT = 0.3
# Candidates that break a rule are redrawn; with the ranges above the acceptance rate is well over a
# third for every family on the default grid, so this bound is only reached on grids too small to
# hold the family at all.
_MAX_ATTEMPTS = 500


class _Reject(Exception):
    """The parameters drawn so far cannot make a valid member of the family; draw again."""


def _randint(rng: np.random.Generator, low: int, high: int) -> int:
    """Uniform integer in ``[low, high]`` inclusive, rejecting the draw when the range is empty."""
    if low > high:
        raise _Reject
    return int(rng.integers(low, high + 1))


@dataclass(frozen=True)
class _Frame:
    """Limits for one family builder, in the family's own (unrotated) frame.

    Attributes:
        rows: Largest bounding-box height the builder may use.
        cols: Largest bounding-box width the builder may use.
        t_min: Thinnest wall, flange or web.
        t_max: Thickest wall, flange or web.
        gap: Narrowest slot, cell or outstand.
    """

    rows: int
    cols: int
    t_min: int
    t_max: int
    gap: int

    def height(self, rng: np.random.Generator, low_fraction: float = _PROFILE_MIN_EXTENT) -> int:
        """Draws a bounding-box height between ``low_fraction`` of the frame and all of it."""
        return _randint(rng, max(1, math.ceil(low_fraction * self.rows)), self.rows)

    def width(self, rng: np.random.Generator, low_fraction: float = _PROFILE_MIN_EXTENT) -> int:
        """Draws a bounding-box width between ``low_fraction`` of the frame and all of it."""
        return _randint(rng, max(1, math.ceil(low_fraction * self.cols)), self.cols)

    def thickness(self, rng: np.random.Generator) -> int:
        """Draws a wall, flange or web thickness."""
        return _randint(rng, self.t_min, self.t_max)


def _require(condition: bool) -> None:
    if not condition:
        raise _Reject


def _round(
    rng: np.random.Generator, low: int, limit: int, wall: int | None = None, gap: int = _MIN_GAP
) -> np.ndarray:
    """Digital disc (``wall`` None) or ring with a random real diameter in ``[low, limit]``.

    A ring's bore is at least ``gap`` cells across. The diameter is real and the centre is shifted
    by a random fraction of a cell because integer diameters on integer centres give only a handful
    of distinct rings that fill the grid, which would then recur many times in a large data set.
    """
    _require(1 <= low <= limit)
    diameter = rng.uniform(low, limit)
    size = min(limit, math.ceil(diameter))
    slack = (size - diameter) / 2
    centre_row, centre_col = (size - 1) / 2 + rng.uniform(-slack, slack, size=2)
    yy, xx = np.ogrid[:size, :size]
    radius = np.hypot(yy - centre_row, xx - centre_col)
    outer = radius <= diameter / 2
    if wall is None:
        return outer
    # One extra cell because the digital bore is narrower than its nominal diameter.
    _require(diameter - 2 * wall >= gap + 1)
    return outer & (radius > diameter / 2 - wall)


def _rect_bar(rng: np.random.Generator, f: _Frame) -> np.ndarray:
    return np.ones((f.height(rng, _BAR_MIN_EXTENT), f.width(rng, _BAR_MIN_EXTENT)), dtype=bool)


def _round_bar(rng: np.random.Generator, f: _Frame) -> np.ndarray:
    limit = min(f.rows, f.cols)
    return _round(rng, max(1, math.ceil(_BAR_MIN_EXTENT * limit)), limit)


def _round_tube(rng: np.random.Generator, f: _Frame) -> np.ndarray:
    limit = min(f.rows, f.cols)
    return _round(rng, max(1, math.ceil(_PROFILE_MIN_EXTENT * limit)), limit, f.thickness(rng), f.gap)


def _rect_tube(rng: np.random.Generator, f: _Frame) -> np.ndarray:
    h, w = f.height(rng), f.width(rng)
    t_flange, t_web = f.thickness(rng), f.thickness(rng)
    _require(h - 2 * t_flange >= f.gap and w - 2 * t_web >= f.gap)
    section = np.ones((h, w), dtype=bool)
    section[t_flange : h - t_flange, t_web : w - t_web] = False
    return section


def _two_cell_box(rng: np.random.Generator, f: _Frame) -> np.ndarray:
    h, w = f.height(rng), f.width(rng)
    t_flange, t_web, t_mid = f.thickness(rng), f.thickness(rng), f.thickness(rng)
    inner = w - 2 * t_web - t_mid
    _require(h - 2 * t_flange >= f.gap and inner >= 2 * f.gap)
    # Keep the internal web near the middle: a box with a sliver cell reads as a tube with a lump.
    left = _randint(rng, max(f.gap, round(0.3 * inner)), min(inner - f.gap, round(0.7 * inner)))
    section = np.ones((h, w), dtype=bool)
    section[t_flange : h - t_flange, t_web : t_web + left] = False
    section[t_flange : h - t_flange, t_web + left + t_mid : w - t_web] = False
    return section


def _i_beam(rng: np.random.Generator, f: _Frame) -> np.ndarray:
    h, w = f.height(rng), f.width(rng)
    t_top, t_bottom, t_web = f.thickness(rng), f.thickness(rng), f.thickness(rng)
    # Unequal flanges are common (crane rails, asymmetric girders); the top one is the wider.
    w_bottom = _randint(rng, math.ceil(0.6 * w), w)
    _require(h - t_top - t_bottom >= f.gap and w_bottom - t_web >= 2 * f.gap)
    section = np.zeros((h, w), dtype=bool)
    section[:t_top, :] = True
    left = (w - w_bottom) // 2
    section[h - t_bottom :, left : left + w_bottom] = True
    web = (w - t_web) // 2
    section[:, web : web + t_web] = True
    return section


def _channel(rng: np.random.Generator, f: _Frame) -> np.ndarray:
    h, w = f.height(rng), f.width(rng)
    t_top, t_bottom, t_web = f.thickness(rng), f.thickness(rng), f.thickness(rng)
    _require(h - t_top - t_bottom >= f.gap and w - t_web >= f.gap)
    section = np.zeros((h, w), dtype=bool)
    section[:t_top, :] = True
    section[h - t_bottom :, :] = True
    section[:, :t_web] = True
    return section


def _t_section(rng: np.random.Generator, f: _Frame) -> np.ndarray:
    h, w = f.height(rng), f.width(rng)
    t_flange, t_web = f.thickness(rng), f.thickness(rng)
    _require(h - t_flange >= f.gap and w - t_web >= 2 * f.gap)
    section = np.zeros((h, w), dtype=bool)
    section[:t_flange, :] = True
    web = (w - t_web) // 2
    section[:, web : web + t_web] = True
    return section


def _angle(rng: np.random.Generator, f: _Frame) -> np.ndarray:
    h, w = f.height(rng), f.width(rng)
    t_vertical, t_horizontal = f.thickness(rng), f.thickness(rng)
    _require(h - t_horizontal >= f.gap and w - t_vertical >= f.gap)
    section = np.zeros((h, w), dtype=bool)
    section[:, :t_vertical] = True
    section[h - t_horizontal :, :] = True
    return section


def _z_section(rng: np.random.Generator, f: _Frame) -> np.ndarray:
    h, w = f.height(rng), f.width(rng)
    t_top, t_bottom, t_web = f.thickness(rng), f.thickness(rng), f.thickness(rng)
    _require(h - t_top - t_bottom >= f.gap)
    span = w - t_web
    # Both flanges must stand out from the web, or the Z degenerates into a channel or an angle.
    web = _randint(rng, max(f.gap, round(0.25 * span)), min(span - f.gap, round(0.75 * span)))
    section = np.zeros((h, w), dtype=bool)
    section[:t_top, web:] = True
    section[h - t_bottom :, : web + t_web] = True
    section[:, web : web + t_web] = True
    return section


def _hat_section(rng: np.random.Generator, f: _Frame) -> np.ndarray:
    h, w = f.height(rng), f.width(rng)
    t_crown, t_web, t_flange = f.thickness(rng), f.thickness(rng), f.thickness(rng)
    outstand = _randint(rng, max(f.gap, round(0.1 * w)), max(f.gap, round(0.3 * w)))
    _require(w - 2 * (outstand + t_web) >= f.gap and h - t_crown - t_flange >= f.gap)
    section = np.zeros((h, w), dtype=bool)
    section[:t_crown, outstand : w - outstand] = True
    section[:, outstand : outstand + t_web] = True
    section[:, w - outstand - t_web : w - outstand] = True
    section[h - t_flange :, : outstand + t_web] = True
    section[h - t_flange :, w - outstand - t_web :] = True
    return section


_BUILDERS: dict[str, Callable[[np.random.Generator, _Frame], np.ndarray]] = {
    "rect_bar": _rect_bar,
    "round_bar": _round_bar,
    "rect_tube": _rect_tube,
    "round_tube": _round_tube,
    "two_cell_box": _two_cell_box,
    "i_beam": _i_beam,
    "channel": _channel,
    "t_section": _t_section,
    "angle": _angle,
    "z_section": _z_section,
    "hat_section": _hat_section,
}


def _clean(section: np.ndarray, min_wall: int) -> np.ndarray:
    """Opens the section by a ``min_wall`` square and keeps its largest 4-connected piece.

    The opening is the union of all ``min_wall`` squares inside the section, and each such square
    lies wholly in one piece, so the piece kept is still its own opening: one pass is enough.
    """
    if min_wall > 1:
        section = ndimage.binary_opening(section, structure=np.ones((min_wall, min_wall), dtype=bool))
    labels, count = ndimage.label(section, structure=SOLID_CONNECTIVITY)
    if count <= 1:
        return section
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def _is_valid(section: np.ndarray, hollows: int, min_wall: int) -> bool:
    """Whether the section meets every rule in the module docstring, judged by the problem's own rules."""
    fraction = np.count_nonzero(section) / section.size
    return (
        _MIN_AREA_FRACTION <= fraction <= _MAX_AREA_FRACTION
        and count_pieces(section) == 1
        and thin_feature_fraction(section, min_wall) == 0.0
        and count_enclosed_voids(section) == hollows
    )


def _check_shape(shape: Sequence[int]) -> tuple[int, int]:
    if len(shape) != 2 or any(int(size) != size or size < 1 for size in shape):
        raise ValueError(f"shape must be two positive integers (rows, cols), got {tuple(shape)!r}")
    return int(shape[0]), int(shape[1])


def _check_min_wall(min_wall: int) -> int:
    if int(min_wall) != min_wall or min_wall < 1:
        raise ValueError(f"min_wall must be a positive integer, got {min_wall!r}")
    return int(min_wall)


def random_section(
    rng: np.random.Generator,
    shape: tuple[int, int] = (32, 32),
    family: str | None = None,
    min_wall: int = 2,
) -> np.ndarray:
    """Draws one random extrusion cross-section.

    Size, wall thicknesses, position, a rotation by a multiple of 90 degrees and a mirror image are
    all random. Walls, flanges and webs are between ``min_wall`` and about 5 cells thick on a 32-cell
    grid (scaled with the grid's smaller side).

    Args:
        rng: Source of randomness; the result depends only on its state and the other arguments.
        shape: Grid size ``(rows, cols)``.
        family: One of :data:`SECTION_FAMILIES`, or None to choose one uniformly.
        min_wall: Thinnest feature allowed, in cells.

    Returns:
        Boolean array of ``shape``, True where there is material, row 0 at the top.

    Raises:
        ValueError: If ``family`` is unknown, or ``shape`` or ``min_wall`` is malformed.
        RuntimeError: If the grid is too small to hold a valid member of the family.
    """
    if family is None:
        family = SECTION_FAMILIES[int(rng.integers(len(SECTION_FAMILIES)))]
    elif family not in _BUILDERS:
        raise ValueError(f"unknown section family {family!r}; known families: {', '.join(SECTION_FAMILIES)}")
    rows, cols = _check_shape(shape)
    min_wall = _check_min_wall(min_wall)
    t_max = max(min_wall, round(_MAX_THICKNESS_AT_32 * min(rows, cols) / 32))
    gap = max(_MIN_GAP, min_wall)
    build = _BUILDERS[family]
    hollows = _HOLLOWS[family]

    for _ in range(_MAX_ATTEMPTS):
        quarter_turns = int(rng.integers(4))
        mirror = bool(rng.integers(2))
        # Build in the unrotated frame with the grid's sides swapped for odd quarter turns, so the
        # rotated part always fits.
        frame_rows, frame_cols = (rows, cols) if quarter_turns % 2 == 0 else (cols, rows)
        try:
            part = build(rng, _Frame(frame_rows, frame_cols, min_wall, t_max, gap))
        except _Reject:
            continue
        part = np.rot90(part, quarter_turns)
        if mirror:
            part = part[:, ::-1]
        top = int(rng.integers(rows - part.shape[0] + 1))
        left = int(rng.integers(cols - part.shape[1] + 1))
        section = np.zeros((rows, cols), dtype=bool)
        section[top : top + part.shape[0], left : left + part.shape[1]] = part
        section = _clean(section, min_wall)
        if _is_valid(section, hollows, min_wall):
            return section
    raise RuntimeError(
        f"could not draw a valid {family!r} section on a {rows}x{cols} grid with min_wall={min_wall} "
        f"in {_MAX_ATTEMPTS} attempts; the grid is too small for this family"
    )


def _make_chunk(seeds: Sequence[np.random.SeedSequence], shape: tuple[int, int], min_wall: int) -> np.ndarray:
    """Sections for a run of per-sample seeds; module level so a process pool can pickle it."""
    out = np.empty((len(seeds), *shape), dtype=np.uint8)
    for i, seed in enumerate(seeds):
        out[i] = random_section(np.random.default_rng(seed), shape, min_wall=min_wall)
    return out


def make_sections(
    n: int,
    shape: tuple[int, int] = (32, 32),
    seed: int = 0,
    min_wall: int = 2,
    workers: int = 1,
    progress: bool = True,
) -> np.ndarray:
    """Draws a data set of random sections, families mixed uniformly.

    Sample ``i`` is drawn from its own child of ``np.random.SeedSequence(seed)``, so the result is
    the same for any ``workers`` and the first ``k`` samples do not depend on ``n``.

    Args:
        n: Number of sections.
        shape: Grid size ``(rows, cols)``.
        seed: Seed of the whole data set.
        min_wall: Thinnest feature allowed, in cells.
        workers: Processes to draw with; 1 draws in this process.
        progress: Whether to show a progress bar.

    Returns:
        ``uint8`` array of shape ``(n, rows, cols)``, 1 where there is material.

    Raises:
        ValueError: If ``n`` is negative, ``workers`` is below 1, or ``shape`` or ``min_wall`` is
            malformed.
    """
    if int(n) != n or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    if int(workers) != workers or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    n, workers = int(n), int(workers)
    shape = _check_shape(shape)
    min_wall = _check_min_wall(min_wall)
    seeds = np.random.SeedSequence(seed).spawn(n)
    out = np.empty((n, *shape), dtype=np.uint8)
    # Chunks amortise the per-task cost of a pool and the progress bar's bookkeeping; several per
    # worker keep the workers evenly loaded.
    chunk = max(1, min(1024, math.ceil(n / (8 * workers))))
    starts = range(0, n, chunk)
    with tqdm(total=n, desc="sections", unit="section", disable=not progress) as bar:
        if workers == 1:
            for start in starts:
                stop = min(start + chunk, n)
                out[start:stop] = _make_chunk(seeds[start:stop], shape, min_wall)
                bar.update(stop - start)
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                blocks = pool.map(
                    _make_chunk,
                    [seeds[start : start + chunk] for start in starts],
                    [shape] * len(starts),
                    [min_wall] * len(starts),
                )
                for start, block in zip(starts, blocks, strict=True):
                    out[start : start + len(block)] = block
                    bar.update(len(block))
    return out
