"""scripts/train_generator.py on a SIMP data set, for real at a tiny size: weights, card, TensorBoard."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
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
    assert result.returncode != 0 and "--mirror is exact only for the cantilever" in result.stderr


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
