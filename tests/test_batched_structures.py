"""The structures as batched torch work: the block Cholesky solve, the repair, the rules, and the
vector env that keeps a step on the generator's device. On the CPU here; on CUDA where present."""

import numpy as np
import pytest
import torch
from fem_reference import reference_compliance
from scipy import ndimage

from designgym.envs.manufacturing import SOLID_CONNECTIVITY
from designgym.envs.structures.batched import TorchFE, joined
from designgym.envs.structures.fem import FEModel
from designgym.envs.structures.problems import MBB, AMBracket, Cantilever
from designgym.envs.vector import make_batched_vec_env

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def carrying_designs(problem, rng, n):
    """Designs that carry their load (a gain above the floor; elsewhere compliance measures the 1e-9
    void, where CHOLMOD and SuperLU differ by 1e-4 too): a solid plate, a grey field, and 0/1 fields
    made by the problem's own repair from smooth random densities."""
    rows, cols = problem.nely, problem.nelx
    out = [np.ones((rows, cols)), rng.uniform(0.05, 1.0, (rows, cols))]
    while len(out) < n:
        conditions = problem.sample_conditions(rng)
        smooth = ndimage.gaussian_filter(rng.uniform(size=(rows, cols)), 3)
        design = problem.repair(smooth, conditions)
        if problem.evaluate(design, conditions).objectives["log_stiffness_gain"] > problem.gain_floor:
            out.append(design.astype(np.float64))
    return np.stack(out)


@pytest.mark.parametrize("problem", [Cantilever(), MBB(), Cantilever(nelx=13, nely=7)], ids=["64x32", "mbb", "13x7"])
def test_the_block_cholesky_compliance_agrees_with_cholmod_to_1e_6(problem):
    rng = np.random.default_rng(0)
    designs = carrying_designs(problem, rng, 10)
    forces = np.stack([problem.force_vector(problem.sample_conditions(rng)) for _ in designs])
    expected = problem.model.compliance_batch(designs, forces)
    got = TorchFE(problem.model).compliance(torch.as_tensor(designs), torch.as_tensor(forces)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_the_block_cholesky_compliance_agrees_with_the_textbook_reference():
    problem = Cantilever(nelx=10, nely=6)
    rng = np.random.default_rng(1)
    density = rng.uniform(0.1, 1.0, (6, 10))
    force = problem.force_vector({"volfrac": 0.5, "load_y": 0.5, "load_angle": 30.0})
    expected = reference_compliance(density, problem.model.fixed, force)
    got = TorchFE(problem.model).compliance(torch.as_tensor(density[None]), torch.as_tensor(force[None]))
    assert float(got[0]) == pytest.approx(expected, rel=1e-9)


def test_chunks_and_a_not_positive_definite_matrix():
    problem = Cantilever(nelx=8, nely=4)
    rng = np.random.default_rng(2)
    designs = rng.uniform(0.2, 1.0, (5, 4, 8))
    forces = np.stack([problem.force_vector(problem.default_conditions())] * 5)
    whole = TorchFE(problem.model).compliance(torch.as_tensor(designs), torch.as_tensor(forces))
    chunked = TorchFE(problem.model, batch_chunk=2).compliance(torch.as_tensor(designs), torch.as_tensor(forces))
    np.testing.assert_array_equal(whole.numpy(), chunked.numpy())
    # With no void stiffness an empty region leaves DOFs held by nothing: NaN, where CHOLMOD raises.
    singular = FEModel(8, 4, problem.model.fixed, emin=0.0)
    designs[1, :, 4:] = 0.0
    got = TorchFE(singular).compliance(torch.as_tensor(designs), torch.as_tensor(forces)).numpy()
    assert np.isnan(got[1]) and np.isfinite(np.delete(got, 1)).all()
    with pytest.raises(np.linalg.LinAlgError):
        singular.compliance(designs[1], forces[1])
    with pytest.raises(ValueError, match=r"densities must have shape \(batch, nely, nelx\)"):
        TorchFE(problem.model).compliance(torch.zeros(2, 8, 4), torch.as_tensor(forces[:2]))


def test_joined_finds_the_pieces_that_touch_the_seeds_as_scipy_labels_them():
    rng = np.random.default_rng(3)
    masks = rng.uniform(size=(20, 12, 17)) < 0.55
    seeds = np.zeros((12, 17), dtype=bool)
    seeds[:, 0] = True
    got = joined(torch.as_tensor(masks), torch.as_tensor(seeds).expand(20, -1, -1), check_every=3).numpy()
    for mask, reached in zip(masks, got, strict=True):
        labels, _ = ndimage.label(mask, structure=SOLID_CONNECTIVITY)
        held = np.unique(labels[seeds & mask])
        np.testing.assert_array_equal(reached, np.isin(labels, held[held > 0]))


@pytest.mark.parametrize("problem", [Cantilever(), MBB()], ids=["cantilever", "mbb"])
def test_the_torch_repair_and_rules_equal_the_problem_s_own(problem):
    rng = np.random.default_rng(4)
    raw = rng.uniform(size=(16, problem.nely, problem.nelx)).astype(np.float32)
    raw[:6] = np.stack([ndimage.gaussian_filter(r, 2) for r in raw[:6]])
    raw[6, :, :] = 0.5  # every density tied: the lower flat index wins, as in numpy
    conditions = [problem.sample_conditions(rng) for _ in raw]
    judge = problem.torch_judge("cpu")
    repaired = judge.repair(torch.as_tensor(raw), conditions).numpy()
    expected = np.stack([problem.repair(d, c) for d, c in zip(raw, conditions, strict=True)])
    np.testing.assert_array_equal(repaired, expected)
    designs = np.concatenate([raw, repaired, np.zeros((1, *raw.shape[1:]), np.float32)])
    conditions = conditions * 2 + conditions[:1]
    for (objectives, violations), design, c in zip(judge.evaluate(torch.as_tensor(designs), conditions), designs,
                                                   conditions, strict=True):
        expected = problem.evaluate(design, c)
        assert violations == expected.violations
        assert objectives["volume_fraction"] == expected.objectives["volume_fraction"]
        assert objectives["log_stiffness_gain"] == pytest.approx(expected.objectives["log_stiffness_gain"], rel=1e-6)
        if expected.objectives["log_stiffness_gain"] > problem.gain_floor:
            assert objectives["compliance"] == pytest.approx(expected.objectives["compliance"], rel=1e-6)
        else:  # the load hangs on void (or on a mechanism): compliance measures the 1e-9 void, gain floored
            assert objectives["log_stiffness_gain"] == problem.gain_floor


def assert_same_step(a, b, where):
    """The torch judge's results against the numpy path's: designs and violations exactly, objectives
    to 1e-6 (compliance only where the design carries its load, with a gain above the floor)."""
    assert a.keys() == b.keys(), where
    for key in a:
        if key == "objectives":
            for name, value in a[key].items():
                if name != "compliance" or a["objectives"]["log_stiffness_gain"] > -5.0:
                    assert value == pytest.approx(b[key][name], rel=1e-6, abs=1e-9), f"{where} {name}"
        elif key == "reward_parts":
            assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-9), where
        elif key == "terminal_observation":
            np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-6, err_msg=where)
        elif key in ("latent",):
            np.testing.assert_array_equal(a[key], b[key], err_msg=where)
        else:
            assert a[key] == b[key], f"{where} {key}"


@pytest.mark.parametrize("env_id, kwargs", [("designgym/Cantilever-v1", {}), ("designgym/MBB-v2", {}),
                                            ("designgym/MBB-v2", {"repair": False})])
def test_a_vector_env_judged_by_torch_equals_the_numpy_one(env_id, kwargs):
    n, seed = 6, 11
    on_torch = make_batched_vec_env(env_id, n_envs=n, seed=seed, env_kwargs=kwargs, judge="torch", device="cpu")
    on_numpy = make_batched_vec_env(env_id, n_envs=n, seed=seed, env_kwargs=kwargs, judge="numpy", device="cpu")
    assert (on_torch.judge, on_numpy.judge) == ("torch", "numpy")
    np.testing.assert_array_equal(on_torch.reset(), on_numpy.reset())
    rng = np.random.default_rng(0)
    for t in range(3):
        actions = rng.uniform(-1, 1, (n, *on_torch.action_space.shape)).astype(np.float32)
        obs_t, rew_t, done_t, info_t = on_torch.step(actions)
        obs_n, rew_n, done_n, info_n = on_numpy.step(actions)
        np.testing.assert_allclose(rew_t, rew_n, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(obs_t, obs_n)  # the next episodes' first observations
        np.testing.assert_array_equal(done_t, done_n)
        for i in range(n):
            assert_same_step(info_t[i], info_n[i], f"env {i} step {t}")
            np.testing.assert_array_equal(on_torch.envs[i].final_design, on_numpy.envs[i].final_design)
    on_torch.close()
    on_numpy.close()


def test_a_torch_judged_step_never_takes_the_numpy_path(monkeypatch):
    """Decode, repair, rules and solve as tensor work: the numpy entry points are never called (on a
    GPU these are the round trips to the host that the device judge avoids)."""
    vec = make_batched_vec_env("Cantilever-v1", n_envs=4, seed=0, device="cpu", judge="torch")
    problem, generator = vec.envs[0].problem, vec.envs[0].generator

    def refuse(*args, **kwargs):
        raise AssertionError("a numpy path was taken")

    for name in ("evaluate", "evaluate_batch", "repair"):
        monkeypatch.setattr(problem, name, refuse)
    monkeypatch.setattr(generator, "decode_numpy", refuse)
    monkeypatch.setattr(problem.model, "compliance_batch", refuse)
    vec.reset()
    _, rewards, dones, infos = vec.step(np.zeros((4, 8), np.float32))
    assert dones.all() and np.isfinite(rewards).all() and all("objectives" in info for info in infos)


def test_which_judge_a_vector_env_takes():
    assert make_batched_vec_env("Cantilever-v1", n_envs=2, device="cpu").judge == "numpy"  # auto on the CPU
    assert make_batched_vec_env("AMBracket-v3", n_envs=2, device="cpu").judge == "numpy"
    with pytest.raises(ValueError, match="problem am_bracket has no torch judge.*judge='numpy'"):
        make_batched_vec_env("AMBracket-v3", n_envs=2, device="cpu", judge="torch")
    with pytest.raises(ValueError, match="judge must be 'auto', 'torch' or 'numpy'"):
        make_batched_vec_env("Cantilever-v1", n_envs=2, judge="gpu")
    assert AMBracket().torch_judge("cpu") is None


@CUDA
def test_on_cuda_a_step_stays_on_the_device_and_agrees_with_the_cpu():
    vec = make_batched_vec_env("Cantilever-v1", n_envs=64, seed=0, device="cuda")
    assert vec.judge == "torch" and vec.envs[0].generator.device.type == "cuda"
    judge = next(iter(vec._judges.values()))
    assert judge.fe._gather.device.type == "cuda"
    vec.reset()
    _, rewards, _, infos = vec.step(np.random.default_rng(0).uniform(-1, 1, (64, 8)).astype(np.float32))
    problem = vec.envs[0].problem
    for env, info in zip(vec.envs, infos, strict=True):  # the CPU's judgement of the same designs
        expected = problem.evaluate(env.final_design, env.final_conditions)
        assert info["violations"] == expected.violations
        assert info["objectives"]["log_stiffness_gain"] == pytest.approx(
            expected.objectives["log_stiffness_gain"], rel=1e-6)
    assert np.isfinite(rewards).all()
    vec.close()
