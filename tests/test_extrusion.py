"""The extrusion problem: section properties against hand formulas, and each rule on a planted section."""

import numpy as np
import pytest
from conftest import i_beam

from designgym.envs.extrusion.problem import Extrusion, bending_second_moment, second_moments, section_second_moment


def rect_inertia(b, h):
    return b * h**3 / 12.0


def test_solid_square_has_shape_factor_one_about_any_axis(extrusion):
    grid = np.zeros((32, 32), dtype=np.float32)
    grid[8:24, 8:24] = 1  # 16 x 16 = 0.25 of the grid
    for angle in (0.0, 30.0, 45.0, 90.0):
        ev = extrusion.evaluate(grid, {"area_fraction": 0.25, "axis_angle": angle, "max_hollows": 0})
        assert ev.objectives["shape_factor"] == pytest.approx(1.0, rel=1e-12)
        assert ev.objectives["second_moment"] == pytest.approx(16**4 / 12, rel=1e-12)


def test_i_beam_second_moment_matches_parallel_axis_theorem():
    size, flange, web, width = 32, 3, 2, 24
    mask = i_beam(size, flange, web, width) >= 0.5
    area, ixx, iyy, ixy = second_moments(mask)
    web_h = size - 2 * flange
    # Flanges: own inertia plus area times distance from the centroid squared.
    d = size / 2 - flange / 2
    expected_ixx = 2 * (rect_inertia(width, flange) + width * flange * d**2) + rect_inertia(web, web_h)
    expected_iyy = 2 * rect_inertia(flange, width) + rect_inertia(web_h, web)
    assert area == 2 * width * flange + web * web_h
    assert ixx == pytest.approx(expected_ixx, rel=1e-12)
    assert iyy == pytest.approx(expected_iyy, rel=1e-12)
    assert ixy == pytest.approx(0.0, abs=1e-9)


def test_product_of_inertia_sign_and_rotated_axis_of_an_angle_section():
    # An L with legs along the top and the left: its principal axes are tilted, so the rotation
    # formula must agree with the second moment summed about the tilted axis directly.
    grid = np.zeros((32, 32), dtype=bool)
    grid[4:8, 4:28] = True
    grid[4:28, 4:8] = True
    area, ixx, iyy, ixy = second_moments(grid)
    # The top leg reaches up-right of the centroid and the left leg down-left: x and y (y up)
    # move together, so the product of inertia is positive.
    assert ixy > 0
    # I about the 45 degree axis from first principles: d = (-x + y) / sqrt 2.
    rows, cols = np.nonzero(grid)
    x, y = cols + 0.5, -(rows + 0.5)
    x, y = x - x.mean(), y - y.mean()
    direct = np.sum(((-x + y) / np.sqrt(2)) ** 2) + area / 12
    assert bending_second_moment(ixx, iyy, ixy, 45.0) == pytest.approx(direct, rel=1e-12)
    assert bending_second_moment(ixx, iyy, ixy, 90.0) == pytest.approx(iyy, rel=1e-12)


def test_turning_the_section_a_quarter_turn_swaps_the_axes(extrusion):
    beam = i_beam()
    c0 = {"area_fraction": 0.3, "axis_angle": 0.0, "max_hollows": 0}
    c90 = {**c0, "axis_angle": 90.0}
    upright = extrusion.evaluate(beam, c0).objectives["shape_factor"]
    assert extrusion.evaluate(np.rot90(beam), c90).objectives["shape_factor"] == pytest.approx(upright)
    # An I-beam is much stiffer about its strong axis.
    assert upright > 2.5 * extrusion.evaluate(beam, c90).objectives["shape_factor"]


def area_of(design):
    return float((design >= 0.5).mean())


def test_i_beam_meets_every_rule(extrusion):
    beam = i_beam()
    ev = extrusion.evaluate(beam, {"area_fraction": area_of(beam), "axis_angle": 0.0, "max_hollows": 0})
    assert ev.feasible
    assert all(v == 0.0 for v in ev.violations.values())
    assert ev.objectives["pieces"] == 1 and ev.objectives["hollows"] == 0


def planted():
    beam = i_beam()
    island = beam.copy()
    island[12:14, 2:4] = 1
    thin = beam.copy()
    thin[15, 17:26] = 1  # a one-cell fin off the web
    tube = np.zeros((32, 32), dtype=np.float32)
    tube[4:28, 4:28] = 1
    tube[7:25, 7:25] = 0
    return {"disconnected": island, "thin_walls": thin, "hollow_excess": tube}


@pytest.mark.parametrize("rule", ["disconnected", "thin_walls", "hollow_excess"])
def test_planted_section_breaks_exactly_its_rule(extrusion, rule):
    design = planted()[rule]
    conditions = {"area_fraction": area_of(design), "axis_angle": 0.0, "max_hollows": 0}
    ev = extrusion.evaluate(design, conditions)
    broken = {k for k, v in ev.violations.items() if v > 0}
    assert broken == {rule}
    assert not ev.feasible


def test_hollow_allowed_by_the_conditions_is_fine(extrusion):
    tube = planted()["hollow_excess"]
    ev = extrusion.evaluate(tube, {"area_fraction": area_of(tube), "axis_angle": 0.0, "max_hollows": 1})
    assert ev.feasible and ev.objectives["hollows"] == 1


def test_area_mismatch_has_a_tolerance_band(extrusion):
    beam = i_beam()
    a = area_of(beam)
    inside = extrusion.evaluate(beam, {"area_fraction": a * 1.04, "axis_angle": 0.0, "max_hollows": 0})
    assert inside.violations["area_mismatch"] == 0.0
    target = 0.45
    outside = extrusion.evaluate(beam, {"area_fraction": target, "axis_angle": 0.0, "max_hollows": 0})
    assert outside.violations["area_mismatch"] == pytest.approx(abs(a - target) / target - 0.05)
    assert {k for k, v in outside.violations.items() if v > 0} == {"area_mismatch"}


def test_empty_design_is_infeasible_but_finite(extrusion):
    ev = extrusion.evaluate(np.zeros((32, 32)), extrusion.default_conditions())
    assert ev.objectives["shape_factor"] == 0.0
    assert ev.violations["disconnected"] == 1.0
    assert all(np.isfinite(v) for v in [*ev.objectives.values(), *ev.violations.values()])


def test_render_draws_the_section_and_the_neutral_axis(extrusion):
    beam = i_beam()
    plain = extrusion.render(beam)
    assert plain.shape == (32 * 8, 32 * 8, 3) and plain.dtype == np.uint8
    with_axis = extrusion.render(beam, {"area_fraction": 0.3, "axis_angle": 0.0, "max_hollows": 0})
    red = (with_axis[:, :, 0] > 200) & (with_axis[:, :, 1] < 60)
    rows = np.nonzero(red.any(axis=1))[0]
    assert red.sum() > 0 and abs(rows.mean() - 128) < 2  # horizontal axis through the middle


@pytest.mark.parametrize(
    "kwargs, message", [({"size": 4}, "at least 8"), ({"min_wall": 0}, "min_wall"), ({"min_wall": 9}, "min_wall")]
)
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Extrusion(**kwargs)


def test_stiffness_is_measured_against_a_solid_square_of_the_target_material(extrusion):
    grid = np.zeros((32, 32), dtype=np.float32)
    grid[8:24, 8:24] = 1  # 16 x 16 = 0.25 of the grid
    on_target = extrusion.evaluate(grid, {"area_fraction": 0.25, "axis_angle": 0.0, "max_hollows": 0})
    assert on_target.objectives["stiffness"] == pytest.approx(1.0, rel=1e-12)
    # The same bar judged against more material is less stiff than what that material could make.
    more = extrusion.evaluate(grid, {"area_fraction": 0.4, "axis_angle": 0.0, "max_hollows": 0})
    assert more.objectives["stiffness"] == pytest.approx((0.25 / 0.4) ** 2, rel=1e-12)
    assert more.objectives["shape_factor"] == pytest.approx(1.0, rel=1e-12)


def test_pieces_not_welded_together_bend_on_their_own():
    # Two flanges with no web: each bends about its own centroid, far less than an I-beam's flanges.
    flanges = np.zeros((32, 32), dtype=bool)
    flanges[0:3, 4:28] = True
    flanges[29:32, 4:28] = True
    one_flange = rect_inertia(24, 3)
    assert section_second_moment(flanges, 0.0) == pytest.approx(2 * one_flange, rel=1e-12)
    # Welded by a web, the parallel-axis terms count.
    beam = i_beam(32, 3, 2, 24) >= 0.5
    _, ixx, iyy, ixy = second_moments(beam)
    assert section_second_moment(beam, 0.0) == pytest.approx(ixx, rel=1e-12)
    assert section_second_moment(beam, 30.0) == pytest.approx(bending_second_moment(ixx, iyy, ixy, 30.0), rel=1e-12)
    assert section_second_moment(beam, 0.0) > 20 * section_second_moment(flanges, 0.0)


def test_far_apart_islands_do_not_look_stiff(extrusion):
    islands = np.zeros((32, 32), dtype=np.float32)
    islands[0:4, 0:4] = 1
    islands[28:32, 28:32] = 1
    ev = extrusion.evaluate(islands, {"area_fraction": 0.15, "axis_angle": 0.0, "max_hollows": 0})
    assert ev.objectives["stiffness"] < 0.05


def test_repair_gives_a_section_that_keeps_the_area_wall_and_piece_rules():
    import gymnasium as gym

    problem = Extrusion()
    rng = np.random.default_rng(3)
    env = gym.make("designgym/Extrusion-v2").unwrapped
    for _ in range(20):
        conditions = problem.sample_conditions(rng)
        raw = env.generator.decode_numpy(rng.standard_normal((1, 8)).astype(np.float32))[0]
        repaired = problem.repair(raw, conditions)
        violations = problem.evaluate(repaired, conditions).violations
        assert violations["area_mismatch"] == 0.0 and violations["thin_walls"] == 0.0
        assert violations["disconnected"] == 0.0
        assert set(np.unique(repaired)) <= {0.0, 1.0}


def test_repair_leaves_a_legal_section_as_it_is():
    problem = Extrusion()
    section = np.zeros((32, 32), np.float32)
    section[4:8, 6:26] = 1.0  # flanges and web of an I, each at least 2 cells thick
    section[24:28, 6:26] = 1.0
    section[8:24, 14:18] = 1.0
    conditions = {"area_fraction": float(section.mean()), "axis_angle": 0.0, "max_hollows": 0}
    assert problem.evaluate(section, conditions).feasible
    np.testing.assert_array_equal(problem.repair(section, conditions), section)
