"""scripts/train_generator.py on a SIMP data set, for real at a tiny size: weights, card, TensorBoard."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from designgym import generators

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def run(script, *args):
    result = subprocess.run([sys.executable, str(SCRIPTS / script), *map(str, args)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def test_structures_generator_is_trained_measured_and_logged(tmp_path):
    data = tmp_path / "cantilever.npz"
    run("make_structures_dataset.py", "--problem", "cantilever", "--n", "20", "--nelx", "16", "--nely", "8",
        "--max-iter", "20", "--workers", "1", "--out", data)
    run("train_generator.py", "--data", data, "--mirror", "--epochs", "3", "--batch-size", "8",
        "--latent-dim", "4", "--channels", "8", "--out", tmp_path / "weights", "--tb", tmp_path / "tb")

    card = generators.card("cantilever-vae", tmp_path / "weights")
    assert card["design_shape"] == [8, 16] and card["problem"] == "cantilever"
    assert card["data"]["n_heldout"] == 2 and card["data"]["n_train"] == 2 * 18  # mirrored
    metrics = card["metrics"]
    for key in ("heldout_iou_mean", "heldout_compliance_ratio_median", "prior_floating_rate", "prior_load_path_rate"):
        assert np.isfinite(metrics[key]), key
    assert 0 <= metrics["prior_floating_rate"] <= 1 and 0 <= metrics["heldout_iou_mean"] <= 1
    model = generators.load("cantilever-vae", device="cpu", directory=tmp_path / "weights")
    assert model.decode_numpy(np.zeros((2, 4), np.float32)).shape == (2, 8, 16)

    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0})
    events.Reload()
    assert [e.step for e in events.Scalars("loss/reconstruction")] == [1, 2, 3]
    image = events.Images("samples/prior")[-1]
    assert image.step == 3 and image.width == 4 * 17 - 1 and image.height == 4 * 9 - 1  # 4 x 4 tiles of 8 x 16
    assert json.loads((tmp_path / "weights" / "cantilever-vae.json").read_text())["sha256"] == card["sha256"]


def test_mirroring_is_refused_where_it_is_not_exact(tmp_path):
    data = tmp_path / "mbb.npz"
    run("make_structures_dataset.py", "--problem", "mbb", "--n", "4", "--nelx", "16", "--nely", "8",
        "--max-iter", "5", "--workers", "1", "--out", data)
    result = subprocess.run([sys.executable, str(SCRIPTS / "train_generator.py"), "--data", str(data), "--mirror",
                             "--out", str(tmp_path / "w")], capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "--mirror holds only for the cantilever and the bracket" in result.stderr


def test_architecture_generator_keeps_its_data_and_loads_as_a_conditional_generator(tmp_path):
    data, weights = tmp_path / "plans.npz", tmp_path / "weights"
    args = ("--problem", "floor_plan", "--n-designs", "60", "--epochs", "1", "--latent-dim", "4",
            "--channels", "8", "--metric-briefs", "8", "--workers", "1", "--data", data, "--out", weights)
    run("train_architecture_generator.py", *args)
    kept = data.read_bytes()
    run("train_architecture_generator.py", *args)  # reads the kept designs back instead of making them
    assert data.read_bytes() == kept

    card = generators.card("floorplan-cvae", weights)
    assert card["data"]["n_designs"] == 60 and card["data"]["n_heldout"] == 3
    assert card["config"]["classes"] == 6 and card["config"]["coord_head"] is True
    generator = generators.load("floorplan-cvae", device="cpu", directory=weights)
    assert generator.condition_keys == tuple(card["conditions"]["keys"])
    plans = generator.decode_numpy(np.zeros((2, 4), np.float32), np.zeros((2, generator.conditions_dim), np.float32))
    assert set(np.unique(plans)) <= set(range(6))

    other = ("--problem", "floor_plan", "--n-designs", "61", "--epochs", "1", "--data", data, "--out", weights)
    result = subprocess.run([sys.executable, str(SCRIPTS / "train_architecture_generator.py"), *map(str, other)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode != 0 and "pass another --data file or delete it" in result.stderr


# -- conditional structure generators and mirrored load cases, in process at a tiny size ---------------


def train_generator_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_generator", SCRIPTS / "train_generator.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_cantilever_data(path, n=10):
    """A data set in make_structures_dataset.py's format, without SIMP: repaired random fields."""
    from designgym.envs.structures.problems import Cantilever

    problem = Cantilever(16, 8)
    rng = np.random.default_rng(0)
    conditions = [problem.sample_conditions(rng) for _ in range(n)]
    designs = np.stack([problem.repair(rng.random((8, 16)), c) for c in conditions])
    compliance = [problem.evaluate(d, c).objectives["compliance"] for d, c in zip(designs, conditions, strict=True)]
    settings = {"problem": "cantilever", "n": n, "nelx": 16, "nely": 8, "max_iter": 0, "seed": 0, "shard_size": n}
    np.savez_compressed(path, designs=designs.astype(np.float16), compliance=np.array(compliance),
                        settings=json.dumps(settings),
                        **{f"conditions/{k}": np.array([c[k] for c in conditions]) for k in conditions[0]})


def test_conditional_structures_generator_is_trained_with_mirrored_conditions(tmp_path):
    from designgym.envs.latent_env import LatentDesignEnv
    from designgym.envs.structures.problems import AMBracket, Cantilever

    script = train_generator_module()
    data, weights = tmp_path / "cantilever.npz", tmp_path / "weights"
    tiny_cantilever_data(data)
    code = script.main(["--data", str(data), "--conditional", "--coord-head", "--mirror", "--epochs", "1",
                        "--batch-size", "8", "--latent-dim", "2", "--channels", "8", "--device", "cpu",
                        "--out", str(weights)])
    assert code == 0
    card = generators.card("cantilever-cvae", weights)  # the default name of a conditional one
    # The keys of the conditions vector, in the order of the problem's conditions space (sorted).
    assert card["conditions"]["keys"] == ["load_angle", "load_y", "volfrac"]
    assert card["conditions"]["keys"] == list(Cantilever(16, 8).conditions_space.spaces)
    assert card["conditions"]["problem"] == "cantilever"
    assert card["data"]["n_train"] == 2 * 9 and card["data"]["mirrored"] is True  # designs and conditions
    assert card["training"]["coord_head"] is True
    generator = generators.load("cantilever-cvae", device="cpu", directory=weights)
    assert generator.conditions_dim == 3 and generator.coord_head
    assert generator.condition_keys == ("load_angle", "load_y", "volfrac")
    designs = generator.decode_numpy(np.zeros((2, 2), np.float32), np.array([[-1, -1, -1], [1, 1, 1]], np.float32))
    assert designs.shape == (2, 8, 16)
    # It drives the cantilever, and the bracket too: its conditions are a subset of the bracket's.
    for problem in (Cantilever(16, 8), AMBracket(16, 8)):
        env = LatentDesignEnv(problem, generator)
        env.reset(seed=0)
        assert env.generator_conditions().shape == (3,)


def test_conditional_training_needs_a_data_set():
    with pytest.raises(SystemExit, match="--conditional needs --data: the extrusion sections have no conditions"):
        train_generator_module().main(["--conditional", "--epochs", "1"])


@pytest.mark.parametrize("seed", range(3))
def test_a_mirrored_design_under_mirrored_conditions_is_as_stiff(seed):
    from designgym.envs.structures.problems import Cantilever

    script = train_generator_module()
    problem = Cantilever(16, 8)
    rng = np.random.default_rng(seed)
    design = (rng.random((1, 8, 16)) < 0.7).astype(np.float32)
    design[0, :, :2] = 1.0  # held at the clamp, so that the solve is well conditioned
    conditions = problem.sample_conditions(rng)
    (mirrored,) = script.mirrored_conditions([conditions])
    assert mirrored == {"volfrac": conditions["volfrac"], "load_y": 1.0 - conditions["load_y"],
                        "load_angle": -conditions["load_angle"]}
    flipped = script.mirrored_cantilevers(design)
    np.testing.assert_array_equal(flipped[0], design[0, ::-1])
    original = problem.evaluate(design[0], conditions).objectives["compliance"]
    assert problem.evaluate(flipped[0], mirrored).objectives["compliance"] == pytest.approx(original, rel=1e-9)
    # Not a coincidence of the design: the flipped one under the original load differs.
    assert problem.evaluate(flipped[0], conditions).objectives["compliance"] != pytest.approx(original, rel=1e-3)


@pytest.mark.parametrize("direction", range(4))
def test_a_mirrored_bracket_is_judged_as_the_original(direction):
    # Flipped top to bottom, a bracket built up is one built down: every rule and the stiffness agree.
    from designgym.envs.structures.problems import AMBracket

    script = train_generator_module()
    problem = AMBracket(16, 8)
    rng = np.random.default_rng(direction)
    design = (rng.random((1, 8, 16)) < 0.6).astype(np.float32)
    design[0, :, :2] = 1.0
    conditions = {**problem.sample_conditions(rng), "build_direction": direction}
    (mirrored,) = script.mirrored_conditions([conditions])
    assert mirrored["build_direction"] == {0: 2, 1: 1, 2: 0, 3: 3}[direction]
    original = problem.evaluate(design[0], conditions)
    flipped = problem.evaluate(script.mirrored_cantilevers(design)[0], mirrored)
    assert flipped.violations == pytest.approx(original.violations, rel=1e-9, abs=1e-12)
    assert flipped.objectives["compliance"] == pytest.approx(original.objectives["compliance"], rel=1e-9)


def test_optima_that_break_a_rule_can_be_left_out_of_training(tmp_path):
    script = train_generator_module()
    data, weights = tmp_path / "cantilever.npz", tmp_path / "weights"
    from designgym.envs.structures.problems import Cantilever

    tiny_cantilever_data(data, n=12)
    with np.load(data) as stored:
        parts = dict(stored)
    problem = Cantilever(16, 8)
    for i in range(12):  # legal designs: a band through the load's row, from the clamp to the load
        conditions = {k.split("/", 1)[1]: float(parts[k][i]) for k in parts if k.startswith("conditions/")}
        row = round(conditions["load_y"] * 8)
        field = 1.0 - np.abs(np.arange(8)[:, None] + 0.5 - row) / 8 * np.ones((1, 16))
        parts["designs"][i] = problem.repair(field, conditions)
        assert problem.evaluate(parts["designs"][i].astype(np.float32), conditions).feasible
    parts["designs"][3] = 0.0  # an optimum that lost everything: it floats and carries no load
    np.savez_compressed(data, **parts)
    code = script.main(["--data", str(data), "--drop-infeasible", "--epochs", "1", "--batch-size", "8",
                        "--latent-dim", "2", "--channels", "8", "--device", "cpu", "--out", str(weights)])
    assert code == 0
    card = generators.card("cantilever-vae", weights)
    assert card["data"]["n_dropped_infeasible"] == 1 and card["data"]["n_designs"] == 11
