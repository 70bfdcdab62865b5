"""How much a one-shot answer gains by choosing among the near cases' latents, offline.

Takes a shipped (or given) agent with a case memory (``answer="nearest"``, ``"vote"`` or ``"rank"``) and:

1. judges every test case (the env's 200-case test split) on the remembered latents of its
   ``--candidates`` nearest states (by the agent's own weighted distance), each scored by the
   suite's normalized score: a table from which any rule that answers with one of those latents
   is scored without judging again;
2. draws ``--briefs`` fresh briefs (seeded apart from the test split) and judges each on the
   latents of its ``--latents`` nearest states (scaled within the brief as
   :func:`designgym.agents.distill._scaled_within` does: legal designs from 0, the worst, to 1,
   the best; illegal ones 0);
3. scores, on the test split, the nearest case's latent, the best of the 5, 8, 16, 32 and all
   ``--candidates`` nearest (oracles that judge on the test brief itself), and the vote of the
   ``--neighbours`` most similar judged briefs (what ``answer="vote"`` answers) for each number
   of briefs and latents up to the ones given, and with ``--rank-models M`` the ranker of
   ``answer="rank"`` (an ensemble of M MLPs fitted to all but the last ``--rank-validation``
   judged briefs, its first choice also scored on those held out; with ``--rank-weighted`` also
   one fitted on the features as the agent's distance weighs them, as rankers were before their
   inputs were the features as they are); paired against CMA-ES at 100 designs when
   ``--searches`` names a benchmarks/score.py output folder that holds its searches. Every row also
   gives the share of test cases where the answer is at the reference's quality (a normalized score
   of 100): where a brief's designs are either as good as the reference or no better than its
   start (FloorPlan-v2), that share is what the interquartile mean follows.

    python benchmarks/choice_among_cases.py --env designgym/Massing-v2 --searches /tmp/score
    python benchmarks/choice_among_cases.py --env designgym/FloorPlan-v2 --agent runs/my-run --briefs 3000
    python benchmarks/choice_among_cases.py --env designgym/Massing-v2 --briefs 16000 --rank-models 5 \\
        --searches /tmp/score
"""

from __future__ import annotations

import argparse
import glob
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch as th
from tqdm.auto import tqdm

from designgym.agents.distill import _scaled_within
from designgym.agents.distill_policy import MEMORY_ANSWERS, DistillPolicy
from designgym.agents.evaluation import load_agent, pretrained_path
from designgym.agents.scoring import _objective, at_least_as_good, iqm, shipped_references, test_split
from designgym.agents.search import judge
from designgym.envs.registration import resolve_env_id

#: A score this high is the reference's quality (or better): the share of cases there tells how
#: often a rule finds what a 1,000-design search found, where a case's score is all or nothing.
AT_REFERENCE = 100.0 - 1e-6


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", required=True)
    p.add_argument("--agent", default=None, help="run folder (default: the agent shipped for the env)")
    p.add_argument("--candidates", type=int, default=30, help="nearest latents judged per test case")
    p.add_argument("--briefs", type=int, default=6000)
    p.add_argument("--latents", type=int, default=16, help="nearest latents judged per fresh brief")
    p.add_argument("--neighbours", type=int, nargs="+", default=[10, 20, 40])
    p.add_argument("--rank-models", type=int, default=0, help="fit a ranker of this many MLPs (0: none)")
    p.add_argument("--rank-validation", type=int, default=1000, help="judged briefs held out of the ranker's fit")
    p.add_argument("--rank-weighted", action="store_true",
                   help="also fit a ranker on the features as the agent's distance weighs them")
    p.add_argument("--searches", type=Path, default=None, help="benchmarks/score.py --out folder with CMA-ES rows")
    p.add_argument("--seed", type=int, default=987_654)
    p.add_argument("--out", type=Path, default=None, help="JSON of the table (default: print only)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    env_id = resolve_env_id(args.env)
    agent = load_agent(args.agent or pretrained_path(env_id))
    policy = agent.model.policy
    if getattr(policy, "answer", None) not in MEMORY_ANSWERS or not len(policy.memory_features):
        raise SystemExit(f"{args.agent or env_id}: the agent has no case memory (answer='nearest', 'vote' or 'rank')")
    if args.rank_models and args.briefs <= args.rank_validation:
        raise SystemExit(f"--rank-validation {args.rank_validation} leaves none of the {args.briefs} briefs to fit")
    env = gym.make(env_id).unwrapped
    refs = shipped_references(env_id)
    actions = policy.memory_actions.cpu().numpy()

    @th.no_grad()
    def observe(case):
        """The policy's raw features of the case (what a ranker is fitted on and asked)."""
        obs, _ = env.reset(options=case)
        return policy.features(policy.obs_to_tensor(obs)[0])[0]

    @th.no_grad()
    def nearest(raw, k):
        return policy.candidates(policy.scaled(raw[None]), k)[0].numpy()

    @th.no_grad()
    def weighted(raws):  # the features as the agent's distance weighs them
        return policy.scaled(th.stack(raws)) * th.sqrt(policy.memory_weights)

    test_raw, test_tried, test_scores = [], [], []
    for i, case in enumerate(tqdm(test_split(env_id), desc="test cases", unit="case")):
        raw = observe(case)
        tried = nearest(raw, args.candidates)
        test_raw.append(raw)
        test_tried.append(tried)
        test_scores.append(normalized_scores(env, refs, i, case["conditions"], actions[tried]))
    test_tried, test_scores = np.array(test_tried), np.array(test_scores, dtype=float)

    rng = np.random.default_rng(args.seed)
    brief_raw, brief_tried, brief_scores = [], [], []
    for _ in tqdm(range(args.briefs), desc="fresh briefs", unit="brief"):
        case = env.sample_case(rng)
        raw = observe(case)
        tried = nearest(raw, args.latents)
        judged = judge(env, actions[tried], case["conditions"])
        brief_raw.append(raw)
        brief_tried.append(tried)
        brief_scores.append((judged.feasible, judged.scores))
    distances = th.cdist(weighted(test_raw), weighted(brief_raw)).numpy()
    cmaes = _cmaes_scores(args.searches, env_id, refs) if args.searches else None

    rows = []

    def row(name, scores, paired=cmaes is not None):
        scores = np.asarray(scores, dtype=float)
        entry = {"rule": name, "iqm": iqm(scores), "at_reference": float(np.mean(scores >= AT_REFERENCE))}
        if paired:
            entry["at_least_cmaes100"] = at_least_as_good(scores, cmaes)
        rows.append(entry)
        paired = f"  >= CMA-ES@100 {100 * entry['at_least_cmaes100']:5.1f} %" if "at_least_cmaes100" in entry else ""
        print(f"{name:48s} IQM {entry['iqm']:5.1f}  at the reference {100 * entry['at_reference']:5.1f} %{paired}",
              flush=True)

    if cmaes is not None:
        row("CMA-ES@100", cmaes, paired=False)
    row("nearest case", test_scores[:, 0])
    judged = test_scores.shape[1]  # --candidates, or the whole memory where it holds fewer
    for k in sorted({k for k in (5, 8, 16, 32) if k < judged} | {judged}):
        row(f"best of the {k} nearest (oracle)", test_scores[:, :k].max(axis=1))

    def scored(i, pick):
        """Test case ``i``'s score for the remembered latent ``pick``; one outside the case's judged
        candidates is scored as the nearest case (rare)."""
        where = np.nonzero(test_tried[i] == pick)[0]
        return test_scores[i, where[0]] if len(where) else test_scores[i, 0]

    for briefs in sorted({args.briefs // 2, args.briefs}):
        for latents in sorted({max(1, args.latents // 2), args.latents}):
            tried = np.array(brief_tried[:briefs])[:, :latents]
            scaled = np.stack([_scaled_within(f[:latents], s[:latents]) for f, s in brief_scores[:briefs]])
            for k in args.neighbours:
                chosen = []
                for i in range(len(test_tried)):
                    near = np.argsort(distances[i, :briefs], kind="stable")[:k]
                    total = np.zeros(len(actions))
                    count = np.zeros(len(actions))
                    np.add.at(total, tried[near].ravel(), scaled[near].ravel())
                    np.add.at(count, tried[near].ravel(), 1.0)
                    valid = count >= max(1.0, 0.25 * len(near))
                    pick = int(np.where(valid, total / np.maximum(count, 1), -1).argmax()) if valid.any() else -1
                    chosen.append(scored(i, pick))
                row(f"vote: {briefs} briefs x {latents} latents, {k} neighbours", np.array(chosen))
    if args.rank_models:
        fit = args.briefs - args.rank_validation
        briefs_raw = th.stack(brief_raw)
        tried = th.as_tensor(np.array(brief_tried), dtype=th.long)
        scaled = th.as_tensor(np.stack([_scaled_within(f, s) for f, s in brief_scores]), dtype=th.float32)
        for weigh in (False, True) if args.rank_weighted else (False,):
            ranker = DistillPolicy(policy.observation_space, policy.action_space, lambda _: 1e-3, answer="rank",
                                   rank_models=args.rank_models)
            for name in ("feature_mean", "feature_var", "feature_count", "memory_weights"):
                getattr(ranker, name).copy_(getattr(policy, name))
            ranker.remember(policy.memory_features, policy.memory_actions)
            ranker.remember_briefs(briefs_raw[:fit], tried[:fit], scaled[:fit])
            ranker.fit_ranker(seed=args.seed, weighted=weigh)
            with th.no_grad():
                held = ranker.rank(ranker.scaled(briefs_raw[fit:]))
                test = ranker.rank(ranker.scaled(th.stack(test_raw)))
            hit = tried[fit:] == held[:, None]
            inputs = "weighted features" if weigh else "features as they are"
            print(f"ranker ({inputs}): first choice on the {args.briefs - fit} held-out briefs "
                  f"{float((scaled[fit:] * hit).sum(1).mean()):.3f} (the nearest case: "
                  f"{float(scaled[fit:, 0].mean()):.3f}, on {float(hit.any(1).float().mean()):.0%} of them among the "
                  "latents judged)")
            chosen = [scored(i, pick) for i, pick in enumerate(test.tolist())]
            row(f"rank: {fit} briefs x {args.latents} latents, {args.rank_models} models"
                + (", weighted features" if weigh else ""), np.array(chosen))
    if args.out:
        args.out.write_text(json.dumps({"env": env_id, "agent": str(args.agent or pretrained_path(env_id)),
                                        "rows": rows}, indent=2))
    return 0


def normalized_scores(env, refs, index: int, conditions, latents: np.ndarray) -> np.ndarray:
    """The suite's normalized score of each latent's design for test case ``index`` (judged once each)."""
    judged = judge(env, latents, conditions)
    return np.array([refs.normalize(index, _objective(env, e.objectives), bool(e.feasible))
                     for e in judged.evaluations])


def _cmaes_scores(folder: Path, env_id: str, refs) -> np.ndarray:
    found = {}
    name = env_id.split("/")[-1]
    for path in glob.glob(str(folder / "searches" / f"{name}-cmaes-*.json")):
        for r in json.loads(Path(path).read_text())["rows"]:
            best = r["budgets"].get("100")
            if best is not None:
                found[r["case"]] = refs.normalize(r["case"], best["objective"], best["feasible"])
    if len(found) < len(refs.cases):
        raise SystemExit(f"{folder}: CMA-ES@100 searches for {len(found)} of {len(refs.cases)} cases of {env_id}; run "
                         f"benchmarks/score.py --envs {env_id} --methods cmaes --budgets 100 --top-cases 200 first")
    return np.array([found[i] for i in range(len(refs.cases))])


if __name__ == "__main__":
    raise SystemExit(main())
