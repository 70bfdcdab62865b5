"""The parts of search distillation that hold what it learns: the policy and the case buffer.

Kept apart from the algorithm (:mod:`designgym.agents.distill`) because both outlive a run: the
policy is what a saved agent is, and the buffer is what a checkpoint keeps for ``--resume``
(as plain arrays, never pickled).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, CombinedExtractor, FlattenExtractor, create_mlp
from stable_baselines3.common.type_aliases import Schedule
from torch import nn

ANSWERS = ("regression", "nearest", "vote")
#: With ``answer="vote"``: the share of the similar judged briefs that must have tried a latent
#: before its mean score counts (a latent tried on one of twenty briefs is not a vote).
VOTE_QUORUM = 0.25


class DistillPolicy(BasePolicy):
    """A deterministic policy: normalised features, then an MLP with a tanh to the action bounds,
    or the expert's action in the nearest remembered state.

    The observation features are standardised with a running mean and variance kept in the
    policy (saved with it), updated from the cases the algorithm collects, and clipped to
    ``[-10, 10]``: the objective and violation features of design envs differ by orders of
    magnitude, and a feature constant in training (the zero latent of direct mode) must not blow
    up when it changes.

    How it answers (``answer``):

    - ``"regression"``: the MLP, fitted to the expert's actions by mean squared error.
    - ``"nearest"``: the expert's action in the remembered state nearest to the observation
      (Euclidean distance between normalised features, each weighted by ``memory_weights``): a
      case memory, which the algorithm refills with every state of its buffer after each round
      (and whose weights it may fit, ``metric_cases``). Where the best designs of similar
      briefs are different shapes (one bracket's arm above the load, its neighbour's below), a
      regression answers with their average, a design that is neither; the nearest case answers
      with one that worked. The MLP is then not trained; it answers only while the memory is
      empty. The memory is saved with the policy (a few floats per case).
    - ``"vote"``: the nearest case's memory, and besides it a memory of *judged briefs*: briefs
      drawn after training, each with the remembered actions of its nearest states tried on it
      and how well each did (scaled to [0, 1] within the brief). A new brief gets the remembered
      action that did best on average over the ``vote_neighbours`` most similar judged briefs
      (among actions tried on at least a quarter of them; the nearest case's action where none
      was). The nearest case's best latent is best for that case; which of the near cases'
      latents is best for a brief between them is a question the judged briefs answer. Until
      the algorithm has judged briefs (``vote_briefs``), it answers as ``"nearest"``.

    Args:
        observation_space, action_space, lr_schedule: as for every SB3 policy.
        net_arch: hidden layer sizes (default ``[256, 256]``).
        activation_fn: activation of the hidden layers (default ``nn.ReLU``).
        answer: ``"regression"`` (default), ``"nearest"`` or ``"vote"``; see above.
        vote_neighbours: with ``answer="vote"``, the judged briefs each answer averages over.
        features_extractor_class: ``FlattenExtractor`` (``MlpPolicy``) or ``CombinedExtractor``
            (``MultiInputPolicy``, dict observations).
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        net_arch: list[int] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        answer: str = "regression",
        vote_neighbours: int = 20,
        features_extractor_class: type[BaseFeaturesExtractor] = FlattenExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            observation_space, action_space, features_extractor_class, features_extractor_kwargs,
            optimizer_class=optimizer_class, optimizer_kwargs=optimizer_kwargs, squash_output=True,
            normalize_images=normalize_images,
        )
        if answer not in ANSWERS:
            raise ValueError(f"answer must be one of {', '.join(map(repr, ANSWERS))}, got {answer!r}")
        if int(vote_neighbours) < 1:
            raise ValueError(f"vote_neighbours must be at least 1, got {vote_neighbours!r}")
        self.vote_neighbours = int(vote_neighbours)
        self.net_arch = [256, 256] if net_arch is None else [int(n) for n in net_arch]
        self.activation_fn = activation_fn
        self.answer = answer
        self.features_extractor = self.make_features_extractor()
        dim = self.features_extractor.features_dim
        self.register_buffer("feature_mean", th.zeros(dim))
        self.register_buffer("feature_var", th.ones(dim))
        self.register_buffer("feature_count", th.zeros(()))
        action_dim = int(np.prod(action_space.shape))
        if answer in ("nearest", "vote"):  # resized to the saved memory when an agent loads (_load_from_state_dict)
            self.register_buffer("memory_features", th.zeros(0, dim))
            self.register_buffer("memory_actions", th.zeros(0, action_dim))
            self.register_buffer("memory_weights", th.ones(dim))
        if answer == "vote":  # judged briefs: features, the memory indices tried on each, their scaled scores
            self.register_buffer("brief_features", th.zeros(0, dim))
            self.register_buffer("brief_tried", th.zeros(0, 0, dtype=th.long))
            self.register_buffer("brief_scores", th.zeros(0, 0))
        self.mu = nn.Sequential(*create_mlp(dim, action_dim, self.net_arch, activation_fn, squash_output=True))
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(net_arch=self.net_arch, activation_fn=self.activation_fn, answer=self.answer,
                    vote_neighbours=self.vote_neighbours,
                    features_extractor_class=self.features_extractor_class,
                    features_extractor_kwargs=self.features_extractor_kwargs)
        return data

    def features(self, obs: Any) -> th.Tensor:
        return self.extract_features(obs, self.features_extractor)

    def forward(self, obs: Any) -> th.Tensor:
        return self.action_from_features(self.features(obs))

    def scaled(self, features: th.Tensor) -> th.Tensor:
        """Features standardised by the running mean and variance, clipped to ``[-10, 10]``."""
        return th.clamp((features - self.feature_mean) / th.sqrt(self.feature_var + 1e-8), -10.0, 10.0)

    def action_from_features(self, features: th.Tensor) -> th.Tensor:
        scaled = self.scaled(features)
        if self.answer == "vote" and len(self.brief_features):
            return self.memory_actions[self.vote(scaled)]
        if self.answer != "regression" and len(self.memory_features):
            return self.memory_actions[self.nearest(scaled, self.scaled(self.memory_features))]
        return self.mu(scaled)

    def nearest(self, scaled: th.Tensor, memory: th.Tensor) -> th.Tensor:
        """Index in ``memory`` (scaled features) of each row's nearest state, by the distance
        ``sqrt(sum_f w_f (x_f - m_f)^2)`` with the memory's weights ``w``."""
        root = th.sqrt(self.memory_weights)
        return th.cdist(scaled * root, memory * root).argmin(dim=1)

    def vote(self, scaled: th.Tensor) -> th.Tensor:
        """Index in the memory of each row's answer by the judged briefs (``answer="vote"``): the
        remembered action with the best mean score over the row's ``vote_neighbours`` nearest
        briefs, among those tried on at least :data:`VOTE_QUORUM` of them; the nearest state's
        action where none was."""
        root = th.sqrt(self.memory_weights)
        briefs = self.scaled(self.brief_features) * root
        k = min(self.vote_neighbours, len(briefs))
        near = th.cdist(scaled * root, briefs).topk(k, dim=1, largest=False).indices
        tried = self.brief_tried[near].flatten(1)
        scores = self.brief_scores[near].flatten(1)
        shape = (len(scaled), len(self.memory_actions))
        total = th.zeros(shape, device=scaled.device).scatter_add_(1, tried, scores)
        count = th.zeros(shape, device=scaled.device).scatter_add_(1, tried, th.ones_like(scores))
        mean = th.where(count >= max(1.0, VOTE_QUORUM * k), total / count.clamp(min=1.0), th.full_like(total, -1.0))
        best, chosen = mean.max(dim=1)
        fallback = self.nearest(scaled, self.scaled(self.memory_features))
        return th.where(best >= 0, chosen, fallback)

    @th.no_grad()
    def remember(self, features: th.Tensor, actions: th.Tensor) -> None:
        """Replace the case memory (``answer="nearest"`` or ``"vote"``): states' raw features and
        the expert's action in each. The judged briefs of a vote refer to the old memory's
        actions: they are forgotten."""
        if self.answer == "regression":
            raise ValueError("only a policy with answer='nearest' or 'vote' remembers states, this one answers by "
                             "regression")
        if len(features) != len(actions):
            raise ValueError(f"{len(features)} states but {len(actions)} actions to remember")
        device = self.feature_mean.device
        self.memory_features = features.detach().to(device, th.float32).clone()
        self.memory_actions = actions.detach().to(device, th.float32).clone()
        if self.answer == "vote":
            self.remember_briefs(th.zeros(0, features.shape[1]), th.zeros(0, 0, dtype=th.long), th.zeros(0, 0))

    @th.no_grad()
    def remember_briefs(self, features: th.Tensor, tried: th.Tensor, scores: th.Tensor) -> None:
        """Replace the judged briefs (``answer="vote"``): their raw features, the memory indices
        of the actions tried on each (one row per brief) and each one's score, scaled to [0, 1]
        within its brief (1 the best)."""
        if self.answer != "vote":
            raise ValueError(f"only a policy with answer='vote' remembers judged briefs, this one answers by "
                             f"{self.answer}")
        if not (len(features) == len(tried) == len(scores)) or tried.shape != scores.shape:
            raise ValueError(f"judged briefs: {len(features)} features, tried {tuple(tried.shape)} and scores "
                             f"{tuple(scores.shape)} must have one row per brief and one score per action tried")
        if tried.numel() and (int(tried.min()) < 0 or int(tried.max()) >= len(self.memory_actions)):
            raise ValueError(f"judged briefs tried actions outside the memory's {len(self.memory_actions)}")
        device = self.feature_mean.device
        self.brief_features = features.detach().to(device, th.float32).clone()
        self.brief_tried = tried.detach().to(device, th.long).clone()
        self.brief_scores = scores.detach().to(device, th.float32).clone()

    def _load_from_state_dict(self, state_dict: Any, prefix: str, *args: Any, **kwargs: Any) -> None:
        # The saved memory's size, not the empty one's.
        for name in ("memory_features", "memory_actions", "brief_features", "brief_tried", "brief_scores"):
            if name in self._buffers and prefix + name in state_dict:
                self._buffers[name] = th.empty_like(state_dict[prefix + name], device=self.feature_mean.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _predict(self, observation: Any, deterministic: bool = False) -> th.Tensor:
        return self(observation)  # deterministic either way: exploration is the search's

    @th.no_grad()
    def update_normalizer(self, features: th.Tensor) -> None:
        """Merge a batch of features into the running mean and variance (Chan et al.'s update)."""
        n = float(features.shape[0])
        if n == 0:
            return
        mean, var = features.mean(0), features.var(0, unbiased=False)
        count = float(self.feature_count)
        total = count + n
        delta = mean - self.feature_mean
        self.feature_mean += delta * n / total
        m2 = self.feature_var * count + var * n + delta**2 * count * n / total
        self.feature_var.copy_(m2 / total)
        self.feature_count.fill_(total)


class MultiInputDistillPolicy(DistillPolicy):
    """:class:`DistillPolicy` for dict observations (``observation_layout="dict"``)."""

    def __init__(self, *args: Any, features_extractor_class: type[BaseFeaturesExtractor] = CombinedExtractor,
                 **kwargs: Any) -> None:
        super().__init__(*args, features_extractor_class=features_extractor_class, **kwargs)


class CaseBuffer:
    """The cases seen so far: the observations to label, each case's conditions, start latent,
    best action and its gated key. Saved and loaded as plain arrays (``.npz``), never pickled.

    ``obs`` holds one row per labelled state (one per case in direct mode, one per step in delta
    mode), ``state_case`` which case it belongs to and ``state_latent`` its latent then.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = int(capacity)
        self.cases: list[dict[str, Any]] = []
        self.obs: list[Any] = []
        self.state_case: list[int] = []
        self.state_latent: list[np.ndarray] = []
        self.state_left: list[int] = []
        self.added_states = 0  # states ever added; the newest are the last of ``obs``
        self._first = 0  # id of cases[0]: ids grow, the oldest cases leave first

    def __len__(self) -> int:
        return len(self.cases)

    def add(self, case: dict[str, Any], states: list[tuple[Any, np.ndarray, int]]) -> None:
        case_id = self._first + len(self.cases)
        self.cases.append(case)
        for obs, latent, left in states:
            self.added_states += 1
            self.obs.append(obs)
            self.state_case.append(case_id)
            self.state_latent.append(np.asarray(latent, dtype=np.float32))
            self.state_left.append(int(left))
        while len(self.cases) > self.capacity:
            self._first += 1
            self.cases.pop(0)
            while self.state_case and self.state_case[0] < self._first:
                for column in (self.obs, self.state_case, self.state_latent, self.state_left):
                    column.pop(0)

    def case(self, case_id: int) -> dict[str, Any]:
        return self.cases[case_id - self._first]

    def first_state(self, case_id: int) -> int:
        """Index in ``obs`` of the case's first state (its start observation)."""
        return int(np.searchsorted(np.asarray(self.state_case), case_id))

    def condition_vectors(self, problem: Any) -> np.ndarray:
        """The cases' conditions as the problem's scaled vectors, one row a case (cached)."""
        cached = getattr(self, "_vectors", None)
        have = 0 if cached is None else len(cached)
        if cached is None or have > len(self.cases) or getattr(self, "_vectors_first", None) != self._first:
            cached, have = np.zeros((0, problem.conditions_dim), np.float32), 0
        if have < len(self.cases):
            new = [problem.conditions_vector(c["conditions"]) for c in self.cases[have:]]
            cached = np.concatenate([cached, np.stack(new)])
        self._vectors, self._vectors_first = cached, self._first
        return cached

    def ids(self) -> range:
        return range(self._first, self._first + len(self.cases))

    # -- plain-array storage ----------------------------------------------------------------

    def to_arrays(self) -> dict[str, np.ndarray]:

        out: dict[str, np.ndarray] = {
            "capacity": np.array(self.capacity), "first": np.array(self._first),
            "added_states": np.array(self.added_states),
            "cases": np.array(json.dumps([_case_json(c) for c in self.cases])),
            "state_case": np.array(self.state_case, dtype=np.int64),
            "state_latent": np.array(self.state_latent, dtype=np.float32).reshape(len(self.state_case), -1),
            "state_left": np.array(self.state_left, dtype=np.int64),
        }
        if self.obs and isinstance(self.obs[0], dict):
            for key in self.obs[0]:
                out[f"obs/{key}"] = np.stack([o[key] for o in self.obs])
        elif self.obs:
            out["obs"] = np.stack(self.obs)
        return out

    @classmethod
    def from_arrays(cls, data: Any) -> CaseBuffer:

        buffer = cls(int(data["capacity"]))
        buffer._first = int(data["first"])
        buffer.added_states = int(data["added_states"])
        buffer.cases = [_case_from_json(c) for c in json.loads(str(data["cases"]))]
        buffer.state_case = [int(v) for v in data["state_case"]]
        buffer.state_latent = [np.asarray(v, dtype=np.float32) for v in data["state_latent"]]
        buffer.state_left = [int(v) for v in data["state_left"]]
        keys = [k for k in data.files if k.startswith("obs/")]
        if keys:
            n = len(buffer.state_case)
            buffer.obs = [{k[4:]: np.asarray(data[k][i]) for k in keys} for i in range(n)]
        elif "obs" in data.files:
            buffer.obs = [np.asarray(o) for o in data["obs"]]
        return buffer


def _case_json(case: dict[str, Any]) -> dict[str, Any]:
    return {"conditions": {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in case["conditions"].items()},
            "start": np.asarray(case["start"]).tolist(), "action": np.asarray(case["action"]).tolist(),
            "feasible": bool(case["feasible"]), "score": float(case["score"])}


def _case_from_json(case: dict[str, Any]) -> dict[str, Any]:
    return {"conditions": dict(case["conditions"]), "start": np.asarray(case["start"], dtype=np.float32),
            "action": np.asarray(case["action"], dtype=np.float32), "feasible": bool(case["feasible"]),
            "score": float(case["score"])}
