"""Each manufacturing rule on planted designs: one that breaks it and one that meets it."""

import numpy as np
import pytest

from designgym.envs.manufacturing import (
    count_enclosed_voids,
    count_pieces,
    disconnected_fraction,
    solid_mask,
    thin_feature_fraction,
)


def square(size=16, lo=4, hi=12):
    m = np.zeros((size, size), dtype=bool)
    m[lo:hi, lo:hi] = True
    return m


def test_solid_mask_threshold_is_inclusive():
    assert solid_mask(np.array([[0.49, 0.5, 1.0]])).tolist() == [[False, True, True]]


def test_island_is_disconnected_material():
    m = square()
    assert disconnected_fraction(m) == 0.0 and count_pieces(m) == 1
    m[0:2, 0:2] = True  # a 4-cell island apart from the 64-cell body
    assert count_pieces(m) == 2
    assert disconnected_fraction(m) == pytest.approx(4 / 68)


def test_corner_contact_does_not_weld_two_pieces():
    m = np.zeros((4, 4), dtype=bool)
    m[0:2, 0:2] = True
    m[2:4, 2:4] = True
    assert count_pieces(m) == 2
    assert disconnected_fraction(m) == pytest.approx(0.5)


def test_empty_design_is_fully_disconnected():
    assert disconnected_fraction(np.zeros((8, 8), dtype=bool)) == 1.0


@pytest.mark.parametrize("holes", [0, 1, 2])
def test_enclosed_voids_are_counted(holes):
    m = np.zeros((20, 20), dtype=bool)
    m[2:18, 2:18] = True
    for k in range(holes):
        m[5:9, 4 + 7 * k : 8 + 7 * k] = False
    assert count_enclosed_voids(m) == holes


def test_notch_open_to_the_outside_is_not_a_hollow():
    m = square(20, 2, 18)
    m[8:12, 10:18] = False  # a slot reaching the right face of the block
    assert count_enclosed_voids(m) == 0
    m[0:2, :] = True  # material at the grid border does not close anything either
    assert count_enclosed_voids(m) == 0


def test_void_touching_diagonally_through_a_solid_corner_stays_one_hollow():
    # With 4-connected solid, a ring joined only at a corner is open: void is 8-connected.
    m = np.zeros((9, 9), dtype=bool)
    m[2:7, 2:7] = True
    m[3:6, 3:6] = False
    assert count_enclosed_voids(m) == 1
    m[2, 2] = False  # knock out a corner: the hole now leaks diagonally to the outside
    assert count_enclosed_voids(m) == 0


@pytest.mark.parametrize("min_width", [2, 3])
def test_thin_wall_is_flagged_and_thick_wall_is_not(min_width):
    m = np.zeros((16, 16), dtype=bool)
    m[4:12, 2 : 2 + min_width] = True  # exactly min_width thick: fine
    assert thin_feature_fraction(m, min_width) == 0.0
    m[4:12, 8 : 8 + min_width - 1] = True  # one cell thinner: all of it is flagged
    thin = 8 * (min_width - 1)
    assert thin_feature_fraction(m, min_width) == pytest.approx(thin / (8 * min_width + thin))


def test_thin_spur_on_a_thick_body_is_flagged():
    m = square(16, 4, 12)
    m[7, 12:15] = True  # a one-cell spur
    assert thin_feature_fraction(m, 2) == pytest.approx(3 / 67)


def test_material_at_the_grid_border_is_judged_like_anywhere_else():
    m = np.zeros((8, 8), dtype=bool)
    m[0:2, :] = True
    assert thin_feature_fraction(m, 2) == 0.0
    assert thin_feature_fraction(m, 3) == 1.0


# -- structural rules: supports, load path, additive manufacturing, member size ------------------

from designgym.envs.manufacturing import (  # noqa: E402
    disk,
    floating_fraction,
    load_path_broken,
    member_size_violation,
)
from designgym.envs.printing import overhang_fraction  # noqa: E402


def left_edge(shape):
    anchored = np.zeros(shape, dtype=bool)
    anchored[:, 0] = True
    return anchored


def test_material_hanging_on_nothing_is_floating():
    m = np.zeros((8, 16), dtype=bool)
    m[3:5, 0:10] = True  # a bar off the clamped left edge
    assert floating_fraction(m, left_edge(m.shape)) == 0.0
    m[0:2, 12:14] = True  # an island
    assert floating_fraction(m, left_edge(m.shape)) == pytest.approx(4 / 24)
    # One piece that does not reach the support floats whole, although it is connected.
    bar = np.zeros((8, 16), dtype=bool)
    bar[3:5, 4:12] = True
    assert floating_fraction(bar, left_edge(bar.shape)) == 1.0
    assert floating_fraction(np.zeros((4, 4), dtype=bool), left_edge((4, 4))) == 1.0


def test_load_path_needs_solid_from_load_to_support():
    m = np.zeros((8, 16), dtype=bool)
    m[3:5, 0:16] = True
    loaded = np.zeros_like(m)
    loaded[4, 15] = True
    assert load_path_broken(m, left_edge(m.shape), loaded) == 0.0
    m[:, 8] = False  # cut the bar
    assert load_path_broken(m, left_edge(m.shape), loaded) == 1.0
    m[:, 8] = True
    m[4, 15] = False  # no material under the load
    m[3, 15] = True
    assert load_path_broken(m, left_edge(m.shape), loaded) == 1.0


def self_supporting():
    m = np.zeros((10, 10), dtype=bool)
    for r in range(10):
        m[r, 0 : 10 - r] = True  # widens upward at exactly 45 degrees
    return m


def test_45_degree_walls_print_and_flat_overhangs_do_not():
    assert overhang_fraction(self_supporting(), "up") == 0.0
    tee = np.zeros((10, 10), dtype=bool)
    tee[5:10, 4:6] = True
    tee[4, :] = True
    # Of the 10-cell flange only the 4 cells inside the stem's 45-degree cone print.
    assert overhang_fraction(tee, "up") == pytest.approx(6 / 20)
    shallow = np.zeros((10, 10), dtype=bool)
    for r in range(10):
        m = min(10, 2 * (10 - r))
        shallow[r, 0:m] = True  # widens two cells per layer: steeper than 45 degrees of overhang
    assert overhang_fraction(shallow, "up") > 0


@pytest.mark.parametrize("direction, turns", [("up", 0), ("left", 3), ("down", 2), ("right", 1)])
def test_build_direction_turns_the_rule_with_the_part(direction, turns):
    tee = np.zeros((10, 10), dtype=bool)
    tee[5:10, 4:6] = True
    tee[4, :] = True
    assert overhang_fraction(np.rot90(tee, -turns), direction) == pytest.approx(6 / 20)


def test_unknown_build_direction_is_named():
    with pytest.raises(ValueError, match="build_direction must be one of up, left, down, right"):
        overhang_fraction(np.ones((3, 3), dtype=bool), "sideways")


def test_thin_strut_and_narrow_gap_break_the_member_size():
    from scipy import ndimage

    box = np.zeros((20, 20), dtype=bool)
    box[5:15, 2:18] = True
    # A disk cannot reach into a square corner, so sharp corners count (3 cells each at r = 2) ...
    assert member_size_violation(box, 2) == pytest.approx(12 / box.sum())
    # ... and the same block with corners rounded to r_min meets the rule exactly.
    rounded = ndimage.binary_opening(box, structure=disk(2))
    assert member_size_violation(rounded, 2) == 0.0
    strut = rounded.copy()
    strut[0:5, 9] = True  # a 1-cell strut on top
    assert member_size_violation(strut, 2) >= 5 / strut.sum()
    # Two blocks that each meet the rule, one cell apart: the gap is too narrow and the closing fills it.
    block = np.zeros((20, 20), dtype=bool)
    block[5:15, 1:9] = True
    block = ndimage.binary_opening(block, structure=disk(2))
    pair = block | np.roll(block, 9, axis=1)
    assert member_size_violation(block, 2) == 0.0 and member_size_violation(np.roll(block, 9, axis=1), 2) == 0.0
    # The closing fills the 4 middle cells of the 6-cell slit (at its ends the disk leaves the rounded blocks).
    assert member_size_violation(pair, 2) == pytest.approx(4 / pair.sum())
    assert member_size_violation(rounded, 4) > 0  # at a larger radius the 10-cell-thick block's ends are too sharp
    assert disk(1).sum() == 5 and disk(2).sum() == 13


def test_member_size_allowance_forgives_pixel_steps_but_not_long_thin_struts():
    band = np.zeros((20, 20), dtype=bool)
    for r in range(20):
        band[r, max(0, r - 3) : r + 3] = True  # a 45-degree bar drawn in pixel steps, 5 to 6 cells wide
    assert member_size_violation(band, 1) > 0  # every step is a corner the disk cannot reach
    assert member_size_violation(band, 1, allowance=1) == 0.0

    pair = np.zeros((12, 30), dtype=bool)
    pair[2:10, 2:8] = True
    pair[2:10, 22:28] = True
    pair[5, 8:22] = True  # a 14-cell strut, one cell thick, between two blocks
    # The opened blocks reach one cell into the strut (a cross centred on the block's edge), and the
    # allowance forgives one more at each end: the middle 10 cells count.
    assert member_size_violation(pair, 1, allowance=1) == pytest.approx(10 / pair.sum())
    pair[4:7, 8:22] = True  # three cells thick: a cross fits along its middle row
    assert member_size_violation(pair, 1, allowance=1) == 0.0
    with pytest.raises(ValueError, match="allowance"):
        member_size_violation(pair, 1, allowance=-1)


def test_asymmetric_material_is_counted_across_the_chosen_line():
    from designgym.envs.manufacturing import asymmetry

    m = np.zeros((6, 8), dtype=bool)
    m[2:4, 1:7] = True
    assert asymmetry(m, "vertical") == 0.0 and asymmetry(m, "horizontal") == 0.0
    m[0, 0] = True  # one cell with no mirror on either side
    assert asymmetry(m, "vertical") == pytest.approx(1 / 13)
    assert asymmetry(m, "horizontal") == pytest.approx(1 / 13)
    with pytest.raises(ValueError, match="axis must be"):
        asymmetry(m, "diagonal")


# -- keep_budget_joined: a density field to a solid at the volume budget, joined to the supports ---

from designgym.envs.manufacturing import keep_budget_joined  # noqa: E402


def test_budget_keeps_the_densest_joined_cells_and_drops_the_island():
    density = np.array([
        [0.9, 0.8, 0.1, 0.0, 0.95],
        [0.2, 0.7, 0.6, 0.1, 0.9],
        [0.3, 0.1, 0.2, 0.1, 0.0],
        [0.4, 0.0, 0.5, 0.0, 0.0],
    ])
    anchored = left_edge(density.shape)
    # The six densest hold a two-cell island on the right; the four joined ones stay, and the two
    # missing come from the boundary of what is kept, densest first, ties to the lower flat index:
    # 0.2 at (1, 0) and 0.2 at (2, 2), not 0.5 at (3, 2), which is not on that boundary yet.
    kept = keep_budget_joined(density, anchored, 6)
    assert kept.dtype == bool
    assert kept.astype(int).tolist() == [
        [1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0],
        [0, 0, 1, 0, 0],
        [0, 0, 0, 0, 0],
    ]
    # One more: the first layer's boundary still has cells, the densest of them (0.1s) at flat index 2.
    assert np.argwhere(keep_budget_joined(density, anchored, 7) & ~kept).tolist() == [[0, 2]]


def test_budget_grows_a_layer_at_a_time_when_one_boundary_is_not_enough():
    density = np.array([
        [0.0, 0.0, 0.0, 0.9],
        [0.0, 0.0, 0.0, 0.8],
        [0.1, 0.0, 0.0, 0.7],
    ])
    # Only (2, 0) of the four densest is joined; its boundary has two cells, the next layer gives the
    # fourth, the lowest flat index among equal densities.
    assert keep_budget_joined(density, left_edge(density.shape), 4).astype(int).tolist() == [
        [1, 0, 0, 0],
        [1, 0, 0, 0],
        [1, 1, 0, 0],
    ]


def test_budget_starts_from_the_anchored_cells_when_nothing_dense_is_joined():
    density = np.array([
        [0.0, 0.0, 0.9, 0.9],
        [0.2, 0.0, 0.0, 0.8],
        [0.1, 0.0, 0.0, 0.7],
    ])
    anchored = left_edge(density.shape)
    # The four densest cells are one piece off the support: all dropped, and the budget is grown
    # from the anchored cells, densest first, then from the boundary of those.
    assert keep_budget_joined(density, anchored, 2).astype(int).tolist() == [
        [0, 0, 0, 0],
        [1, 0, 0, 0],
        [1, 0, 0, 0],
    ]
    assert keep_budget_joined(density, anchored, 4).astype(int).tolist() == [
        [1, 1, 0, 0],
        [1, 0, 0, 0],
        [1, 0, 0, 0],
    ]


def test_budget_joins_through_edges_only():
    density = np.array([[0.9, 0.0, 0.0], [0.0, 0.8, 0.0]])
    # (1, 1) touches the anchored (0, 0) at a corner only: not joined, so it makes way for a cell
    # on the boundary of the kept piece.
    assert keep_budget_joined(density, left_edge(density.shape), 2).astype(int).tolist() == [[1, 1, 0], [0, 0, 0]]


def test_budget_counts_are_clamped_and_unreachable_cells_are_left_out():
    density = np.random.default_rng(0).random((4, 6))
    anchored = left_edge(density.shape)
    assert not keep_budget_joined(density, anchored, 0).any()
    assert not keep_budget_joined(density, anchored, -3).any()
    assert keep_budget_joined(density, anchored, 100).all()
    # Without an anchored cell nothing can be joined: the mask is empty, not an error.
    assert not keep_budget_joined(density, np.zeros_like(anchored), 10).any()
    with pytest.raises(ValueError, match=r"density has shape \(4, 6\) but anchored has \(6, 4\)"):
        keep_budget_joined(density, anchored.T, 5)


@pytest.mark.parametrize("seed", range(6))
def test_budget_is_met_exactly_with_nothing_floating(seed):
    rng = np.random.default_rng(seed)
    density = rng.random((8, 16))
    anchored = left_edge(density.shape)
    cells = int(rng.integers(1, 128))
    kept = keep_budget_joined(density, anchored, cells)
    assert int(kept.sum()) == cells
    assert floating_fraction(kept, anchored) == 0.0
    # Every cell of the plain top-``cells`` set that is joined within that set is kept.
    top = np.zeros(density.size, dtype=bool)
    top[np.argsort(-density.ravel(), kind="stable")[:cells]] = True
    top = top.reshape(density.shape)
    from scipy import ndimage

    labels, _ = ndimage.label(top, structure=ndimage.generate_binary_structure(2, 1))
    held = np.isin(labels, np.unique(labels[anchored & top])) & top
    assert not (held & ~kept).any()


# -- keep_budget_walled: a density field to a section at its area, one piece, walls of min_width -------

from designgym.envs.manufacturing import keep_budget_walled  # noqa: E402


def test_walled_budget_drops_the_spur_and_the_island_and_keeps_the_area():
    density = np.zeros((8, 8))
    density[2:6, 1:5] = 0.9  # a 4 x 4 block
    density[3, 5:8] = 0.95  # a one-cell spur off it: thinner than 2
    density[0, 7] = 1.0  # a one-cell island
    kept = keep_budget_walled(density, 16, 2)
    assert kept.dtype == bool and int(kept.sum()) == 16
    assert kept[2:6, 1:5].all() and not kept[3, 5:].any() and not kept[0, 7]
    assert thin_feature_fraction(kept, 2) == 0.0 and count_pieces(kept) == 1


def test_walled_budget_grows_by_whole_squares_touching_the_piece():
    density = np.zeros((6, 6))
    density[0:2, 0:2] = 0.9
    density[0:2, 2:4] = 0.5  # the next densest square, beside the first
    density[4:6, 4:6] = 0.6  # denser, but apart from the piece: it would be a second piece
    kept = keep_budget_walled(density, 8, 2)
    assert kept.astype(int)[:2].tolist() == [[1, 1, 1, 1, 0, 0]] * 2 and int(kept.sum()) == 8


@pytest.mark.parametrize("seed", range(25))
def test_walled_budget_meets_the_rules_for_any_field(seed):
    rng = np.random.default_rng(seed)
    size = int(rng.integers(8, 33))
    density = ndimage_smooth(rng.random((size, size)), sigma=float(rng.uniform(0, 2)))
    cells = int(rng.integers(size, size * size // 2))
    kept = keep_budget_walled(density, cells, 2)
    assert cells <= int(kept.sum()) <= cells + 3  # at most one square over
    assert thin_feature_fraction(kept, 2) == 0.0 and count_pieces(kept) == 1


def test_walled_budget_of_nothing_is_empty_and_a_full_budget_is_the_grid():
    density = np.random.default_rng(0).random((6, 6))
    assert not keep_budget_walled(density, 0, 2).any()
    assert keep_budget_walled(density, 36, 2).all()


def ndimage_smooth(field, sigma):
    from scipy import ndimage

    return ndimage.gaussian_filter(field, sigma) if sigma > 0 else field
