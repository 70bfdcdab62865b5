"""designgym: Gymnasium environments where RL agents steer pretrained generators toward good designs.

Importing the package registers every built-in environment with Gymnasium under the
``designgym/`` namespace and loads the environments that installed plugins publish through the
``designgym.envs`` entry-point group.
"""

from designgym.envs import (
    Evaluation,
    LatentDesignEnv,
    ObjectiveSpec,
    Problem,
    env_specs,
    list_envs,
    load_plugins,
    make,
    make_problem,
    register_design_env,
    register_problem,
)
from designgym.generators import Generator

__version__ = "0.1.0"

__all__ = [
    "BatchedDesignVecEnv",
    "Evaluation",
    "Generator",
    "LatentDesignEnv",
    "ObjectiveSpec",
    "Problem",
    "env_specs",
    "list_envs",
    "load_plugins",
    "make",
    "make_batched_vec_env",
    "make_problem",
    "register_design_env",
    "register_problem",
]



def __getattr__(name: str):
    # The batched vector env imports Stable-Baselines3; load it on first use, not with the package.
    if name in ("BatchedDesignVecEnv", "make_batched_vec_env"):
        from designgym.envs import vector

        return getattr(vector, name)
    raise AttributeError(f"module 'designgym' has no attribute {name!r}")


load_plugins()
