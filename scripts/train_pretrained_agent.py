"""A supervised warm start for a structural env: an agent fitted to the generator's encodings of SIMP optima.

This needs labels (SIMP optima) that a user's env does not have, so it is not the suite's recipe:
the shipped agents come from the reward alone (scripts/ship_agent.py, search distillation). It is
kept as the comparison it makes (benchmarks/quality.py, RESULTS.md section 8, which measured the
agents it made for Cantilever-v1 and AMBracket-v1 before the recipe replaced them).

The policy learns to do in one forward pass what an optimizer does per case. Up to three stages:

1. Imitation of optima: the env's generator encodes every SIMP optimum of a data set from
   scripts/make_structures_dataset.py (with the top-to-bottom mirror images for the cantilever)
   to its mean latent; that latent decodes to a design about as stiff as the optimum. The PPO
   policy's mean action is fitted to those latents from the observation the env gives at the
   start of each case (a regression; the last tenth of the data is held out and reported).
2. Optional refinement of the targets (``--refine-rounds``), a form of expert iteration: for
   every training case a short CMA-ES in latent space starts from the policy's own action and
   judges designs with the env's score (stiffness after repair, and the rules SIMP ignores, such
   as the bracket's printability); the best of the current target (at first the encoder's latent),
   the policy's action and the search becomes the new target, and the policy is fitted again.
   Starting from the policy keeps the targets a smooth function of the conditions where the
   optima switch topology.
3. Optional reinforcement learning (``--rl-steps``): PPO continues from that policy on the env's
   own reward.

The result is an ordinary Stable-Baselines3 PPO file with a JSON sidecar (env, algo, how it was
made), written to ``--out`` (default agents/warm-start/) and loadable with ``designgym design --agent FILE``.

    # the earlier Cantilever agent: imitation and two refinement rounds, then two more rounds
    python scripts/train_pretrained_agent.py --env designgym/Cantilever-v1 --data data/cantilever-64x32.npz \
        --epochs 200 --refine-rounds 2 --out agents/step1
    python scripts/train_pretrained_agent.py --env designgym/Cantilever-v1 --data data/cantilever-64x32.npz \
        --init agents/step1/Cantilever-v1.zip --refine-rounds 2 --out agents/warm-start
    # the earlier AMBracket agent: imitation, then two rounds (about 28 minutes with --workers 2 on 2 cores)
    python scripts/train_pretrained_agent.py --env designgym/AMBracket-v1 --data data/cantilever-64x32.npz \
        --epochs 100 --out agents/step1
    python scripts/train_pretrained_agent.py --env designgym/AMBracket-v1 --data data/cantilever-64x32.npz \
        --init agents/step1/AMBracket-v1.zip --refine-rounds 2 --workers 2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

import designgym
from designgym.agents.files import atomic_path, write_text_atomic
from designgym.envs.vector import make_batched_vec_env


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="designgym/Cantilever-v1")
    p.add_argument("--data", type=Path, required=True, help="SIMP data set (.npz) of the env's problem")
    p.add_argument("--no-mirror", action="store_true", help="leave out the cantilever's mirror images")
    p.add_argument("--epochs", type=int, default=300, help="passes of the regression over the data")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--net", type=int, nargs="+", default=[256, 256], help="hidden layers of the policy")
    p.add_argument("--init", type=Path, help="continue from this agent (a .zip with its .json) instead of imitation")
    p.add_argument("--refine-rounds", type=int, default=0, help="rounds of search-refined targets and refitting")
    p.add_argument("--refine-evals", type=int, default=24, help="judged designs per case and round")
    p.add_argument("--refine-sigma", type=float, default=0.1, help="CMA-ES step size in action units")
    p.add_argument("--refine-epochs", type=int, default=60, help="passes of each refit")
    p.add_argument("--workers", type=int, default=1,
                   help="processes for the refinement's searches (the result does not depend on it)")
    p.add_argument("--rl-steps", type=int, default=0, help="PPO steps on the env's reward afterwards")
    p.add_argument("--rl-lr", type=float, default=5e-5, help="PPO learning rate of the second stage")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("agents/warm-start"),
                   help="folder for <Env>.zip and <Env>.json (default: %(default)s)")
    return p.parse_args(argv)


def encoded_targets(env, designs: np.ndarray, conditions: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Observations at the start of each case, and the action whose latent is the encoder's mean."""
    base = env.unwrapped
    generator = base.generator
    observations, actions = [], []
    for start in tqdm(range(0, len(designs), 256), desc="encoding optima", leave=False):
        batch = designs[start : start + 256]
        given = conditions[start : start + 256]
        vectors = None
        if generator.conditions_dim:
            vectors = torch.as_tensor(np.stack([base.generator_conditions(c) for c in given]))
        with torch.no_grad():
            mu, _ = generator.encode(torch.as_tensor(batch), vectors)
        actions.append(np.clip(mu.numpy() / base.latent_bound, -1.0, 1.0))
        for c in given:
            obs, _ = env.reset(options={"conditions": c})
            observations.append(obs)
    return np.stack(observations).astype(np.float32), np.concatenate(actions).astype(np.float32)


def fit_policy(model, obs: np.ndarray, actions: np.ndarray, held: int, epochs: int, lr: float, seed: int
               ) -> dict[str, float]:
    """Fit the policy's mean action to ``actions`` (mean squared error); returns the final losses."""
    policy = model.policy
    torch.manual_seed(seed)
    x, y = torch.as_tensor(obs[:-held]), torch.as_tensor(actions[:-held])
    hx, hy = torch.as_tensor(obs[-held:]), torch.as_tensor(actions[-held:])
    params = list(policy.features_extractor.parameters()) + list(policy.mlp_extractor.policy_net.parameters()) \
        + list(policy.action_net.parameters())
    optimizer = torch.optim.Adam(params, lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)

    def mean_action(o: torch.Tensor) -> torch.Tensor:
        latent_pi, _ = policy.mlp_extractor(policy.extract_features(o, policy.pi_features_extractor))
        return policy.action_net(latent_pi)

    losses = {}
    bar = tqdm(range(epochs), desc="fitting the policy", unit="epoch")
    for _ in bar:
        policy.train()
        order = torch.randperm(len(x))
        for start in range(0, len(x), 128):
            index = order[start : start + 128]
            loss = torch.mean((mean_action(x[index]) - y[index]) ** 2)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        scheduler.step()
        policy.eval()
        with torch.no_grad():
            losses = {"train_mse": float(torch.mean((mean_action(x) - y) ** 2)),
                      "heldout_mse": float(torch.mean((mean_action(hx) - hy) ** 2))}
        bar.set_postfix(train=f"{losses['train_mse']:.4f}", heldout=f"{losses['heldout_mse']:.4f}")
    return losses


def judge_batch(env, actions: np.ndarray, conditions: dict) -> np.ndarray:
    """The env's score (higher is better) of each action under one set of conditions, decoded together."""
    from designgym.agents.baselines import judge_batch as judge

    return judge(env.unwrapped, actions, conditions)[2]


def _refine_case(env, target: np.ndarray, start: np.ndarray, conditions: dict, evals: int, sigma: float,
                 seed: int) -> tuple[np.ndarray, float, bool]:
    """One case: the best of the target, the policy's action ``start`` and a CMA-ES started from it,
    with the score gained over the target and whether the search found the best."""
    import cmaes

    dim = target.shape[0]
    population = max(4, min(8, evals // 3))
    start = np.clip(start, -0.999, 0.999)
    scores = judge_batch(env, np.stack([target, start]), conditions)
    best_score, best = (scores[0], target) if scores[0] >= scores[1] else (scores[1], start)
    from_search = False
    search = cmaes.CMA(mean=start.astype(np.float64), sigma=sigma, bounds=np.tile([-1.0, 1.0], (dim, 1)),
                       population_size=population, seed=seed)
    used = 2
    while used + population <= evals:
        asked = np.stack([search.ask() for _ in range(population)])
        values = judge_batch(env, asked, conditions)
        search.tell([(a, -v) for a, v in zip(asked, values, strict=True)])
        used += population
        k = int(np.argmax(values))
        if values[k] > best_score:
            best_score, best, from_search = values[k], asked[k], True
    return best, float(best_score - scores[0]), from_search


_WORKER_ENV = None


def _start_worker(env_id: str) -> None:
    global _WORKER_ENV
    import gymnasium as gym

    torch.set_num_threads(1)
    _WORKER_ENV = gym.make(env_id)


def _refine_chunk(job: tuple) -> list[tuple[np.ndarray, float, bool]]:
    targets, starts, conditions, evals, sigma, seeds = job
    return [_refine_case(_WORKER_ENV, t, s, c, evals, sigma, seed)
            for t, s, c, seed in zip(targets, starts, conditions, seeds, strict=True)]


def refine_targets(env, model, obs: np.ndarray, conditions: list[dict], targets: np.ndarray, evals: int,
                   sigma: float, seed: int, workers: int = 1) -> tuple[np.ndarray, dict[str, float]]:
    """Better targets: per case, the best of the current target, the policy's action and a short
    CMA-ES started from the policy's action (``evals`` judged designs in all). Case ``i``'s search
    is seeded with ``seed + i``, so the result does not depend on ``workers`` (processes)."""
    predicted = model.predict(obs, deterministic=True)[0]
    seeds = [seed + i for i in range(len(obs))]
    if workers <= 1:
        results = [_refine_case(env, targets[i], predicted[i], conditions[i], evals, sigma, seeds[i])
                   for i in tqdm(range(len(obs)), desc="refining targets", unit="case")]
    else:
        from concurrent.futures import ProcessPoolExecutor

        size = 32
        jobs = [(targets[i:i + size], predicted[i:i + size], conditions[i:i + size], evals, sigma, seeds[i:i + size])
                for i in range(0, len(obs), size)]
        results = []
        with ProcessPoolExecutor(workers, initializer=_start_worker, initargs=(env.spec.id,)) as pool, \
                tqdm(total=len(obs), desc=f"refining targets ({workers} processes)", unit="case") as bar:
            for chunk in pool.map(_refine_chunk, jobs):  # in order
                results.extend(chunk)
                bar.update(len(chunk))
    new = np.stack([best for best, _, _ in results]).astype(np.float32)
    return new, {"mean_score_gain": float(np.mean([gain for _, gain, _ in results])),
                 "search_found_best": sum(found for _, _, found in results) / len(obs)}


def heldout_quality(model, env, obs: np.ndarray, conditions: list[dict], compliance: np.ndarray) -> dict[str, float]:
    """The fitted policy on the held-out optima's conditions: compliance over SIMP's, feasibility."""
    ratios, feasible = [], []
    for o, c, c_simp in zip(obs, conditions, compliance, strict=True):
        env.reset(options={"conditions": c})
        _, _, _, _, info = env.step(model.predict(o, deterministic=True)[0])
        ratios.append(info["objectives"]["compliance"] / c_simp)
        feasible.append(info["feasible"])
    return {"heldout_compliance_ratio_median": float(np.median(ratios)),
            "heldout_compliance_ratio_p90": float(np.quantile(ratios, 0.9)),
            "heldout_feasible_rate": float(np.mean(feasible)), "heldout_cases": len(ratios)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import gymnasium as gym
    from stable_baselines3 import PPO

    sys.path.insert(0, str(Path(__file__).parent))
    from train_generator import load_structures, mirrored_cantilevers, mirrored_conditions

    torch.set_num_threads(1)
    started = time.perf_counter()
    env_id = designgym.make(args.env).spec.id
    settings, designs, conditions, compliance = load_structures(args.data)
    env = gym.make(env_id)
    problem = env.unwrapped.problem
    if settings["problem"] != "cantilever" or problem.nelx != settings["nelx"] or problem.nely != settings["nely"]:
        raise SystemExit(f"{args.data} holds {settings['problem']} designs of {settings['nelx']} x {settings['nely']}; "
                         f"{env_id} needs cantilever optima of {problem.nelx} x {problem.nely}")
    n_held = max(1, len(designs) // 10)  # the generator's held-out tenth, too
    train_d, train_c = designs[:-n_held], conditions[:-n_held]
    if not args.no_mirror:
        train_d = np.concatenate([train_d, mirrored_cantilevers(train_d)])
        train_c = train_c + mirrored_conditions(train_c)
    extra = {k: v for k, v in problem.default_conditions().items() if k not in train_c[0]}
    if extra:  # conditions SIMP does not see (the bracket's build direction): every value, in turn
        names = list(extra)
        space = problem.conditions_space[names[0]]
        values = range(space.start, space.start + space.n)
        train_d = np.concatenate([train_d] * len(values))
        train_c = [{**c, names[0]: v} for v in values for c in train_c]
        turns = np.arange(n_held) % len(values)
        held_c = [{**c, names[0]: int(v)} for c, v in zip(conditions[-n_held:], turns, strict=True)]
    else:
        held_c = conditions[-n_held:]
    obs, actions = encoded_targets(env, np.concatenate([train_d, designs[-n_held:]]), train_c + held_c)

    vec = make_batched_vec_env(env_id, n_envs=4, seed=args.seed)
    policy_kwargs = {"net_arch": {"pi": list(args.net), "vf": [64, 64]}, "log_std_init": -2.0}
    model = PPO("MlpPolicy", vec, seed=args.seed, device="cpu", learning_rate=args.rl_lr, n_steps=256,
                batch_size=256, n_epochs=5, policy_kwargs=policy_kwargs)
    if args.init is not None:
        sidecar = args.init.with_suffix(".json")
        if not args.init.is_file() or not sidecar.is_file():
            raise SystemExit(f"--init {args.init}: needs the agent's .zip and its .json beside it")
        previous = json.loads(sidecar.read_text())
        if previous.get("env") != env_id:
            raise SystemExit(f"--init {args.init} is an agent for {previous.get('env')}, not {env_id}")
        model.set_parameters(str(args.init), device="cpu")
        stages = list(previous.get("stages", []))
        previous_commands = previous.get("commands") or [previous["command"]]
        print(f"continuing from {args.init} ({len(stages)} stages)")
    else:
        losses = fit_policy(model, obs, actions, n_held, args.epochs, args.lr, args.seed)
        quality = heldout_quality(model, env, obs[-n_held:], held_c, compliance[-n_held:])
        print(f"after imitation: {losses} {quality}")
        stages = [{"stage": "imitation", "cases": len(train_c), "epochs": args.epochs, **losses, **quality}]
        previous_commands = []
    done_rounds = sum(1 for stage in stages if stage["stage"] == "refinement")
    n_train = len(train_c)
    for round_ in range(done_rounds, done_rounds + args.refine_rounds):
        refined, gain = refine_targets(env, model, obs[:n_train], train_c, actions[:n_train], args.refine_evals,
                                       args.refine_sigma, args.seed + 100_000 * round_, workers=args.workers)
        actions = np.concatenate([refined, actions[n_train:]])
        losses = fit_policy(model, obs, actions, n_held, args.refine_epochs, args.lr / 3, args.seed + round_ + 1)
        quality = heldout_quality(model, env, obs[-n_held:], held_c, compliance[-n_held:])
        print(f"after refinement round {round_ + 1}: {gain} {losses} {quality}")
        stages.append({"stage": "refinement", "round": round_ + 1, "evaluations_per_case": args.refine_evals,
                       "sigma": args.refine_sigma, "epochs": args.refine_epochs, **gain, **losses, **quality})
    if args.rl_steps:
        model.learn(args.rl_steps, progress_bar=True)
        quality = heldout_quality(model, env, obs[-n_held:], held_c, compliance[-n_held:])
        print(f"after {args.rl_steps} PPO steps: {quality}")
        stages.append({"stage": "ppo", "steps": args.rl_steps, "learning_rate": args.rl_lr, **quality})
    vec.close()
    env.close()

    name = env_id.split("/")[-1]
    args.out.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out / f"{name}.zip") as tmp:  # the temporary name ends in .zip as well
        model.save(tmp)
    sidecar = {
        "env": env_id, "algo": "ppo", "env_kwargs": {},
        "script": "scripts/train_pretrained_agent.py",
        # Every command that made it, in order (a run with --init continues the agent of the one before).
        "commands": [*previous_commands, " ".join(["python", "scripts/train_pretrained_agent.py",
                                                   *(argv if argv is not None else sys.argv[1:])])],
        "data": {"source": "scripts/make_structures_dataset.py", "settings": settings, "heldout": n_held,
                 "mirrored": not args.no_mirror},
        "policy": policy_kwargs, "stages": stages, "generator": env.unwrapped.generator.name,
        "seconds": round(time.perf_counter() - started, 1), "torch_version": torch.__version__,
    }
    write_text_atomic(args.out / f"{name}.json", json.dumps(sidecar, indent=2) + "\n")
    print(f"saved {args.out / (name + '.zip')} ({(args.out / (name + '.zip')).stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
