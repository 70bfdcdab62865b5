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
