"""Procedural extrusion sections: the rules every section must meet, determinism, and argument errors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from designgym.envs.extrusion.sections import SECTION_FAMILIES, make_sections, random_section

# Written out here rather than imported so that the test states the intent independently.
EXPECTED_HOLLOWS = {
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


def count_hollows(section: np.ndarray) -> int:
    """8-connected void components that do not touch the grid border."""
    labels, count = ndimage.label(~section, structure=np.ones((3, 3)))
    on_border = set(np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])))
    return sum(1 for label in range(1, count + 1) if label not in on_border)


def rule_violations(section: np.ndarray, min_wall: int) -> list[str]:
    """Names of the hard requirements the section breaks (empty when it meets all of them)."""
    broken = []
    if ndimage.label(section)[1] != 1:
        broken.append("not exactly one 4-connected piece")
    if not np.array_equal(ndimage.binary_opening(section, structure=np.ones((min_wall, min_wall))), section):
        broken.append(f"feature thinner than {min_wall}")
    if not 0.08 <= section.mean() <= 0.7:
        broken.append(f"area fraction {section.mean():.3f}")
    if count_hollows(section) > 2:
        broken.append("more than two hollows")
    return broken


def test_families_cover_the_brief() -> None:
    assert len(set(SECTION_FAMILIES)) == len(SECTION_FAMILIES)
    assert set(SECTION_FAMILIES) == set(EXPECTED_HOLLOWS)


@pytest.mark.parametrize("family", SECTION_FAMILIES)
def test_every_section_meets_the_rules(family: str) -> None:
    rng = np.random.default_rng(list(SECTION_FAMILIES).index(family))
    extents = set()
    for _ in range(300):
        section = random_section(rng, family=family)
        assert section.shape == (32, 32) and section.dtype == bool
        assert rule_violations(section, 2) == []
        assert count_hollows(section) == EXPECTED_HOLLOWS[family]
        rows, cols = np.nonzero(section)
        extents.add((rows.max() - rows.min() + 1, cols.max() - cols.min() + 1))
    # Sizes vary and use a good part of the grid, sometimes all of it.
    assert len(extents) > 12
    assert min(max(extent) for extent in extents) >= 9
    if family not in ("rect_bar", "round_bar"):
        assert any(max(extent) == 32 for extent in extents)


@pytest.mark.parametrize("family", SECTION_FAMILIES)
def test_rules_hold_on_other_grids_and_walls(family: str) -> None:
    rng = np.random.default_rng(7)
    for shape, min_wall in (((24, 40), 3), ((48, 32), 2), ((32, 32), 1)):
        for _ in range(20):
            section = random_section(rng, shape=shape, family=family, min_wall=min_wall)
            assert section.shape == shape
            assert rule_violations(section, min_wall) == []
            assert count_hollows(section) == EXPECTED_HOLLOWS[family]


def test_orientation_is_random() -> None:
    # An angle's corner is in one of the four corners of its bounding box; all four must occur.
    rng = np.random.default_rng(3)
    corners = set()
    for _ in range(100):
        section = random_section(rng, family="angle")
        rows, cols = np.nonzero(section)
        box = section[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        corners.add((bool(box[0, 0]), bool(box[0, -1]), bool(box[-1, 0]), bool(box[-1, -1])))
    assert len(corners) == 4


def test_make_sections_mixes_families_and_meets_the_rules() -> None:
    data = make_sections(500, seed=11, progress=False)
    assert data.shape == (500, 32, 32) and data.dtype == np.uint8
    assert set(np.unique(data)) == {0, 1}
    sections = data.astype(bool)
    for section in sections:
        assert rule_violations(section, 2) == []
    hollows = np.bincount([count_hollows(section) for section in sections], minlength=3)
    # Open sections and bars (7 of 11 families), tubes (2) and two-cell boxes (1) all appear.
    assert hollows[0] > 200 and hollows[1] > 40 and hollows[2] > 15
    # Round bars have few free parameters, so an occasional repeat is expected.
    assert len({section.tobytes() for section in sections}) > 0.97 * len(sections)


def test_random_section_is_determined_by_the_generator_state() -> None:
    first = [random_section(np.random.default_rng(5)) for _ in range(2)]
    assert np.array_equal(first[0], first[1])


def test_make_sections_is_deterministic_for_any_worker_count() -> None:
    serial = make_sections(120, seed=4, progress=False)
    assert np.array_equal(serial, make_sections(120, seed=4, progress=False))
    assert np.array_equal(serial, make_sections(120, seed=4, workers=2, progress=False))
    # Each sample has its own seed, so a shorter run is a prefix of a longer one.
    assert np.array_equal(serial[:50], make_sections(50, seed=4, progress=False))
    assert not np.array_equal(serial, make_sections(120, seed=5, progress=False))


def test_make_sections_progress_bar_and_empty_request(capsys: pytest.CaptureFixture[str]) -> None:
    assert make_sections(3, seed=0, progress=True).shape == (3, 32, 32)
    assert "3/3" in capsys.readouterr().err
    make_sections(3, seed=0, progress=False)
    assert capsys.readouterr().err == ""
    assert make_sections(0, shape=(16, 24), progress=False).shape == (0, 16, 24)


def test_unknown_family_is_rejected_with_the_known_names() -> None:
    with pytest.raises(ValueError, match="hexagon") as error:
        random_section(np.random.default_rng(0), family="hexagon")
    for family in SECTION_FAMILIES:
        assert family in str(error.value)


@pytest.mark.parametrize(
    "kwargs",
    [{"n": -1}, {"n": 2, "workers": 0}, {"n": 2, "min_wall": 0}, {"n": 2, "shape": (32,)}],
)
def test_make_sections_rejects_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        make_sections(progress=False, **kwargs)
