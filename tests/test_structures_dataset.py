"""The SIMP data-set script, run for real with a tiny budget: output, determinism and resume."""

import subprocess
import sys
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_structures_dataset.py"


def make(out, *extra):
    args = [sys.executable, str(SCRIPT), "--problem", "mbb", "--n", "5", "--nelx", "12", "--nely", "4",
            "--max-iter", "15", "--shard-size", "2", "--out", str(out), *extra]
    return subprocess.run(args, capture_output=True, text=True, timeout=300)


def test_dataset_is_complete_resumable_and_deterministic(tmp_path):
    first = make(tmp_path / "a.npz", "--workers", "2")
    assert first.returncode == 0, first.stderr
    data = np.load(tmp_path / "a.npz")
    assert data["designs"].shape == (5, 4, 12)
    assert data["compliance"].shape == (5,) and np.all(np.isfinite(data["compliance"]))
    assert np.all((data["conditions/volfrac"] >= 0.3) & (data["conditions/volfrac"] <= 0.6))
    # The binary reference holds the volume: each design's solid fraction is its target, to one cell.
    np.testing.assert_allclose(data["designs"].astype(float).mean(axis=(1, 2)), data["conditions/volfrac"], atol=1 / 48)

    # Interrupted run: one shard missing. Resuming redoes only that shard and gives the same data.
    assert make(tmp_path / "b.npz", "--workers", "1").returncode == 0
    shards = sorted((tmp_path / "b.npz.shards").glob("shard-*.npz"))
    assert len(shards) == 3
    shards[1].unlink()
    kept = shards[0].stat().st_mtime_ns
    resumed = make(tmp_path / "b.npz", "--workers", "1")
    assert resumed.returncode == 0, resumed.stderr
    assert shards[0].stat().st_mtime_ns == kept and shards[1].exists()
    again = np.load(tmp_path / "b.npz")
    for key in ("designs", "compliance", "conditions/load_x"):
        np.testing.assert_array_equal(again[key], data[key])


def test_other_settings_on_the_same_shards_are_refused(tmp_path):
    assert make(tmp_path / "c.npz", "--workers", "1").returncode == 0
    args = [sys.executable, str(SCRIPT), "--problem", "mbb", "--n", "5", "--nelx", "14", "--nely", "4",
            "--max-iter", "15", "--shard-size", "2", "--out", str(tmp_path / "c.npz"), "--workers", "1"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "other settings" in result.stderr
