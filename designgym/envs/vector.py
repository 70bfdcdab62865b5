"""`BatchedDesignVecEnv`: many design envs stepped together, with one generator forward pass and one
batched evaluation per step.

Stepping ``N`` design envs one by one (SB3's ``DummyVecEnv``) runs the generator ``N`` times on a
batch of one and evaluates the ``N`` designs in ``N`` separate calls. Here each step runs every
env's own bookkeeping (action checks, conditions, rewards, observations) through the same methods
as :meth:`LatentDesignEnv.step`, but decodes all the new latents in one ``Generator.decode`` call
(on the GPU when the generator lives there) and judges all the designs in one
:meth:`Problem.evaluate_batch` call. The results equal ``N`` independent envs stepped one by one
with the same seeds, up to the generator's floating-point summation order in a batch (design
values within about 1e-6; ``tests/test_vector.py``).

With a *device judge* (``judge="torch"``, or ``"auto"`` with the generator on a GPU, for problems
that have one: :meth:`Problem.torch_judge`) the whole middle phase is torch work on the
generator's device: the decoded batch is repaired, checked against the rules and solved there
(the structures: a batched block Cholesky factorisation), and only the designs and the numbers of
their judgement come back, in one copy each. Its results equal the numpy path's (designs and
violations exactly on the CPU, objectives to 1e-6 relative; ``tests/test_batched_structures.py``).

Use :func:`make_batched_vec_env` to build one from an env id, or ``designgym train --vec-env
batched``. It is a Stable-Baselines3 ``VecEnv``: wrap it in ``VecMonitor`` for episode statistics
and in ``VecNormalize`` as usual. Gymnasium wrappers are not applied inside it.

Envs in worker processes (Gymnasium's ``AsyncVectorEnv``, ``gymnasium.make_vec(...,
vectorization_mode="async")``, SB3's ``SubprocVecEnv``) work with any start method, fork included:
a forked worker runs torch on one thread (:mod:`designgym.generators.fork_safety`;
``tests/test_async_vector.py``); a generator on a GPU needs ``"spawn"`` or ``"forkserver"``, as
CUDA cannot start again in a forked child.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvObs, VecEnvStepReturn
from stable_baselines3.common.vec_env.util import dict_to_obs, obs_space_info

from designgym.envs.latent_env import LatentDesignEnv


class BatchedDesignVecEnv(VecEnv):
    """A Stable-Baselines3 vector env of :class:`LatentDesignEnv` copies, decoded and judged in batches.

    Envs that share a generator object are decoded in one forward pass, and envs that share a
    problem object are judged in one ``evaluate_batch`` call; :func:`make_batched_vec_env` builds
    envs that share both. Seeding and auto-reset follow ``DummyVecEnv``: ``seed(s)`` gives env
    ``i`` the seed ``s + i`` at the next ``reset()``, and an env whose episode ends is reset at
    once, its last observation kept in ``info["terminal_observation"]``.

    Args:
        envs: unwrapped :class:`LatentDesignEnv` instances (``gymnasium.make(...).unwrapped``),
            each a separate object, all with the same observation and action spaces.
        judge: ``"numpy"``: designs come back from the generator and each problem judges them with
            :meth:`Problem.evaluate_batch` (the structures: CHOLMOD on the CPU); ``"torch"``: each
            problem's :meth:`Problem.torch_judge` on the generator's device repairs and judges the
            decoded batch where it lies (an error for a problem without one); ``"auto"``: torch
            where the generator is on a GPU and the problem has a device judge, else numpy.
    """

    def __init__(self, envs: Sequence[LatentDesignEnv], judge: Literal["auto", "torch", "numpy"] = "auto") -> None:
        envs = list(envs)
        if not envs:
            raise ValueError("BatchedDesignVecEnv needs at least one env")
        for env in envs:
            if not isinstance(env, LatentDesignEnv):
                raise TypeError(
                    f"BatchedDesignVecEnv steps LatentDesignEnv objects, got {type(env).__name__}; pass "
                    "env.unwrapped and use vector wrappers (VecMonitor, VecNormalize) instead of env wrappers"
                )
            if type(env).reset is not LatentDesignEnv.reset or type(env).step is not LatentDesignEnv.step:
                raise TypeError(
                    f"{type(env).__name__} overrides reset() or step(), which a batched step would bypass; "
                    "step it with DummyVecEnv instead"
                )
        if len({id(env) for env in envs}) != len(envs):
            raise ValueError("the same env object is given twice; make a new env for each slot")
        first = envs[0]
        for env in envs[1:]:
            if env.observation_space != first.observation_space or env.action_space != first.action_space:
                raise ValueError("all envs of a BatchedDesignVecEnv need the same observation and action spaces")
        if judge not in ("auto", "torch", "numpy"):
            raise ValueError(f"judge must be 'auto', 'torch' or 'numpy', got {judge!r}")
        self.envs = envs
        # The device judge of each (problem, generator) pair that has one in use.
        self._judges: dict[tuple[int, int], Any] = {}
        if judge != "numpy":
            for env in envs:
                key = (id(env.problem), id(env.generator))
                if key in self._judges or (judge == "auto" and env.generator.device.type != "cuda"):
                    continue
                device_judge = env.problem.torch_judge(env.generator.device)
                if device_judge is None and judge == "torch":
                    raise ValueError(f"problem {env.problem.name} has no torch judge (Problem.torch_judge); "
                                     "use judge='numpy'")
                if device_judge is not None:
                    self._judges[key] = device_judge
        self.judge = "torch" if self._judges else "numpy"
        super().__init__(len(envs), first.observation_space, first.action_space)
        self.keys, shapes, dtypes = obs_space_info(self.observation_space)
        self._buf_obs = {k: np.zeros((self.num_envs, *shapes[k]), dtype=dtypes[k]) for k in self.keys}
        self._actions: np.ndarray | None = None

    # -- VecEnv API ---------------------------------------------------------------------------

    def reset(self) -> VecEnvObs:
        self._check_open()
        for i, env in enumerate(self.envs):
            gym.Env.reset(env, seed=self._seeds[i])  # seeds env.np_random as LatentDesignEnv.reset does
            env._begin_reset(self._options[i] or None)
        self._decode_and_evaluate(i for i, env in enumerate(self.envs) if env.judges_start)
        for i, env in enumerate(self.envs):
            obs, self.reset_infos[i] = env._end_reset()
            self._save_obs(i, obs)
        self._reset_seeds()  # as in DummyVecEnv, seeds and options are used once
        self._reset_options()
        return self._obs_from_buf()

    def step_async(self, actions: np.ndarray) -> None:
        self._check_open()
        self._actions = np.asarray(actions)

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("step_wait() called without step_async(actions)")
        actions, self._actions = self._actions, None
        if len(actions) != self.num_envs:
            raise ValueError(f"got {len(actions)} actions for {self.num_envs} envs")
        for env, action in zip(self.envs, actions, strict=True):
            env._begin_step(action)
        self._decode_and_evaluate(range(self.num_envs))
        rewards = np.zeros(self.num_envs, dtype=np.float32)
        dones = np.zeros(self.num_envs, dtype=bool)
        infos: list[dict[str, Any]] = []
        ended = []
        for i, env in enumerate(self.envs):
            obs, rewards[i], terminated, truncated, info = env._end_step()
            dones[i] = terminated or truncated
            info["TimeLimit.truncated"] = truncated and not terminated
            if dones[i]:
                info["terminal_observation"] = obs
                ended.append(i)
            else:
                self._save_obs(i, obs)
            infos.append(info)
        if ended:
            for i in ended:
                self.envs[i]._begin_reset(None)
            self._decode_and_evaluate(i for i in ended if self.envs[i].judges_start)
            for i in ended:
                obs, self.reset_infos[i] = self.envs[i]._end_reset()
                self._save_obs(i, obs)
        return self._obs_from_buf(), rewards, dones, infos

    def close(self) -> None:
        """Close every env and let go of them, with their problems and generators: a model keeps its
        vector env after training, and the generator's weights (on the GPU, if it runs there) must
        not stay with it. The cached GPU blocks the generator used are handed back to the driver."""
        if self.closed:
            return
        on_cuda = any(env.generator.device.type == "cuda" for env in self.envs)
        for env in self.envs:  # shared problems stop their helper processes on the first call
            env.close()
        self.envs = []
        self.closed = True
        if on_cuda:
            import gc

            import torch

            gc.collect()  # the generator may sit in a reference cycle (a module and its hooks)
            torch.cuda.empty_cache()

    closed = False

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError("this BatchedDesignVecEnv is closed; make a new one")

    def get_images(self) -> Sequence[np.ndarray | None]:
        if self.render_mode != "rgb_array":
            return [None for _ in self.envs]
        return [env.render() for env in self.envs]

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return [getattr(self.envs[i], attr_name) for i in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        for i in self._get_indices(indices):
            setattr(self.envs[i], attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
                   ) -> list[Any]:
        return [getattr(self.envs[i], method_name)(*method_args, **method_kwargs) for i in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]  # envs are stepped unwrapped

    # -- the batched middle phase -------------------------------------------------------------

    def _decode_and_evaluate(self, indices: Iterable[int]) -> None:
        """Give each env the design of its latent and its evaluation: one decode and one judging per group."""
        on_device: dict[tuple[int, int], list[int]] = {}
        on_host: list[int] = []
        for i in indices:
            key = (id(self.envs[i].problem), id(self.envs[i].generator))
            (on_device.setdefault(key, []) if key in self._judges else on_host).append(i)
        for key, group in on_device.items():
            self._decode_and_evaluate_on_device(self._judges[key], group)
        indices = on_host
        designs: dict[int, np.ndarray] = {}
        by_generator: dict[int, list[int]] = {}
        for i in indices:
            cached = self.envs[i]._cached_design()
            if cached is not None:
                designs[i] = cached
            else:
                by_generator.setdefault(id(self.envs[i].generator), []).append(i)
        for group in by_generator.values():
            generator = self.envs[group[0]].generator
            latents = np.stack([self.envs[i].latent for i in group])
            if generator.conditions_dim:
                conditions = np.stack([self.envs[i].generator_conditions() for i in group])
                decoded = generator.decode_numpy(latents, conditions)
            else:
                decoded = generator.decode_numpy(latents)
            for i, design in zip(group, decoded, strict=True):
                design = self.envs[i].finish_design(design)
                self.envs[i]._remember_design(design)
                designs[i] = design.copy()
        by_problem: dict[int, list[int]] = {}
        for i in indices:
            by_problem.setdefault(id(self.envs[i].problem), []).append(i)
        for group in by_problem.values():
            problem = self.envs[group[0]].problem
            evaluations = problem.evaluate_batch([designs[i] for i in group], [self.envs[i].conditions for i in group])
            for i, evaluation in zip(group, evaluations, strict=True):
                self.envs[i].design = designs[i]
                self.envs[i].evaluation = evaluation

    def _decode_and_evaluate_on_device(self, judge: Any, group: list[int]) -> None:
        """The middle phase for envs that share a problem and a generator, as torch work on the
        generator's device: decode, repair, rules and solve; the designs and numbers come back once."""
        import torch

        first = self.envs[group[0]]
        generator, problem = first.generator, first.problem
        latents = torch.as_tensor(np.stack([self.envs[i].latent for i in group]), device=generator.device)
        if generator.conditions_dim:
            conditions = np.stack([self.envs[i].generator_conditions() for i in group])
            designs = generator.decode(latents, conditions)
        else:
            designs = generator.decode(latents)
        if not bool(torch.isfinite(designs).all()):
            raise ValueError(f"{problem.name}: the generator decoded designs with NaN or infinite values")
        judged_conditions = [self.envs[i].conditions for i in group]
        repaired = [self.envs[i].repair for i in group]
        if all(repaired):
            designs = judge.repair(designs, judged_conditions)
        elif any(repaired):
            raise ValueError("envs that share a problem and a generator must all repair or none")
        results = judge.evaluate(designs, judged_conditions)
        host = designs.to("cpu", torch.float32).numpy()
        for i, design, result in zip(group, host, results, strict=True):
            self.envs[i].design = design.copy()
            self.envs[i].evaluation = problem._verdict(*result)

    def _save_obs(self, i: int, obs: Any) -> None:
        for key in self.keys:
            self._buf_obs[key][i] = obs if key is None else obs[key]

    def _obs_from_buf(self) -> VecEnvObs:
        return dict_to_obs(self.observation_space, {k: v.copy() for k, v in self._buf_obs.items()})


def make_batched_vec_env(
    env_id: str,
    n_envs: int = 1,
    seed: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
    processes: int | None = None,
    device: str | None = None,
    judge: Literal["auto", "torch", "numpy"] = "auto",
) -> BatchedDesignVecEnv:
    """``n_envs`` copies of a registered design env that share one problem and one generator.

    Seeded as ``stable_baselines3.common.env_util.make_vec_env`` seeds its envs: env ``i`` gets
    ``seed + i`` at the first reset, and its action space is seeded with ``seed + i``.

    Args:
        env_id: a registered design env (the ``designgym/`` namespace may be left out).
        n_envs: how many copies.
        seed: base seed, or ``None``.
        env_kwargs: arguments for ``gymnasium.make`` (``action_mode``, ``device``, ...).
        processes: processes that share each step's evaluations, where the problem can split a
            batch (the structures: each process factorises its share of the designs). Default:
            the CPU cores this process may use. The results do not depend on it.
        device: where the generator runs (``"cuda"``, ``"cpu"``; default: the env's ``device``
            argument, else CUDA when present). With ``"cuda"`` and ``judge="auto"``, problems with
            a device judge are repaired, judged and solved on the GPU too.
        judge: see :class:`BatchedDesignVecEnv`.
    """
    from designgym.envs.registration import resolve_env_id

    if n_envs < 1:
        raise ValueError(f"n_envs must be >= 1, got {n_envs}")
    if processes is None:
        processes = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if processes < 1:
        raise ValueError(f"processes must be >= 1, got {processes}")
    env_id = resolve_env_id(env_id)
    kwargs = dict(env_kwargs or {})
    if device is not None:
        kwargs["device"] = device
    first = gym.make(env_id, **kwargs).unwrapped
    if not isinstance(first, LatentDesignEnv):
        raise TypeError(f"{env_id} is not a LatentDesignEnv ({type(first).__name__}); use DummyVecEnv for it")
    first.problem.batch_processes = min(int(processes), n_envs)
    shared = {**kwargs, "problem": first.problem, "generator": first.generator}
    envs = [first] + [gym.make(env_id, **shared).unwrapped for _ in range(n_envs - 1)]
    vec_env = BatchedDesignVecEnv(envs, judge=judge)
    if seed is not None:
        vec_env.seed(seed)
        for i, env in enumerate(envs):
            env.action_space.seed(seed + i)
    return vec_env
