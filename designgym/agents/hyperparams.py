"""Hyperparameter files in the RL Baselines3 Zoo format.

One YAML file per algorithm (``designgym/agents/hyperparams/ppo.yml`` ships with the package; a
user's file has the same layout), keyed by env id with a ``default`` entry for the envs it does
not name::

    default: &default
      policy: MlpPolicy
      n_steps: 64
      learning_rate: lin_3e-4
    designgym/Cantilever-v1:
      <<: *default
      n_envs: 8
      n_timesteps: !!float 5e4
      policy_kwargs: "dict(net_arch=[128, 128], activation_fn=nn.ReLU)"
      normalize: true

Keys, as in the Zoo: ``n_envs``, ``n_timesteps``, ``policy``, ``policy_kwargs`` (a mapping or a
``dict(...)`` string), ``normalize`` (``true`` or a mapping of ``VecNormalize`` arguments),
``noise_type``/``noise_std`` (action noise for SAC, TD3), and any argument of the algorithm's
constructor. Schedules are strings: ``lin_3e-4`` decays linearly from 3e-4 to 0 over the run.

The Zoo (``python -m rl_zoo3.train ... --gym-packages designgym -conf FILE``) reads these files
as they are, given an entry for the env id it trains (``<<: *default`` merges the default in; the
Zoo looks for ``default`` only from 2.8) and a ``policy`` in it. ``MlpPolicy`` and
``MultiInputPolicy`` both stand for SB3's default network here: designgym leaves them out and uses
the one that the env's observation space needs, so a file written for flat observations also
trains with ``observation_layout="dict"``.
"""

from __future__ import annotations

import ast
import difflib
import inspect
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from torch import nn

SHIPPED_DIR = Path(__file__).parent / "hyperparams"

#: Keys that are not arguments of the algorithm itself.
RUN_KEYS = ("n_envs", "n_timesteps", "policy", "policy_kwargs", "normalize", "noise_type", "noise_std")
SCHEDULED = ("learning_rate", "clip_range", "clip_range_vf")
#: Policy names that mean SB3's default network, whichever of them the observation space needs.
DEFAULT_POLICIES = ("MlpPolicy", "MultiInputPolicy")
ACTIVATIONS = {name: getattr(nn, name) for name in ("ReLU", "Tanh", "ELU", "LeakyReLU", "GELU", "SiLU", "Sigmoid")}


class HyperparamsError(ValueError):
    """A hyperparameter file or setting that cannot be used; the message names the key and the file."""


def shipped_file(algo: str) -> Path:
    return SHIPPED_DIR / f"{algo.lower()}.yml"


def load_hyperparams(algo: str, env_id: str, path: str | Path | None = None, shipped: bool = True
                     ) -> dict[str, Any]:
    """The settings for ``env_id``: the shipped file's entry (unless ``shipped`` is false), then
    ``path``'s entry over it.

    In each file the env's own entry is used when there is one, else ``default``, else nothing.
    A ``policy`` of :data:`DEFAULT_POLICIES` is left out: the Zoo needs the key, and the policy that
    fits the observation space is chosen when the agent is made.
    """
    settings: dict[str, Any] = {}
    ours = shipped_file(algo)
    for entries in (read_file(ours) if shipped and ours.exists() else {},
                    read_file(path) if path is not None else {}):
        entry = entries.get(env_id, entries.get(env_id.split("/")[-1], entries.get("default", {})))
        settings.update(entry)
    if settings.get("policy") in DEFAULT_POLICIES:
        del settings["policy"]
    return settings


def read_file(path: str | Path) -> dict[str, dict[str, Any]]:
    """The entries of a hyperparameter file, each checked to be a mapping of names to values."""
    path = Path(path)
    if not path.exists():
        raise HyperparamsError(f"hyperparameter file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise HyperparamsError(f"hyperparameter file {path} is not valid YAML: {problem}{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise HyperparamsError(f"hyperparameter file {path} must map env ids (or 'default') to settings")
    for key, entry in data.items():
        if not isinstance(entry, dict):
            raise HyperparamsError(f"{path}: the entry {key!r} must be a mapping of settings, got {entry!r}")
    return data


def resolve_settings(algo_cls: type, algo: str, env_id: str, path: str | Path | None,
                     params: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of a run: the shipped file, then ``path``, then ``params`` (``--params``), each
    key checked to be known and of the right type, a bad one named with where it came from."""
    settings = load_hyperparams(algo, env_id)
    from_file = load_hyperparams(algo, env_id, path, shipped=False) if path is not None else {}
    settings.update(from_file)
    settings.update(params)

    def origin(key: str) -> str:
        if key in params:
            return "--params"
        return str(path) if key in from_file else str(shipped_file(algo))

    check_keys(settings, algo_cls, origin)
    return check_types(settings, algo_cls, origin)


def check_keys(settings: Mapping[str, Any], algo_cls: type, source: str | Callable[[str], str]) -> None:
    """Every key must be a run key or an argument of ``algo_cls``; else name it, and where it came from."""
    where = source if callable(source) else (lambda key: source)
    accepted = set(inspect.signature(algo_cls.__init__).parameters) - {"self", "env", "policy"}
    unknown = sorted(k for k in settings if k not in RUN_KEYS and k not in accepted)
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(key, sorted(accepted | set(RUN_KEYS)), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise HyperparamsError(
            f"{where(key)}: unknown hyperparameter(s) {unknown} for {algo_cls.__name__}{hint}; "
            f"use {', '.join(RUN_KEYS)} or arguments of {algo_cls.__name__}"
        )


#: Where a number setting means something: (lowest, highest, whether the lowest itself is excluded).
#: SB3 asserts a few of these deep inside (n_steps, batch_size) and takes the rest silently (gamma 2,
#: n_epochs 0, which fails later with an unrelated error).
RANGES: dict[str, tuple[float, float, bool]] = {
    "n_timesteps": (1, math.inf, False), "n_envs": (1, math.inf, False),
    "n_steps": (1, math.inf, False), "batch_size": (1, math.inf, False), "n_epochs": (1, math.inf, False),
    "buffer_size": (1, math.inf, False), "learning_starts": (0, math.inf, False),
    "train_freq": (1, math.inf, False), "gradient_steps": (-1, math.inf, False), "policy_delay": (1, math.inf, False),
    "gamma": (0, 1, False), "gae_lambda": (0, 1, False), "tau": (0, 1, True),
    "learning_rate": (0, math.inf, True), "clip_range": (0, math.inf, True), "clip_range_vf": (0, math.inf, True),
    "ent_coef": (0, math.inf, False), "vf_coef": (0, math.inf, False), "max_grad_norm": (0, math.inf, True),
    "target_kl": (0, math.inf, True), "target_policy_noise": (0, math.inf, False),
    "target_noise_clip": (0, math.inf, False), "noise_std": (0, math.inf, False), "rms_prop_eps": (0, math.inf, True),
    "sde_sample_freq": (-1, math.inf, False),
}


def check_range(key: str, value: float, where: str) -> None:
    """``value`` of the number setting ``key`` inside :data:`RANGES` (keys not listed: any number)."""
    if key not in RANGES:
        return
    low, high, open_low = RANGES[key]
    if value < low or value > high or (open_low and value == low):
        bounds = f"{'above' if open_low else 'at least'} {low:g}"
        if high < math.inf:
            bounds += f" and at most {high:g}"
        raise HyperparamsError(f"{where}: {key} must be {bounds}, got {value!r}")


def check_types(settings: Mapping[str, Any], algo_cls: type, source: str | Callable[[str], str]
                ) -> dict[str, Any]:
    """The settings, checked: numbers where the algorithm's default is a number (a whole one where
    it is whole), a true or false where it is one; schedules (``lin_3e-4``) are read by
    :func:`schedule`. Whole floats such as ``1e5`` come back as ints."""
    where = source if callable(source) else (lambda key: source)
    parameters = inspect.signature(algo_cls.__init__).parameters
    defaults = {k: p.default for k, p in parameters.items()}
    defaults.update(n_envs=1, n_timesteps=1)
    fixed: dict[str, Any] = {}
    for key, value in settings.items():
        default = defaults.get(key, inspect.Parameter.empty)
        if key in SCHEDULED and isinstance(value, str):
            continue
        if isinstance(value, (list, tuple)) and key in parameters and "tuple" in str(parameters[key].annotation):
            fixed[key] = tuple(value)  # train_freq: [1, "episode"] in YAML; SB3 takes only a tuple
            continue
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise HyperparamsError(f"{where(key)}: {key} must be true or false, got {value!r}")
        elif isinstance(default, (int, float)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise HyperparamsError(
                    f"{where(key)}: {key} must be a finite number (default {default}), got {value!r}"
                )
            if isinstance(default, int) and not float(value).is_integer():
                raise HyperparamsError(f"{where(key)}: {key} must be a whole number, got {value!r}")
            if isinstance(default, int) and not isinstance(value, int):
                fixed[key] = int(value)
            check_range(key, value, where(key))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            # A number where the default is not one (ent_coef "auto", clip_range_vf None, train_freq 1).
            if not math.isfinite(value):
                raise HyperparamsError(f"{where(key)}: {key} must be a finite number, got {value!r}")
            check_range(key, value, where(key))
    return {**settings, **fixed}


def algorithm_kwargs(settings: Mapping[str, Any], action_dim: int, source: str) -> dict[str, Any]:
    """The algorithm's constructor arguments: schedules made callable, policy_kwargs parsed, noise built."""
    kwargs = {k: v for k, v in settings.items() if k not in RUN_KEYS}
    for key in SCHEDULED:
        if isinstance(kwargs.get(key), str):
            kwargs[key] = schedule(kwargs[key], f"{source}: {key}")
    if settings.get("policy_kwargs") is not None:
        kwargs["policy_kwargs"] = policy_kwargs(settings["policy_kwargs"], source)
    if settings.get("noise_type") is not None:
        from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise

        kinds = {"normal": NormalActionNoise, "ornstein-uhlenbeck": OrnsteinUhlenbeckActionNoise}
        kind = settings["noise_type"]
        if kind not in kinds:
            raise HyperparamsError(f"{source}: noise_type must be one of {sorted(kinds)}, got {kind!r}")
        std = float(settings.get("noise_std", 0.1))
        kwargs["action_noise"] = kinds[kind](mean=np.zeros(action_dim), sigma=std * np.ones(action_dim))
    return kwargs


def schedule(value: str, where: str) -> Callable[[float], float] | float:
    """``lin_3e-4`` -> a linear decay to 0 (SB3 passes the remaining progress, 1 to 0); a number stays one."""
    text = value.strip()
    if text.startswith("lin_"):
        start = _number(text[4:], where)
        return _Linear(start)
    return _number(text, where)


class _Linear:
    """A picklable linear schedule (SB3 saves schedules with the model)."""

    def __init__(self, start: float) -> None:
        self.start = start

    def __call__(self, progress_remaining: float) -> float:
        return progress_remaining * self.start

    def __repr__(self) -> str:
        return f"lin_{self.start:g}"


def _number(text: str, where: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise HyperparamsError(f"{where}: {text!r} is neither a number nor a schedule like 'lin_3e-4'") from None


def policy_kwargs(value: Any, source: str) -> dict[str, Any]:
    """A mapping, or a ``dict(...)`` string as in the Zoo; activation functions by name (``nn.ReLU``)."""
    if isinstance(value, str):
        try:
            tree = ast.parse(value.strip(), mode="eval").body
            value = _literal(tree)
        except (SyntaxError, ValueError) as exc:
            raise HyperparamsError(f"{source}: policy_kwargs {value!r} cannot be read: {exc}") from None
    if not isinstance(value, dict):
        raise HyperparamsError(f"{source}: policy_kwargs must be a mapping or a 'dict(...)' string, got {value!r}")
    out = dict(value)
    if isinstance(out.get("activation_fn"), str):
        name = out["activation_fn"].split(".")[-1]
        if name not in ACTIVATIONS:
            raise HyperparamsError(
                f"{source}: unknown activation_fn {out['activation_fn']!r}; use one of {sorted(ACTIVATIONS)}"
            )
        out["activation_fn"] = ACTIVATIONS[name]
    return out


def zoo_entry(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` spelled so that both designgym and the Zoo read them: the Zoo passes a
    ``policy_kwargs`` mapping to the algorithm as it is (an activation named by a string would reach
    torch), so it becomes a ``dict(...)`` string; and it reads a string schedule only as
    ``lin_<number>``, so a number written as a string becomes a number."""
    entry = dict(settings)
    if isinstance(entry.get("policy_kwargs"), Mapping):
        entry["policy_kwargs"] = _python_text(entry["policy_kwargs"])
    for key in SCHEDULED:
        value = entry.get(key)
        if isinstance(value, str) and not value.strip().startswith("lin_"):
            entry[key] = _number(value, key)
    return entry


def _python_text(value: Any, key: str | None = None) -> str:
    """The ``dict(...)`` text of a policy_kwargs mapping, activations as names (``nn.ReLU``)."""
    if isinstance(value, Mapping):
        return "dict(" + ", ".join(f"{k}={_python_text(v, str(k))}" for k, v in value.items()) + ")"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(_python_text(v) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner}{',' if len(value) == 1 else ''})"
    if key == "activation_fn" and isinstance(value, str):
        return f"nn.{value.split('.')[-1]}"
    if isinstance(value, type) and issubclass(value, nn.Module):
        return f"nn.{value.__name__}"
    return repr(value)


def _literal(node: ast.AST) -> Any:
    """Evaluate the literal subset of Python that Zoo files use, and nothing else."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.List):
        return [_literal(e) for e in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_literal(e) for e in node.elts)
    if isinstance(node, ast.Dict):
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values, strict=True)}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_literal(node.operand)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args:
        return {kw.arg: _literal(kw.value) for kw in node.keywords}
    if isinstance(node, (ast.Name, ast.Attribute)):
        return ast.unparse(node)  # a name such as nn.ReLU, checked and resolved by policy_kwargs
    raise ValueError(
        f"only numbers, strings, lists, dict(...) and names such as nn.ReLU are allowed, not {ast.unparse(node)!r}"
    )
