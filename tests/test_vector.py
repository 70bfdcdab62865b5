"""BatchedDesignVecEnv: the same results as independent envs stepped one by one, in one decode per step."""

from functools import partial

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor

import designgym
from designgym.envs.latent_env import LatentDesignEnv
from designgym.envs.vector import BatchedDesignVecEnv, make_batched_vec_env


def independent(env_id: str, n: int, seed: int, **kwargs) -> DummyVecEnv:
    vec = DummyVecEnv([partial(gym.make, env_id, **kwargs) for _ in range(n)])
    vec.seed(seed)
    return vec


def assert_same(a, b, where: str) -> None:
    """Equal structures; floats to 1e-5 relative (the batched decode sums in another order)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (bool, np.bool_, str)) or a is None:
        assert a == b, where
    else:
        np.testing.assert_allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64),
                                   rtol=1e-5, atol=1e-6, err_msg=where)


def judged(env: LatentDesignEnv) -> np.ndarray:
    """The env's latest judged design (a direct-mode env's auto-reset judges none: its episode's)."""
    return env.design if env.design is not None else env.final_design


CASES = [
    ("designgym/Cantilever-v1", {}, 2),  # the designs' factorisations shared with a helper process
    ("designgym/AMBracket-v3", {"observation_layout": "dict"}, 1),
    ("designgym/ExtrusionSteps-v1", {"episode_length": 3}, 1),  # episodes end mid-run: auto-reset
    ("designgym/Extrusion-v2", {"initial_latent": "random"}, 1),
    ("designgym/Cantilever-v1", {"repair": True}, 1),  # 0/1 designs: any difference is a whole cell
]


@pytest.mark.parametrize("env_id, kwargs, processes", CASES)
def test_batched_steps_equal_independent_envs(env_id, kwargs, processes):
    n, seed, steps = 5, 7, 7
    batched = make_batched_vec_env(env_id, n_envs=n, seed=seed, env_kwargs=kwargs, processes=processes)
    assert batched.envs[0].problem.batch_processes == processes
    single = independent(env_id, n, seed, **kwargs)
    assert_same(batched.reset(), single.reset(), "reset obs")
    for i in range(n):
        assert_same(batched.reset_infos[i], single.reset_infos[i], f"reset info {i}")
    rng = np.random.default_rng(0)
    ends = 0
    for t in range(steps):
        actions = rng.uniform(-1, 1, (n, *batched.action_space.shape)).astype(np.float32)
        obs_b, rew_b, done_b, info_b = batched.step(actions)
        obs_s, rew_s, done_s, info_s = single.step(actions)
        assert_same(obs_b, obs_s, f"obs at step {t}")
        np.testing.assert_allclose(rew_b, rew_s, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(done_b, done_s)
        for i in range(n):
            assert_same(info_b[i], info_s[i], f"info {i} at step {t}")
            assert np.abs(judged(batched.envs[i]) - judged(single.envs[i].unwrapped)).max() < 1e-5
        ends += int(done_b.sum())
    assert ends > 0  # every case crosses at least one auto-reset
    batched.close()
    single.close()


@pytest.mark.parametrize(
    ("env_id", "env_kwargs", "at_reset", "after_step"),
    [
        # Direct mode: a reset decodes and judges nothing, a step decodes all six designs in one call.
        ("designgym/MBB-v2", {"repair": False}, [], [6]),
        ("designgym/MBB-v2", {}, [], [6]),
        ("designgym/Cantilever-v1", {}, [], [6]),
        # Delta mode judges the start designs: one call at the reset, one for the step, one for the
        # auto-reset's new random starts.
        ("designgym/ExtrusionSteps-v1", {"episode_length": 1}, [6], [6, 6, 6]),
    ],
)
def test_one_generator_call_per_step_for_all_envs(env_id, env_kwargs, at_reset, after_step):
    vec = make_batched_vec_env(env_id, n_envs=6, seed=0, env_kwargs=env_kwargs)
    generator = vec.envs[0].generator
    assert all(env.generator is generator and env.problem is vec.envs[0].problem for env in vec.envs)
    calls = []
    original = generator.decode_numpy
    generator.decode_numpy = lambda z, *conditions: calls.append(len(z)) or original(z, *conditions)
    vec.reset()
    assert calls == at_reset
    dim = vec.action_space.shape[0]
    _, _, dones, _ = vec.step(np.random.default_rng(1).uniform(-1, 1, (6, dim)).astype(np.float32))
    assert dones.all()  # one-step episodes: every env auto-resets
    assert calls == after_step


def test_reset_takes_seeds_and_options_like_dummy_vec_env():
    vec = make_batched_vec_env("designgym/Cantilever-v1", n_envs=2)
    vec.seed(3)
    vec.set_options({"conditions": {"volfrac": 0.45}})
    vec.reset()
    first = [dict(env.conditions) for env in vec.envs]
    assert all(c["volfrac"] == 0.45 for c in first)
    vec.seed(3)
    vec.reset()  # same seeds, no options this time: the draws repeat, the volume fraction is drawn
    again = [dict(env.conditions) for env in vec.envs]
    assert [c["load_y"] for c in again] == [c["load_y"] for c in first]
    assert all(c["volfrac"] != 0.45 for c in again)


def test_sb3_trains_on_it_with_vec_monitor():
    vec = VecMonitor(make_batched_vec_env("designgym/Extrusion-v2", n_envs=4, seed=0))
    model = PPO("MlpPolicy", vec, n_steps=16, batch_size=32, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=128)
    assert model.num_timesteps == 128
    assert len(model.ep_info_buffer) > 0 and "r" in model.ep_info_buffer[0]


def test_attributes_methods_and_images():
    vec = make_batched_vec_env("designgym/Extrusion-v2", n_envs=2, seed=0, env_kwargs={"render_mode": "rgb_array"})
    vec.reset()
    assert vec.get_attr("action_mode") == ["direct", "direct"]
    vec.set_attr("feature_clip", 50.0, indices=[1])
    assert vec.get_attr("feature_clip") == [100.0, 50.0]
    assert [img.shape[2] for img in vec.get_images()] == [3, 3]
    assert vec.env_method("render", indices=0)[0].dtype == np.uint8
    assert vec.env_is_wrapped(gym.Wrapper) == [False, False]
    assert designgym.make_batched_vec_env is make_batched_vec_env


def test_bad_envs_are_refused_with_the_fix():
    env = gym.make("designgym/Extrusion-v2")
    with pytest.raises(TypeError, match="pass env.unwrapped"):
        BatchedDesignVecEnv([env])
    with pytest.raises(ValueError, match="the same env object is given twice"):
        BatchedDesignVecEnv([env.unwrapped, env.unwrapped])
    with pytest.raises(ValueError, match="at least one env"):
        BatchedDesignVecEnv([])

    class Custom(LatentDesignEnv):
        def step(self, action):
            return super().step(action)

    custom = Custom(env.unwrapped.problem, env.unwrapped.generator)
    with pytest.raises(TypeError, match="overrides reset\\(\\) or step\\(\\)"):
        BatchedDesignVecEnv([custom])
    other = gym.make("designgym/ExtrusionSteps-v1").unwrapped
    with pytest.raises(ValueError, match="same observation and action spaces"):
        BatchedDesignVecEnv([env.unwrapped, gym.make("designgym/Cantilever-v1").unwrapped])
    with pytest.raises(ValueError, match="n_envs must be >= 1"):
        make_batched_vec_env("designgym/Extrusion-v2", n_envs=0)
    with pytest.raises(ValueError, match="processes must be >= 1"):
        make_batched_vec_env("designgym/Extrusion-v2", n_envs=2, processes=0)
    # A direct-mode and a delta-mode env with their own generators and problems: two groups each.
    vec = BatchedDesignVecEnv([env.unwrapped, other])
    vec.reset()
    with pytest.raises(ValueError, match="got 1 actions for 2 envs"):
        vec.step(np.zeros((1, 8), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        vec.step(np.full((2, 8), np.nan, np.float32))


def test_batched_repair_with_a_partly_conditioned_generator_equals_single_envs():
    import torch

    from designgym.envs.structures.problems import AMBracket
    from designgym.generators.models import ConvVAE

    torch.manual_seed(0)
    generator = ConvVAE(latent_dim=2, channels=8, shape=(8, 16), conditions_dim=3).eval()
    generator.condition_keys, generator.name = ("load_angle", "load_y", "volfrac"), "tiny-cvae"

    def envs():
        problem = AMBracket(16, 8)
        return [LatentDesignEnv(problem, generator, repair=True) for _ in range(3)]

    batched = BatchedDesignVecEnv(envs())
    singles = envs()
    batched.seed(11)
    obs_b = batched.reset()
    obs_s = np.stack([env.reset(seed=11 + i)[0] for i, env in enumerate(singles)])
    assert_same(obs_b, obs_s, "reset obs")
    rng = np.random.default_rng(2)
    for t in range(3):
        actions = rng.uniform(-1, 1, (3, 2)).astype(np.float32)
        obs_b, rew_b, _, info_b = batched.step(actions)
        for i, env in enumerate(singles):
            obs, reward, _, _, info = env.step(actions[i])
            design = env.final_design
            assert set(np.unique(design)) <= {0.0, 1.0}  # the bracket's repair: printable, maybe empty
            assert int(design.sum()) <= int((env.conditions["volfrac"] + 0.01) * 128)
            np.testing.assert_array_equal(batched.envs[i].final_design, design, err_msg=f"env {i} at step {t}")
            assert_same(info_b[i]["terminal_observation"], obs, f"obs {i} at step {t}")
            assert rew_b[i] == pytest.approx(reward, rel=1e-5, abs=1e-6)
            assert_same({k: info_b[i][k] for k in info}, info, f"info {i} at step {t}")
            env.reset(seed=None)
    batched.close()
