"""Policy network for ``twinopt/Dispatch-v0`` (and ``DynamicDispatch-v0``): one shared scorer per
job row (permutation equivariant), so the same weights rank the candidates of an instance of any
size: no weight depends on the number of jobs.

Observation ``(batch, n_jobs * F)`` is viewed as ``(batch, n_jobs, F)``, ``n_jobs`` read from the
width at run time (see :data:`twins.jobshop.engine.FEATURES`; column 0 is the candidate flag,
column ``alive_feature`` the alive flag, 1 for the static engine; ``None`` = alive rows are the
candidates, as in the dynamic engine's slots). SB3 needs fixed spaces, so training sees the env's
own size; inference (:func:`optimizers.rl.dispatch.greedy_dispatch`) calls the scorer on any
number of rows. All-zero rows (finished jobs, padding) change nothing for the others: they are
masked out of attention and of every pooled context.

* every row goes through ``symlog`` (sign(x) log(1 + |x|): times of very different instances stay
  in one range) and a row MLP ``F -> h -> h``, then optionally ``attention_layers`` transformer
  encoder layers over the alive jobs (jobs see each other, finished ones are masked out);
* context = mean of alive rows' embeddings, mean and max of the candidates' embeddings;
* logits = MLP(row embedding + linear(context)) -> one score per job, ``(batch, n_jobs)``; the masked
  softmax over them is the action distribution (sb3-contrib applies the mask);
* value = MLP(context) -> ``h`` latent, then SB3's linear value head.
"""
from __future__ import annotations

from typing import Any

import torch
from gymnasium import spaces
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from torch import nn

from twins.jobshop.engine import N_FEATURES


def symlog(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.log1p(x.abs())


class JobScorer(nn.Module):
    """SB3 ``mlp_extractor`` replacement: ``forward(features) -> (logits (B, n), value latent (B, h))``."""

    def __init__(self, n_jobs: int, n_features: int = N_FEATURES, hidden: int = 128, attention_layers: int = 0,
                 alive_feature: int | None = 1):
        super().__init__()
        # n_jobs only sizes SB3's action space: the layers below never see it
        self.n_jobs, self.n_features, self.alive_feature = n_jobs, n_features, alive_feature
        self.latent_dim_pi, self.latent_dim_vf = n_jobs, hidden
        self.row = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.mix = nn.ModuleList(
            nn.TransformerEncoderLayer(hidden, nhead=4, dim_feedforward=2 * hidden, dropout=0.0, batch_first=True)
            for _ in range(attention_layers))
        self.context = nn.Linear(3 * hidden, hidden)
        self.score = nn.Sequential(nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.value = nn.Sequential(nn.Linear(3 * hidden, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())

    def _embed(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = features.reshape(features.shape[0], -1, self.n_features)  # n from the width: any size
        a = self.alive_feature
        cand = x[..., 0:1]
        alive = cand if a is None else x[..., a:a + 1]
        e = self.row(symlog(x))                                               # (B, n, h)
        if len(self.mix):
            finished = alive[..., 0] < 0.5
            finished = finished & ~finished.all(dim=1, keepdim=True)  # a terminal obs keeps its rows
            for layer in self.mix:
                e = layer(e, src_key_padding_mask=finished)
        mean_alive = (e * alive).sum(1) / alive.sum(1).clamp(min=1.0)
        mean_cand = (e * cand).sum(1) / cand.sum(1).clamp(min=1.0)
        max_cand = (e * cand - (1.0 - cand) * 1e4).max(1).values.clamp(min=-1e3)
        return e, torch.cat([mean_alive, mean_cand, max_cand], dim=1)        # (B, 3h)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e, ctx = self._embed(features)
        logits = self.score(e + self.context(ctx)[:, None, :]).squeeze(-1)
        return logits, self.value(ctx)

    def forward_actor(self, features: torch.Tensor) -> torch.Tensor:
        e, ctx = self._embed(features)
        return self.score(e + self.context(ctx)[:, None, :]).squeeze(-1)

    def candidate_scores(self, features: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Logits of the job ``rows`` only, for one observation ``(1, n * F)``: the same numbers as
        ``forward_actor(features)[0, rows]`` without scoring the other jobs (inference)."""
        e, ctx = self._embed(features)
        return self.score(e[0, rows] + self.context(ctx)).squeeze(-1)

    def forward_critic(self, features: torch.Tensor) -> torch.Tensor:
        return self.value(self._embed(features)[1])


class JobScoringPolicy(MaskableActorCriticPolicy):
    """MaskablePPO policy whose logits come from :class:`JobScorer` (no linear action head)."""

    def __init__(self, observation_space, action_space, lr_schedule, hidden: int = 128,
                 n_features: int = N_FEATURES, attention_layers: int = 0, alive_feature: int | None = 1,
                 **kwargs: Any):
        self.hidden, self.n_features, self.attention_layers = hidden, n_features, attention_layers
        self.alive_feature = alive_feature
        kwargs.setdefault("ortho_init", False)
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def _build_mlp_extractor(self) -> None:
        if not isinstance(self.action_space, spaces.Discrete):
            raise TypeError(f"JobScoringPolicy scores one action per job: needs a Discrete action space, "
                            f"got {self.action_space}")
        # SB3 annotates mlp_extractor as MlpExtractor, but its custom-policy guide replaces it with
        # any module offering latent_dim_pi/vf and forward_actor/critic, as JobScorer does
        self.mlp_extractor = JobScorer(int(self.action_space.n), self.n_features, self.hidden,  # type: ignore[assignment]
                                       self.attention_layers, self.alive_feature)

    def _build(self, lr_schedule) -> None:
        super()._build(lr_schedule)
        self.action_net = nn.Identity()  # the scorer already yields one logit per job
        # optimizer_class is typed type[Optimizer], whose base __init__ takes no lr (SB3's own
        # ActorCriticPolicy._build carries the same ignore)
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1),  # type: ignore[call-arg]
                                              **self.optimizer_kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(hidden=self.hidden, n_features=self.n_features, attention_layers=self.attention_layers,
                    alive_feature=self.alive_feature)
        return data
