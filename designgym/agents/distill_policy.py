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
from tqdm.auto import tqdm

ANSWERS = ("regression", "nearest", "vote", "rank")
#: The answers that keep a case memory, and those that also keep judged briefs.
MEMORY_ANSWERS = ("nearest", "vote", "rank")
BRIEF_ANSWERS = ("vote", "rank")
#: With ``answer="vote"``: the share of the similar judged briefs that must have tried a latent
#: before its mean score counts (a latent tried on one of twenty briefs is not a vote).
VOTE_QUORUM = 0.25
#: With ``answer="rank"``: the temperature of the target distribution over a brief's tried
#: actions (softmax of the scores in [0, 1] over it): 0.1 puts most of the weight on the best few.
RANK_TEMPERATURE = 0.1


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
    - ``"rank"``: the judged briefs of ``"vote"``, learned from instead of averaged over: an
      ensemble of ``rank_models`` small MLPs scores each of a brief's candidates (the actions of
      its nearest states, as many as each judged brief tried) from the brief's features (as they
      are, not as the distance weighs them), the candidate state's offset from them, the
      candidate action and the distance, and is fitted to rank each judged brief's tried
      actions as they scored (a listwise loss: cross-entropy against the softmax of the scores
      at :data:`RANK_TEMPERATURE`). A new brief gets the
      candidate the ensemble ranks first (the sum of the models' log-probabilities). The vote
      averages scores over whole neighbourhoods of briefs; the ranker learns how a latent's
      worth changes across them. Until it is fitted, it answers as ``"nearest"``; once it is,
      the judged briefs are not kept (the ranker and the memory answer, a saved agent stays small).

    Args:
        observation_space, action_space, lr_schedule: as for every SB3 policy.
        net_arch: hidden layer sizes (default ``[256, 256]``).
        activation_fn: activation of the hidden layers (default ``nn.ReLU``).
        answer: ``"regression"`` (default), ``"nearest"``, ``"vote"`` or ``"rank"``; see above.
        vote_neighbours: with ``answer="vote"``, the judged briefs each answer averages over.
        rank_models: with ``answer="rank"``, the MLPs of the ensemble.
        rank_hidden: their two hidden layers' width.
        rank_epochs: passes over the judged briefs that fit each of them.
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
        rank_models: int = 5,
        rank_hidden: int = 256,
        rank_epochs: int = 60,
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
        for name, value in (("rank_models", rank_models), ("rank_hidden", rank_hidden), ("rank_epochs", rank_epochs)):
            if int(value) < 1:
                raise ValueError(f"{name} must be at least 1, got {value!r}")
        self.vote_neighbours = int(vote_neighbours)
        self.rank_models, self.rank_hidden, self.rank_epochs = int(rank_models), int(rank_hidden), int(rank_epochs)
        self.net_arch = [256, 256] if net_arch is None else [int(n) for n in net_arch]
        self.activation_fn = activation_fn
        self.answer = answer
        self.features_extractor = self.make_features_extractor()
        dim = self.features_extractor.features_dim
        self.register_buffer("feature_mean", th.zeros(dim))
        self.register_buffer("feature_var", th.ones(dim))
        self.register_buffer("feature_count", th.zeros(()))
        action_dim = int(np.prod(action_space.shape))
        if answer in MEMORY_ANSWERS:  # resized to the saved memory when an agent loads (_load_from_state_dict)
            self.register_buffer("memory_features", th.zeros(0, dim))
            self.register_buffer("memory_actions", th.zeros(0, action_dim))
            self.register_buffer("memory_weights", th.ones(dim))
        if answer in BRIEF_ANSWERS:  # judged briefs: features, the memory indices tried on each, their scaled scores
            self.register_buffer("brief_features", th.zeros(0, dim))
            self.register_buffer("brief_tried", th.zeros(0, 0, dtype=th.long))
            self.register_buffer("brief_scores", th.zeros(0, 0))
        if answer == "rank":  # input: brief, candidate state's offset, candidate action, distance
            width = 2 * dim + action_dim + 1
            self.register_buffer("rank_fitted", th.zeros((), dtype=th.bool))  # to the current memory
            self.register_buffer("rank_candidates", th.zeros((), dtype=th.long))  # near actions it ranks
            # Whether its inputs are the features as the memory's distance weighs them (rankers
            # fitted before the buffer existed) rather than as they are (every ranker fitted since).
            self.register_buffer("rank_weighted", th.zeros((), dtype=th.bool))
            self.rankers = RankerEnsemble(self.rank_models, width, self.rank_hidden, activation_fn)
        self.mu = nn.Sequential(*create_mlp(dim, action_dim, self.net_arch, activation_fn, squash_output=True))
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(net_arch=self.net_arch, activation_fn=self.activation_fn, answer=self.answer,
                    vote_neighbours=self.vote_neighbours, rank_models=self.rank_models,
                    rank_hidden=self.rank_hidden, rank_epochs=self.rank_epochs,
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
        if self.answer == "rank" and bool(self.rank_fitted):
            return self.memory_actions[self.rank(scaled)]
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

    def candidates(self, scaled: th.Tensor, k: int) -> th.Tensor:
        """Memory indices of each row's ``k`` nearest states, nearest first (the weighted distance)."""
        root = th.sqrt(self.memory_weights)
        memory = self.scaled(self.memory_features) * root
        k = min(k, len(memory))
        return th.cdist(scaled * root, memory).topk(k, dim=1, largest=False).indices

    def _rank_inputs(self, scaled: th.Tensor, tried: th.Tensor) -> th.Tensor:
        """The rankers' input for each row's candidates ``tried`` (memory indices):
        ``(rows, candidates, 2 * features + action + 1)``.

        The features are standardised but not weighted by the memory's distance: a fitted metric
        may weigh a condition 0 (the nearest case's latent does not depend on it) while which of
        the near latents suits the brief does (FloorPlan-v2's offline ranker on 3,000 briefs: test
        IQM 50.6 with them as they are, 40.4 weighted, benchmarks/RESULTS.md section 18). Rankers
        saved before this (``rank_weighted``) keep the weighted inputs they were fitted on."""
        root = th.sqrt(self.memory_weights) if bool(self.rank_weighted) else 1.0
        here = (scaled * root)[:, None, :].expand(-1, tried.shape[1], -1)
        there = (self.scaled(self.memory_features) * root)[tried]
        offset = there - here
        return th.cat([here, offset, self.memory_actions[tried], offset.norm(dim=-1, keepdim=True)], dim=-1)

    def _rank_logits(self, inputs: th.Tensor) -> th.Tensor:
        """The ensemble's summed log-probabilities over each row's candidates."""
        return th.log_softmax(self.rankers(inputs), dim=-1).sum(dim=0)

    def rank(self, scaled: th.Tensor) -> th.Tensor:
        """Index in the memory of each row's answer by the ranker (``answer="rank"``): of the
        actions of its nearest states (as many as each judged brief tried), the one the ensemble
        ranks first."""
        tried = self.candidates(scaled, int(self.rank_candidates))
        best = self._rank_logits(self._rank_inputs(scaled, tried)).argmax(dim=1)
        return tried.gather(1, best[:, None])[:, 0]

    def fit_ranker(self, seed: int = 0, batch_size: int = 128, progress: bool = False, weighted: bool = False
                   ) -> float:
        """Fit the ranker's ensemble to the judged briefs (``answer="rank"``): ``rank_epochs``
        passes of AdamW, each model from its own initial weights and in its own order of the
        briefs (all drawn from ``seed``; the global random state is left as it was). Returns the
        mean score (in [0, 1] within each brief) of the ensemble's first choice on the judged
        briefs themselves. ``progress`` shows a bar over the passes.

        The briefs are then forgotten: the ranker answers without them (they would make the
        saved agent several times larger), ranking as many near actions as each brief tried.

        ``weighted``: fit on the features as the memory's distance weighs them, as rankers were
        fitted before their inputs' layout was recorded (kept to compare the two, see
        :meth:`_rank_inputs`)."""
        if self.answer != "rank":
            raise ValueError(f"only a policy with answer='rank' has a ranker, this one answers by {self.answer}")
        if not len(self.brief_features):
            raise ValueError("the ranker learns from judged briefs; there are none")
        self.rank_weighted.fill_(bool(weighted))
        with th.no_grad():
            inputs = self._rank_inputs(self.scaled(self.brief_features), self.brief_tried)
            target = th.softmax(self.brief_scores / RANK_TEMPERATURE, dim=1)
        n, models = len(inputs), self.rank_models
        shuffle = th.Generator().manual_seed(seed)
        with th.random.fork_rng():
            th.manual_seed(seed)
            self.rankers.reset_parameters()
        optimizer = th.optim.AdamW(self.rankers.parameters(), lr=1e-3, weight_decay=1e-4)
        for _ in tqdm(range(self.rank_epochs), desc="fitting the ranker", unit="pass", disable=not progress):
            orders = th.stack([th.randperm(n, generator=shuffle) for _ in range(models)]).to(inputs.device)
            for start in range(0, n, batch_size):
                batch = orders[:, start : start + batch_size]  # (models, batch): each model's own briefs
                logp = th.log_softmax(self.rankers(inputs[batch], per_model=True), dim=-1)
                loss = -(target[batch] * logp).sum(dim=-1).mean(dim=-1).sum()  # the models' losses are apart
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        with th.no_grad():
            first = self._rank_logits(inputs).argmax(dim=1)
            score = float(self.brief_scores.gather(1, first[:, None]).mean())
            candidates = self.brief_tried.shape[1]
            self.remember_briefs(self.brief_features[:0], self.brief_tried[:0], self.brief_scores[:0])
            self.rank_candidates.fill_(candidates)
            self.rank_fitted.fill_(True)
        return score

    @th.no_grad()
    def remember(self, features: th.Tensor, actions: th.Tensor) -> None:
        """Replace the case memory (``answer="nearest"``, ``"vote"`` or ``"rank"``): states' raw
        features and the expert's action in each. Judged briefs refer to the old memory's actions:
        they are forgotten (and a ranker answers as the nearest case until fitted again)."""
        if self.answer == "regression":
            raise ValueError("only a policy with answer='nearest', 'vote' or 'rank' remembers states, this one "
                             "answers by regression")
        if len(features) != len(actions):
            raise ValueError(f"{len(features)} states but {len(actions)} actions to remember")
        device = self.feature_mean.device
        self.memory_features = features.detach().to(device, th.float32).clone()
        self.memory_actions = actions.detach().to(device, th.float32).clone()
        if self.answer in BRIEF_ANSWERS:
            self.remember_briefs(th.zeros(0, features.shape[1]), th.zeros(0, 0, dtype=th.long), th.zeros(0, 0))

    @th.no_grad()
    def remember_briefs(self, features: th.Tensor, tried: th.Tensor, scores: th.Tensor) -> None:
        """Replace the judged briefs (``answer="vote"`` or ``"rank"``): their raw features, the
        memory indices of the actions tried on each (one row per brief) and each one's score,
        scaled to [0, 1] within its brief (1 the best). A ranker answers as the nearest case until
        it is fitted to them (:meth:`fit_ranker`)."""
        if self.answer not in BRIEF_ANSWERS:
            raise ValueError(f"only a policy with answer='vote' or 'rank' remembers judged briefs, this one answers "
                             f"by {self.answer}")
        if not (len(features) == len(tried) == len(scores)) or tried.shape != scores.shape:
            raise ValueError(f"judged briefs: {len(features)} features, tried {tuple(tried.shape)} and scores "
                             f"{tuple(scores.shape)} must have one row per brief and one score per action tried")
        if tried.numel() and (int(tried.min()) < 0 or int(tried.max()) >= len(self.memory_actions)):
            raise ValueError(f"judged briefs tried actions outside the memory's {len(self.memory_actions)}")
        device = self.feature_mean.device
        self.brief_features = features.detach().to(device, th.float32).clone()
        self.brief_tried = tried.detach().to(device, th.long).clone()
        self.brief_scores = scores.detach().to(device, th.float32).clone()
        if self.answer == "rank":
            self.rank_fitted.fill_(False)

    def _load_from_state_dict(self, state_dict: Any, prefix: str, *args: Any, **kwargs: Any) -> None:
        # The saved memory's size, not the empty one's.
        for name in ("memory_features", "memory_actions", "brief_features", "brief_tried", "brief_scores"):
            if name in self._buffers and prefix + name in state_dict:
                self._buffers[name] = th.empty_like(state_dict[prefix + name], device=self.feature_mean.device)
        if "rank_weighted" in self._buffers and prefix + "rank_fitted" in state_dict:
            # A ranker saved before its inputs' layout was recorded was fitted on weighted features.
            state_dict.setdefault(prefix + "rank_weighted", th.ones((), dtype=th.bool))
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


class RankerEnsemble(nn.Module):
    """``models`` MLPs of two hidden layers held as stacked weights, so that the ensemble runs
    (and trains) in one batched pass: each model scores the candidates of each row, a logit per
    candidate."""

    def __init__(self, models: int, width: int, hidden: int, activation_fn: type[nn.Module] = nn.ReLU) -> None:
        super().__init__()
        sizes = [width, hidden, hidden, 1]
        pairs = zip(sizes[:-1], sizes[1:], strict=True)
        self.weights = nn.ParameterList(nn.Parameter(th.empty(models, a, b)) for a, b in pairs)
        self.biases = nn.ParameterList(nn.Parameter(th.empty(models, 1, b)) for b in sizes[1:])
        self.activation = activation_fn()
        self.reset_parameters()

    @th.no_grad()
    def reset_parameters(self) -> None:
        """Each layer as ``nn.Linear`` starts: uniform in +-1/sqrt(fan in), weights and biases."""
        for weight, bias in zip(self.weights, self.biases, strict=True):
            bound = 1.0 / np.sqrt(weight.shape[1])
            weight.uniform_(-bound, bound)
            bias.uniform_(-bound, bound)

    def forward(self, inputs: th.Tensor, per_model: bool = False) -> th.Tensor:
        """Logits ``(models, rows, candidates)`` of ``inputs`` ``(rows, candidates, width)``, or with
        ``per_model`` of ``(models, rows, candidates, width)`` (each model its own rows)."""
        models = self.weights[0].shape[0]
        x = inputs if per_model else inputs.expand(models, *inputs.shape)
        rows, candidates = x.shape[1], x.shape[2]
        x = x.reshape(models, rows * candidates, -1)
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = th.baddbmm(bias, x, weight)
            if i < len(self.weights) - 1:
                x = self.activation(x)
        return x.reshape(models, rows, candidates)


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
