"""H-JEPA level 2 (Sec. 4.6, Fig. 15): a second JEPA on the states of a frozen, trained level 1.

Level 2 sees the world every ``k = stride`` level-1 steps. Its state ``s2 = Enc2(pool(s1 block))`` is an MLP
of a temporal pool of level-1 states; its action ``a2 = ActEnc(a[t..t+k-1])`` is a learned encoding of the k
low-level actions of a block; its predictor ``s2[j+1] = Pred2(s2[j], a2[j])`` is the level-1 residual MLP.
Training rolls ``Pred2`` open-loop ``horizon`` (M) level-2 steps and compares with the encoded targets; a VICReg
variance hinge and covariance penalty on level-2 states (Sec. 4.5.1) keep them from collapsing.

**Pooling** (``pool``): ``first`` (default) takes the level-1 state at each block boundary, so
``s2 = Enc2(s1[t])`` needs no history and a planned ``s2`` is a subgoal for one level-1 state, ``k`` steps
ahead (Sec. 4.7). ``mean`` averages the k level-1 states that *end* at each boundary (a causal, trailing pool),
so it needs k-1 frames of history before time 0.

**Abstract actions inferred without actions** (``abstract="latent"``, for a level 2 that never sees one, e.g.
learned from video): ``a2[j] = tanh(Infer2([s2[j], s2[j+1]]))`` is read from consecutive level-2 states instead
of the level-1 actions, the latent action of Sec. 4.5 at the upper level; the same regulariser bounds what it
carries. Such a latent says where the world went, not what was done, so it can name moves the world does not
allow (through a wall): the predictor never saw them and extrapolates. **The prior** ``p(a2 | s2) =
N(mu(s2), std(s2))`` (Sec. 4.8, the Gibbs distribution of the latent given the state; weight ``prior``, fitted to
the inferred latents, which it does not shape) holds which moves the data showed from each state, and the
planner searches within it (``plan_rollout``).

**Abstract actions as a regularised latent** (Sec. 4.5): low dimension (``action_dim``), a ``tanh`` that bounds
them to [-1, 1] (Mode-2's box-bounded planners plan them with bound 1), an L2 penalty and Gaussian noise added
before the predictor during training, so the predictor is smooth around the encoded actions and planned ones
between them stay meaningful. How level 2 is trained: ``amia.training.level2``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from amia.data.blocks import POOLS, action_blocks, pool_span, stride_blocks
from amia.infra.validate import at_least, check, one_of, positive
from amia.models import regularizers as R
from amia.models.latent import gaussian_nll
from amia.models.predictor import Predictor, PredictorConfig, mlp

ABSTRACT = ("actions", "latent")


@dataclass
class HJEPAConfig:
    """Level 2 of the H-JEPA: architecture, loss weights and optimiser (``level2.KEY=value`` on the command line).

    ``stride`` k: level-1 steps per level-2 step; ``horizon`` M: level-2 steps per training window (M * k
    level-1 steps); ``pool``: ``first`` or ``mean`` (module docstring). Loss: ``pred`` (open-loop prediction),
    ``var`` / ``cov`` (VICReg on level-2 states, hinge at ``std_target``), ``act_l2`` (L2 penalty on abstract
    actions); ``act_noise``: std of the noise added to abstract actions during training. ``abstract``: where
    abstract actions come from, ``actions`` (encoded from the block's level-1 actions) or ``latent`` (inferred
    from consecutive level-2 states; no level-1 action is read). ``report_steps``: the level-1 horizon of the
    prediction report written at the end (a multiple of ``stride``; 0: none). ``prior``: with ``latent``, the
    weight of the state-conditioned prior's negative log-likelihood of the inferred latents (0: no prior).
    """

    stride: int = 8
    horizon: int = 8
    pool: str = "first"
    dim: int = 32
    action_dim: int = 4
    encoder_hidden: int = 256
    action_hidden: int = 128
    predictor: PredictorConfig = field(default_factory=lambda: PredictorConfig(hidden=256, layers=2))
    pred: float = 1.0
    var: float = 1.0
    cov: float = 0.04
    std_target: float = 1.0
    act_l2: float = 0.01
    act_noise: float = 0.05
    abstract: str = "actions"
    prior: float = 1.0
    steps: int = 3000
    batch_size: int = 128
    lr: float = 1e-3
    warmup: int = 100
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    log_every: int = 50
    checkpoint_every: int = 500
    report_steps: int = 64
    report_windows: int = 512
    seed: int = 0
    threads: int = 0

    def __post_init__(self):
        one_of(self, "pool", POOLS)
        one_of(self, "abstract", ABSTRACT)
        at_least(self, 1, "stride", "horizon", "dim", "action_dim", "encoder_hidden", "action_hidden", "steps",
                 "log_every", "checkpoint_every", "report_windows")
        at_least(self, 0, "pred", "var", "cov", "act_l2", "prior", "act_noise", "warmup", "weight_decay", "grad_clip",
                 "report_steps", "seed", "threads")
        positive(self, "std_target", "lr")
        check(self.batch_size >= 2 or self.var + self.cov == 0, "batch_size", self.batch_size,
              "an integer >= 2 (the VICReg batch statistics need two windows)")
        check(self.report_steps % self.stride == 0, "report_steps", self.report_steps,
              f"a multiple of stride ({self.stride})")

    @property
    def span(self) -> int:
        """Level-1 frames pooled into one level-2 state: 1 (``first``) or k (``mean``)."""
        return pool_span(self.stride, self.pool)

    @property
    def window(self) -> int:
        """Level-1 frames of one training window: ``M * k + span`` (``M * k`` actions after time 0)."""
        return self.horizon * self.stride + self.span


class ActionEncoder(nn.Module):
    """Abstract action ``a2 = tanh(MLP(a[t..t+k-1]))``: the k actions of a block ``(..., k*A)`` -> ``(..., action_dim)``."""

    def __init__(self, in_dim: int, hidden: int, action_dim: int):
        super().__init__()
        self.in_dim, self.action_dim = in_dim, action_dim
        self.net = mlp([in_dim, hidden, action_dim])

    def forward(self, blocks: torch.Tensor) -> torch.Tensor:
        if blocks.shape[-1] != self.in_dim:
            raise ValueError(f"action blocks should end with size {self.in_dim} (k * action size), got {tuple(blocks.shape)}")
        return torch.tanh(self.net(blocks))


class Level2(nn.Module):
    """JEPA-2 of the H-JEPA (Sec. 4.6): ``Enc2``, the abstract-action encoder and ``Pred2``, plus its loss.

    ``encode(blocks (..., span, D1)) -> (..., dim)``; ``encode_state(s1 (..., D1))`` for ``pool="first"``;
    ``encode_actions(blocks (..., k*A)) -> (..., action_dim)`` in [-1, 1]; ``rollout(s2_0 (B, dim),
    a2 (B, T, action_dim)) -> (B, T, dim)``.
    """

    def __init__(self, cfg: HJEPAConfig, level1_dim: int, level1_action_dim: int):
        super().__init__()
        self.cfg, self.level1_dim, self.level1_action_dim = cfg, level1_dim, level1_action_dim
        self.encoder = mlp([level1_dim, cfg.encoder_hidden, cfg.dim])
        if cfg.abstract == "latent":
            self.infer = mlp([2 * cfg.dim, cfg.action_hidden, cfg.action_dim])
            if cfg.prior:
                self.prior = mlp([cfg.dim, cfg.action_hidden, 2 * cfg.action_dim])
        else:
            self.action_encoder = ActionEncoder(cfg.stride * level1_action_dim, cfg.action_hidden, cfg.action_dim)
        self.predictor = Predictor(cfg.predictor, cfg.dim, cfg.action_dim)

    @property
    def dim(self) -> int:
        return self.cfg.dim

    @property
    def action_dim(self) -> int:
        return self.cfg.action_dim

    def encode(self, blocks: torch.Tensor) -> torch.Tensor:
        """Level-2 states of pooled blocks of level-1 states: ``(..., span, D1) -> (..., dim)``."""
        if blocks.shape[-1] != self.level1_dim or blocks.dim() < 2:
            raise ValueError(f"blocks should have shape (..., span, {self.level1_dim}), got {tuple(blocks.shape)}")
        return self.encoder(blocks.mean(dim=-2))

    def encode_state(self, s1: torch.Tensor) -> torch.Tensor:
        """``Enc2(s1)`` of single level-1 states ``(..., D1)``: the level-2 state when ``pool="first"``."""
        return self.encode(s1.unsqueeze(-2))

    def encode_actions(self, blocks: torch.Tensor) -> torch.Tensor:
        return self.action_encoder(blocks)

    def infer_actions(self, s2: torch.Tensor) -> torch.Tensor:
        """Latent abstract actions ``(B, M, action_dim)`` of consecutive level-2 states ``(B, M+1, dim)``."""
        return torch.tanh(self.infer(torch.cat([s2[:, :-1], s2[:, 1:]], dim=-1)))

    def rollout(self, s0: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.predictor.rollout(s0, actions)

    @property
    def has_prior(self) -> bool:
        return hasattr(self, "prior")

    def prior_params(self, s2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean (in [-1, 1]) and log standard deviation ``(..., action_dim)`` of ``p(a2 | s2)``."""
        mu, log_std = self.prior(s2).chunk(2, dim=-1)
        return torch.tanh(mu), log_std.clamp(-5.0, 1.0)

    def plan_rollout(self, s0: torch.Tensor, u: torch.Tensor, spread: float = 2.0) -> torch.Tensor:
        """The rollout a planner searches: ``u (B, T, action_dim)`` in [-1, 1] names the abstract action
        ``a2 = mu(s) + spread * std(s) * u`` (clamped to [-1, 1]) of the prior at each predicted state ``s``, so
        planned moves stay among those the data showed from there. Without a prior (or ``spread`` 0), ``u`` is
        the abstract action itself (``rollout``)."""
        if not self.has_prior or spread <= 0:
            return self.rollout(s0, u)
        out, s = [], s0
        for t in range(u.shape[1]):
            mu, log_std = self.prior_params(s)
            s = self.predictor(s, (mu + spread * log_std.exp() * u[:, t]).clamp(-1.0, 1.0))
            out.append(s)
        return torch.stack(out, dim=1)

    def encode_window(self, states: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Level-2 states ``(B, M+1, dim)`` and abstract actions ``(B, M, action_dim)`` of a level-1 window.

        ``states (B, M*k + span, D1)``, ``actions (B, M*k + span - 1, A)``; the first ``span - 1`` actions
        (inside the history of the first ``mean`` block) are not used; with ``abstract="latent"`` none is.
        """
        cfg = self.cfg
        s2 = self.encode(stride_blocks(states, cfg.stride, cfg.pool))
        if cfg.abstract == "latent":  # no level-1 action is read
            return s2, self.infer_actions(s2)
        if actions.shape[:2] != (states.shape[0], states.shape[1] - 1):
            raise ValueError(f"actions should have shape ({states.shape[0]}, {states.shape[1] - 1}, A) for states "
                             f"{tuple(states.shape)}, got {tuple(actions.shape)}")
        return s2, self.encode_actions(action_blocks(actions[:, cfg.span - 1:], cfg.stride))

    def forward(self, states: torch.Tensor, actions: torch.Tensor, seed: int = 0) -> dict[str, torch.Tensor]:
        """Loss terms for a batch of level-1 windows (``encode_window``); ``loss`` is their weighted sum."""
        c = self.cfg
        s2, a2 = self.encode_window(states, actions)
        if s2.shape[1] < 2:
            raise ValueError(f"a training window needs at least 2 level-2 steps, got states {tuple(states.shape)}")
        a_in = a2
        if self.training and c.act_noise:
            g = torch.Generator().manual_seed(seed)
            a_in = a2 + c.act_noise * torch.randn(a2.shape, generator=g).to(a2.device)
        pred = self.predictor.rollout(s2[:, 0], a_in)
        flat = s2.flatten(0, 1)
        terms = {"pred": (pred - s2[:, 1:]).pow(2).mean(), "var": R.variance_hinge(flat, c.std_target),
                 "cov": R.covariance_penalty(flat), "act": a2.pow(2).mean()}
        weights = {"pred": c.pred, "var": c.var, "cov": c.cov, "act": c.act_l2}
        if self.has_prior:  # fitted to the latents; it does not shape them, nor the states
            mu, log_std = self.prior_params(s2[:, :-1].detach())
            terms["prior"] = gaussian_nll(a2.detach(), mu, log_std).mean() / c.action_dim
            weights["prior"] = c.prior
        terms["loss"] = sum(weights[k] * terms[k] for k in weights)
        return terms


__all__ = ["ActionEncoder", "HJEPAConfig", "Level2"]
