"""Make the agent shipped for an env (designgym/agents/pretrained/<Env>.zip) with the suite's recipe.

The agent is search distillation trained from the env's own reward, nothing else: no reference
designs, no labels (designgym/agents/distill.py). This script trains it exactly as

    designgym train --env ENV --algo distill --timesteps N --seed S

would (the shipped hyperparameters, designgym/agents/hyperparams/distill.yml), scores it on the
env's test split (designgym score), and writes the model with a JSON sidecar that records this
command, the settings, the score and the machine. Every shipped agent was made by one command:

    python scripts/ship_agent.py --env designgym/Cantilever-v1 --timesteps 200000

(see each sidecar's "command" for its own). ``--out`` writes elsewhere (default: the package).
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

from designgym.agents.evaluation import PRETRAINED_DIR, load_agent
from designgym.agents.files import write_text_atomic
from designgym.agents.scoring import score_policy
from designgym.agents.training import TrainConfig, train
from designgym.envs.registration import resolve_env_id


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", required=True, help="env id")
    p.add_argument("--timesteps", type=int, required=True, help="env steps (judged designs) to train for")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    p.add_argument("--out", type=Path, default=PRETRAINED_DIR, help="folder for <Env>.zip and <Env>.json")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    env_id = resolve_env_id(args.env)
    # Where the files go does not change the agent, so --out is not part of the command that remakes it.
    command = shlex.join(["python", "scripts/ship_agent.py", "--env", env_id, "--timesteps", str(args.timesteps),
                          *(["--seed", str(args.seed)] if args.seed else [])])
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        result = train(TrainConfig(env=env_id, algo="distill", timesteps=args.timesteps, seed=args.seed,
                                   out=scratch, run_name="run", eval_freq=0, save_freq=0, eval_episodes=32,
                                   threads=args.threads, progress=sys.stderr.isatty()))
        config = json.loads((result.run_dir / "config.json").read_text())
        agent = load_agent(result.run_dir)
        scored = score_policy(env_id, agent.act, progress=sys.stderr.isatty())
        name = env_id.split("/")[-1]
        args.out.mkdir(parents=True, exist_ok=True)
        target = args.out / f"{name}.zip"
        with tempfile.NamedTemporaryFile(dir=args.out, suffix=".zip", delete=False) as handle:
            shutil.copyfile(result.model_path, handle.name)
        Path(handle.name).replace(target)
    import torch

    sidecar = {
        "env": env_id, "algo": "distill", "env_kwargs": {},
        "script": "scripts/ship_agent.py", "command": command,
        "equivalent": f"designgym train --env {env_id} --algo distill --timesteps {args.timesteps} --seed {args.seed}",
        "timesteps": result.metrics["timesteps"], "seed": args.seed,
        "hyperparams": config["resolved_hyperparams"],
        "score": {k: scored[k] for k in ("n_cases", "feasible_rate", "normalized_score", "ms_per_design")},
        "train_seconds": round(result.seconds, 1), "seconds": round(time.perf_counter() - started, 1),
        "machine": f"{platform.machine()}, Python {platform.python_version()}, torch {torch.__version__}",
        "date": time.strftime("%Y-%m-%d"),
    }
    write_text_atomic(args.out / f"{name}.json", json.dumps(sidecar, indent=2, default=str) + "\n")
    score = scored["normalized_score"]
    low, high = score["ci"]
    print(f"{env_id}: {result.metrics['timesteps']} steps in {result.seconds:.0f} s; on the test split "
          f"IQM {score['iqm']:.1f} [{low:.1f}, {high:.1f}], feasible {scored['feasible_rate']:.1%}, "
          f"{scored['ms_per_design']:.1f} ms per design; written to {target} ({target.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
