"""The massing problem: the zoning envelope, the sun, the ray-cast shadows against a slow reference,
each rule on a planted massing, and the procedural generator."""

import math

import numpy as np
import pytest
from gymnasium import spaces

from designgym.envs.architecture.massing import Massing, shadow_mask, sun_position
from designgym.envs.architecture.massing_data import make_massing, make_massings


@pytest.fixture(scope="module")
def massing() -> Massing:
    return Massing()


# A 16 x 16 cell parcel (cols 8..23, rows 12..27) above the 4 street rows, no setbacks; FAR 2 asks
# for 512 cell-storeys (2048 m2 on 1024 m2); the target volume is 2 * 1024 * 3.5 = 7168 m3.
BRIEF = {
    "parcel_width": 0.5,
    "parcel_depth": 0.5,
    "setback_front": 0.0,
    "setback_side": 0.0,
    "setback_rear": 0.0,
    "max_height": 15.0,
    "sky_plane_base": 8.0,
    "sky_plane_slope": 1.0,
    "far": 2.0,
    "latitude": 40.0,
}
V_TARGET = 7168.0


def block(rows, cols, height, grid=None):
    grid = np.zeros((32, 32), dtype=np.float32) if grid is None else grid
    grid[rows[0] : rows[1], cols[0] : cols[1]] = height
    return grid


def broken(ev):
    return {k for k, v in ev.violations.items() if v > 0}


def test_the_conditions_are_scalar_boxes_and_discretes(massing):
    for space in massing.conditions_space.spaces.values():
        assert isinstance(space, spaces.Discrete) or (isinstance(space, spaces.Box) and space.shape == ())
    assert massing.design_space.shape == (32, 32) and massing.design_space.high.max() == 60.0
    assert massing.violation_names == ("setback", "height", "sky_plane", "far_band", "narrow_plates")
    assert set(massing.default_violation_weights) == set(massing.violation_names)


def test_site_masks_and_setbacks(massing):
    parcel = massing.parcel_mask(BRIEF)
    assert parcel.sum() == 256 and parcel[12:28, 8:24].all()
    street = massing.street_mask(BRIEF)
    assert street[28:].all() and street.sum() == 4 * 32
    assert (parcel.astype(int) + street + massing.neighbour_mask(BRIEF) == 1).all()
    # 4 m front = 2 cells, 3 m sides = 1.5 cells rounded up to 2, 6 m rear = 3 cells.
    brief = {**BRIEF, "setback_front": 4.0, "setback_side": 3.0, "setback_rear": 6.0}
    buildable = massing.buildable_mask(brief)
    assert buildable.sum() == (16 - 2 - 3) * (16 - 2 * 2)
    assert buildable[15:26, 10:22].all()
    assert massing.buildable_rect(brief) == (15, 26, 10, 22)


def test_envelope_is_the_lower_of_max_height_and_the_sky_plane(massing):
    brief = {**BRIEF, "max_height": 40.0, "sky_plane_base": 10.0, "sky_plane_slope": 1.5, "setback_rear": 2.0}
    env = massing.envelope(brief)
    # The plane rises from 10 m at the grid's bottom edge (the far kerb of the street).
    for row in (27, 24, 20):
        d = (32 - row - 0.5) * 2.0
        assert env[row, 15] == pytest.approx(min(40.0, 10.0 + 1.5 * d))
    assert env[27, 15] == pytest.approx(10.0 + 1.5 * 9.0)  # 23.5 m at the front lot line
    assert env[13, 15] == 40.0  # capped by max_height at the back
    assert env[12].max() == 0.0  # the rear setback
    assert env[28:].max() == 0.0 and env[:, :8].max() == 0.0  # street and neighbours


def test_winter_solstice_sun_positions(massing):
    suns = massing.sun_positions(BRIEF)
    assert len(suns) == 3
    (az9, el9), (az12, el12), (az15, el15) = suns
    assert el12 == pytest.approx(90.0 - 40.0 - 23.44, abs=1e-9)
    assert az12 == pytest.approx(180.0, abs=1e-9)
    assert az9 + az15 == pytest.approx(360.0) and el9 == pytest.approx(el15)
    assert 90.0 < az9 < 180.0 and 5.0 < el9 < el12  # morning sun in the south-east, lower
    # Far north, the mid-morning sun is too low (under 5 degrees) and is dropped.
    assert [round(a) for a, _ in massing.sun_positions({**BRIEF, "latitude": 55.0})] == [180]
    assert sun_position(55.0, 9.0)[1] < 5.0


def slow_shadow(heights, cell_m, azimuth_deg, elevation_deg):
    """The ray test written out cell by cell, sample by sample, in plain Python."""
    rows, cols = heights.shape
    dx = math.sin(math.radians(azimuth_deg))
    dy = -math.cos(math.radians(azimuth_deg))
    tan_el = math.tan(math.radians(elevation_deg))
    out = np.zeros((rows, cols), dtype=bool)
    for r in range(rows):
        for c in range(cols):
            x0, y0, z0 = c + 0.5, r + 0.5, float(heights[r, c])
            k = 1
            while True:
                t = k * 0.5
                x, y = x0 + t * dx, y0 + t * dy
                z = z0 + (t * cell_m) * tan_el
                ci, ri = math.floor(x), math.floor(y)
                if not (0 <= ci < cols and 0 <= ri < rows):
                    break
                if float(heights[ri, ci]) > z:
                    out[r, c] = True
                    break
                k += 1
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_shadow_mask_matches_the_slow_reference(seed):
    rng = np.random.default_rng(seed)
    heights = np.zeros((20, 20))
    for _ in range(5):  # a few blocks of random heights, and some rough ground
        r, c = rng.integers(0, 16, size=2)
        heights[r : r + rng.integers(1, 5), c : c + rng.integers(1, 5)] = rng.uniform(3, 40)
    heights += (rng.random((20, 20)) < 0.2) * rng.uniform(0, 10, (20, 20))
    suns = [(180.0, 26.56), (rng.uniform(0, 360), rng.uniform(6, 60)), (90.0, 10.0), (315.0, 45.0)]
    for azimuth, elevation in suns:
        fast = shadow_mask(heights, 2.0, azimuth, elevation)
        assert np.array_equal(fast, slow_shadow(heights, 2.0, azimuth, elevation))
        assert fast.any()


def test_a_tower_casts_its_noon_shadow_to_the_north(massing):
    heights = block((24, 28), (14, 18), 20.0)
    azimuth, elevation = massing.sun_positions(BRIEF)[1]
    shade = shadow_mask(heights, 2.0, azimuth, elevation)
    length_cells = 20.0 / math.tan(math.radians(elevation)) / 2.0  # 40 m = 20 cells
    assert length_cells == pytest.approx(20.0, abs=0.01)
    column = shade[:24, 15]
    run = int(column[::-1].argmin())  # shadowed cells counted north from the tower's face
    assert abs(run - length_cells) <= 1 and not column[: 24 - run].any()
    assert not shade[28:].any() and not shade[:, :14].any() and not shade[:, 18:].any()
    assert not shade[24:28, 14:18].any()  # the roof is in the sun


def test_planted_block_meets_every_rule(massing):
    design = block((12, 20), (8, 24), 14.0)  # 8 x 16 cells, 4 storeys of 3.5 m
    ev = massing.evaluate(design, BRIEF)
    assert ev.feasible and all(v == 0.0 for v in ev.violations.values())
    assert ev.objectives["gross_floor_area_m2"] == 8 * 16 * 4 * 4.0  # 2048 m2
    assert ev.objectives["far"] == pytest.approx(2048.0 / 1024.0)
    assert ev.objectives["height_max_m"] == 14.0
    assert ev.objectives["volume_m3"] == 8 * 16 * 4.0 * 14.0


def planted():
    """``{rule: (design, conditions, expected violation)}``: each breaks that rule alone."""
    return {
        # The rear 4 m (2 rows) of the feasible block become a setback.
        "setback": (block((12, 20), (8, 24), 14.0), {**BRIEF, "setback_rear": 4.0}, 2 * 16 * 14.0 * 4 / V_TARGET),
        # Five storeys (17.5 m) under a 15 m limit, high under the sky plane at the back.
        "height": (block((12, 20), (8, 21), 17.5), BRIEF, 8 * 13 * 2.5 * 4 / V_TARGET),
        # The same at the front, with a 20 m limit: the plane is at 17 m over the front row.
        "sky_plane": (block((20, 28), (8, 21), 17.5), {**BRIEF, "max_height": 20.0}, 13 * 0.5 * 4 / V_TARGET),
        # FAR 2 against a target of 3: 0.7 below the band's 2.7.
        "far_band": (block((12, 20), (8, 24), 14.0), {**BRIEF, "far": 3.0}, (2.7 - 2.0) / 3.0),
        # A 2-cell (4 m) wide one-storey wing apart from the block: 32 of 480 cell-storeys.
        "narrow_plates": (block((22, 24), (8, 24), 3.5, block((12, 20), (8, 22), 14.0)), BRIEF, 32 / 480),
    }


@pytest.mark.parametrize("rule", ["setback", "height", "sky_plane", "far_band", "narrow_plates"])
def test_planted_massing_breaks_exactly_its_rule(massing, rule):
    design, conditions, expected = planted()[rule]
    ev = massing.evaluate(design, conditions)
    assert broken(ev) == {rule}
    assert ev.violations[rule] == pytest.approx(expected, rel=1e-9)
    assert not ev.feasible


def test_far_band_is_ten_percent_either_way(massing):
    design = block((12, 20), (8, 24), 14.0)  # FAR 2
    assert massing.evaluate(design, {**BRIEF, "far": 2.0 / 1.1 + 1e-9}).violations["far_band"] == 0.0
    assert massing.evaluate(design, {**BRIEF, "far": 2.0 / 0.9 - 1e-9}).violations["far_band"] == 0.0
    over = massing.evaluate(design, {**BRIEF, "far": 1.6})
    assert over.violations["far_band"] == pytest.approx((2.0 - 1.76) / 1.6)


def test_lone_cube_facade_sun_and_compactness(massing):
    # A 7 x 7 cell (14 m) cube of four 3.5 m storeys (14 m) in the open: at 40 degrees north the
    # winter sun reaches the south face at every hour, the east face at 9 h and the west face at
    # 15 h, never the north.
    design = block((4, 11), (12, 19), 14.0)
    brief = {**BRIEF, "parcel_width": 0.8, "parcel_depth": 0.8, "far": 1.0}
    ev = massing.evaluate(design, brief)
    assert ev.objectives["facade_daylight"] == pytest.approx(0.75)
    assert ev.objectives["compactness"] == pytest.approx(1.0)
    assert ev.objectives["quality"] == pytest.approx(
        ev.objectives["facade_daylight"] + 0.5 * ev.objectives["compactness"] - ev.objectives["shadow"]
    )


def test_shadow_objective_is_the_mean_shaded_share_off_the_parcel(massing):
    design = block((12, 16), (10, 20), 42.0)
    ev = massing.evaluate(design, BRIEF)
    off = ~massing.parcel_mask(BRIEF)
    shares = [shadow_mask(design, 2.0, a, e)[off].mean() for a, e in massing.sun_positions(BRIEF)]
    assert ev.objectives["shadow"] == pytest.approx(np.mean(shares))
    assert 0.0 < ev.objectives["shadow"] < 1.0


def test_empty_site_is_judged_with_finite_numbers(massing):
    ev = massing.evaluate(np.zeros((32, 32)), BRIEF)
    assert broken(ev) == {"far_band"} and ev.violations["far_band"] == pytest.approx(0.9)
    assert ev.objectives["compactness"] == 0.0 and ev.objectives["facade_daylight"] == 0.0
    assert ev.objectives["shadow"] == 0.0


@pytest.mark.parametrize(
    "design, message",
    [
        (np.full((32, 32), -1.0), r"heights must lie in \[0, 60\] m"),
        (np.full((32, 32), 61.0), r"heights must lie in \[0, 60\] m"),
        (np.zeros((16, 16)), r"shape \(32, 32\)"),
        (np.full((32, 32), np.nan), "NaN"),
    ],
)
def test_bad_designs_are_refused(massing, design, message):
    with pytest.raises(ValueError, match=message):
        massing.evaluate(design, BRIEF)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="at least 16"):
        Massing(size=8)
    with pytest.raises(ValueError, match="min_plate_m"):
        Massing(min_plate_m=0.0)


def test_render_shows_the_noon_shadow(massing):
    tower = block((20, 28), (12, 20), 35.0)
    plain = massing.render(tower)
    assert plain.shape == (32 * 12, 32 * 12, 3) and plain.dtype == np.uint8
    drawn = massing.render(tower, BRIEF)
    assert drawn.shape == plain.shape and drawn.dtype == np.uint8
    px = 12
    north = (slice(14 * px, 19 * px), slice(13 * px, 19 * px))  # ground just north of the tower
    assert drawn[north].mean() < 0.75 * plain[north].mean()
    south = (slice(29 * px, 32 * px), slice(13 * px, 19 * px))  # the street, in the sun
    assert drawn[south].mean() > 180
    assert plain[21 * px : 27 * px, 13 * px : 19 * px].std(axis=(0, 1)).max() < 1  # an even roof colour
    assert len(np.unique(drawn.reshape(-1, 3), axis=0)) > len(np.unique(plain.reshape(-1, 3), axis=0))


def test_make_massing_meets_a_brief(massing):
    rng = np.random.default_rng(5)
    heights = make_massing(massing, BRIEF, rng)
    assert heights is not None and heights.dtype == np.float32
    assert massing.evaluate(heights, BRIEF).feasible
    assert np.allclose(heights / 3.5, np.round(heights / 3.5))  # whole storeys


def test_make_massing_gives_up_on_an_impossible_brief(massing):
    # The smallest buildable area (8 x 8 cells of a 16 x 16 parcel) under 15 m holds FAR 1 at most.
    brief = {**BRIEF, "setback_front": 8.0, "setback_side": 8.0, "setback_rear": 8.0, "far": 3.5}
    assert make_massing(massing, brief, np.random.default_rng(0)) is None


def test_make_massings_is_the_same_for_any_number_of_workers(massing):
    one, briefs_one, stats = make_massings(6, seed=11, workers=1, progress=False)
    two, briefs_two, _ = make_massings(6, seed=11, workers=2, progress=False)
    assert one.shape == (6, 32, 32) and one.dtype == np.float32
    assert np.array_equal(one, two) and briefs_one == briefs_two
    assert set(stats) == {"briefs_tried", "briefs_failed", "seconds"}
    assert all(massing.evaluate(h, c).feasible for h, c in zip(one, briefs_one, strict=True))


def test_make_massings_meets_most_briefs_with_varied_designs(massing):
    heights, briefs, stats = make_massings(40, seed=0, progress=False)
    assert stats["briefs_failed"] / stats["briefs_tried"] < 0.1
    assert stats["briefs_tried"] == 40 + stats["briefs_failed"]
    evaluations = [massing.evaluate(h, c) for h, c in zip(heights, briefs, strict=True)]
    assert all(ev.feasible for ev in evaluations)
    # Varied: no two alike, many footprints and heights, courtyards as well as solid blocks.
    assert len({h.tobytes() for h in heights}) == 40
    assert len({int((h > 0).sum()) for h in heights}) > 25
    assert len({float(h.max()) for h in heights}) > 8
    assert np.std([ev.objectives["compactness"] for ev in evaluations]) > 0.05


def test_designs_are_judged_as_built_in_whole_storeys(massing):
    # A generator's soft edges: a few decimetres of height in the setbacks and a top storey short
    # of its full height. Whole storeys are what is built, so the thin film builds nothing.
    brief = {**BRIEF, "far": 1.0}
    crisp = block((8, 22), (9, 23), 7.0)
    soft = crisp + 0.4
    soft[8:22, 9:23] = 10.4  # two whole storeys and 3.4 m that is not a third
    for design in (crisp, soft):
        np.testing.assert_array_equal(massing.as_built(design), np.where(crisp > 0, 7.0, 0.0))
    a, b = massing.evaluate(crisp, brief), massing.evaluate(soft, brief)
    assert a.violations == b.violations and a.objectives == b.objectives
