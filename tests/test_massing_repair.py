"""Massing.repair: the hard rules by construction on any height field, the FAR band wherever the
envelope can hold it, feasible designs kept as built, and whole storeys that survive float32."""

import numpy as np
import pytest
from scipy import ndimage

from designgym.envs.architecture.massing import (
    Massing,
    _open_plates,
    narrow_plate_cells,
    storey_counts,
    storey_heights,
)
from designgym.envs.architecture.massing_data import make_massing

HARD = ("setback", "height", "sky_plane", "narrow_plates")


@pytest.fixture(scope="module")
def massing() -> Massing:
    return Massing()


def fields(rng: np.random.Generator):
    """Height fields of every kind an agent or a generator might hand over, in [0, 60] m."""
    yield "noise", rng.uniform(0.0, 60.0, (32, 32))
    blob = ndimage.gaussian_filter(rng.normal(size=(32, 32)), 4.0) * 300.0 + 20.0
    yield "blob", np.clip(blob, 0.0, 60.0)
    yield "zero", np.zeros((32, 32))
    yield "max", np.full((32, 32), 60.0)
    fin = np.zeros((32, 32))
    fin[10:25, 16] = 60.0  # one cell wide: every plate of it is too narrow
    yield "fin", fin


def band_reachable(massing: Massing, conditions) -> bool:
    """Whether the envelope, every storey opened by scipy, holds 0.9 far at all."""
    cap = storey_counts(massing.envelope(conditions), massing.floor_height_m)
    square = np.ones((massing.min_plate, massing.min_plate), dtype=bool)
    area = sum(int(ndimage.binary_opening(cap >= k, structure=square).sum()) for k in range(1, cap.max() + 1))
    return area >= 0.9 * conditions["far"] * massing.parcel_mask(conditions).sum()


def test_opened_plates_are_scipys_and_their_own_opening():
    rng = np.random.default_rng(0)
    for m in (1, 2, 3, 4, 5):
        square = np.ones((m, m), dtype=bool)
        for _ in range(60):
            storeys = rng.integers(0, 12, (32, 32)) * (rng.random((32, 32)) < rng.uniform(0.4, 1.0))
            levels = storeys >= np.arange(1, 12)[:, None, None]
            opened = _open_plates(levels, m)
            for plate, ours in zip(levels, opened, strict=True):
                assert (ours == ndimage.binary_opening(plate, structure=square)).all()
            repaired = opened.sum(axis=0)
            assert ((repaired[None] >= np.arange(1, 12)[:, None, None]) == opened).all()  # still nested
            assert narrow_plate_cells(repaired, m).sum() == 0  # every plate is its own opening


def test_repair_meets_the_hard_rules_on_any_field(massing):
    in_band, reachable, total = 0, 0, 0
    for seed in range(150):
        rng = np.random.default_rng(seed)
        conditions = massing.sample_conditions(rng)
        can = band_reachable(massing, conditions)
        for kind, field in fields(rng):
            repaired = massing.repair(field.astype(np.float32), conditions)
            assert repaired.dtype == np.float32 and massing.design_space.contains(repaired), kind
            violations = massing.evaluate(repaired, conditions).violations
            assert all(violations[rule] == 0.0 for rule in HARD), (seed, kind, violations)
            total += 1
            reachable += can
            in_band += can and violations["far_band"] == 0.0
    # Measured: the band is met for all 730 of the 750 fields whose brief can hold it (100 %); the
    # other 20 (4 briefs) have an envelope too small for 0.9 far once its plates are opened.
    assert reachable >= 0.9 * total
    assert in_band >= 0.97 * reachable


def test_far_band_is_the_only_rule_an_impossible_brief_breaks(massing):
    # 8 x 8 buildable cells of at most 4 storeys: 256 cell-storeys against 0.9 * 3.5 * 256 = 806.
    brief = {"parcel_width": 0.5, "parcel_depth": 0.5, "setback_front": 8.0, "setback_side": 8.0,
             "setback_rear": 8.0, "max_height": 15.0, "sky_plane_base": 8.0, "sky_plane_slope": 1.0,
             "far": 3.5, "latitude": 40.0}
    assert not band_reachable(massing, brief)
    violations = massing.evaluate(massing.repair(np.full((32, 32), 30.0, np.float32), brief), brief).violations
    assert violations["far_band"] > 0 and all(violations[rule] == 0.0 for rule in HARD)


def test_feasible_massing_comes_back_as_built(massing):
    rng = np.random.default_rng(5)
    kept = 0
    while kept < 10:
        conditions = massing.sample_conditions(rng)
        heights = make_massing(massing, conditions, rng)
        if heights is None:
            continue
        soft = heights + rng.uniform(0.0, 3.0, heights.shape).astype(np.float32) * (heights > 0)  # within a storey
        soft = np.minimum(soft, massing.max_height_m)
        for design in (heights, soft):
            repaired = massing.repair(design, conditions)
            assert np.array_equal(repaired, heights)
            assert massing.evaluate(repaired, conditions).feasible
        kept += 1


def test_repairing_twice_changes_nothing_and_is_deterministic(massing):
    for seed in range(40):
        rng = np.random.default_rng(1000 + seed)
        conditions = massing.sample_conditions(rng)
        for _, field in fields(rng):
            field = field.astype(np.float32)
            once = massing.repair(field, conditions)
            assert np.array_equal(once, massing.repair(field.copy(), conditions))
            twice = massing.repair(once, conditions)
            violations = massing.evaluate(twice, conditions).violations
            assert all(violations[rule] == 0.0 for rule in HARD)
            if violations["far_band"] == 0.0:  # in the band, the repaired design is a fixed point
                assert np.array_equal(twice, once)


def test_an_empty_or_sliver_design_becomes_a_legal_massing(massing):
    brief = {"parcel_width": 0.6, "parcel_depth": 0.6, "setback_front": 2.0, "setback_side": 2.0,
             "setback_rear": 2.0, "max_height": 30.0, "sky_plane_base": 16.0, "sky_plane_slope": 2.0,
             "far": 2.5, "latitude": 40.0}
    fin = np.zeros((32, 32), np.float32)
    fin[8:20, 15] = 40.0
    for design in (np.zeros((32, 32), np.float32), fin):
        repaired = massing.repair(design, brief)
        assert repaired.max() > 0 and massing.evaluate(repaired, brief).feasible


@pytest.mark.parametrize("floor_height_m", [3.5, 3.3, 3.1, 2.9, 3.7, 4.1, 3.0])
def test_whole_storeys_survive_float32_at_every_height(floor_height_m):
    storeys = np.arange(0, 200).reshape(10, 20)
    heights = storey_heights(storeys, floor_height_m)
    assert heights.dtype == np.float32
    assert np.array_equal(storey_counts(heights, floor_height_m), storeys)
    assert np.abs(heights - storeys * floor_height_m).max() <= 1e-5 * storeys.max() * floor_height_m


@pytest.mark.parametrize("floor_height_m", [3.5, 3.3, 2.9])
def test_a_full_height_tower_keeps_its_top_storey(floor_height_m):
    massing = Massing(floor_height_m=floor_height_m)
    brief = {"parcel_width": 0.5, "parcel_depth": 0.5, "setback_front": 0.0, "setback_side": 0.0,
             "setback_rear": 0.0, "max_height": 60.0, "sky_plane_base": 24.0, "sky_plane_slope": 4.0,
             "far": 3.5, "latitude": 40.0}
    top = int(np.floor(60.0 / floor_height_m + 1e-6))
    tower = np.zeros((32, 32), np.float32)
    tower[14:20, 12:18] = 60.0  # 36 cells of full height: too little floor area, so the rest grows around it
    repaired = massing.repair(tower, brief)
    storeys = storey_counts(repaired, floor_height_m)
    assert (storeys[14:20, 12:18] == top).all()
    assert massing.evaluate(repaired, brief).feasible
