"""World model (Sec. 3, 4.4): the action-conditioned predictor ``s[t+1] = Pred(s[t], a[t], z[t])`` and rollout.

With a latent (``amia.models.latent``, Sec. 4.5, 4.8) the predictor holds several futures: a rollout without
``z`` follows the prior's most likely value at every step; ``sample_rollout`` draws futures with their
frequencies and ``adversarial_rollout`` lets ``z`` work against a cost (Sec. 5).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from amia.infra.validate import at_least, check, one_of, positive
from amia.models.latent import LATENTS, Latent
from amia.models.layers import mlp


@dataclass
class PredictorConfig:
    """A residual MLP on ``[s, a, z]``.

    ``latent``: ``none`` (deterministic), ``discrete`` (``latent_dim`` values), ``gaussian`` or ``free``
    (``latent_dim`` numbers; ``free`` has no ``R(z)``); ``latent_weight`` is ``beta``, the weight of ``R(z)`` in
    the free energy ``min_z E + beta R(z)`` (``amia.models.latent``). ``latent_sparsity`` (discrete only) is the
    cost, in energy units, of any value but value 0, which then stands for "nothing random happened": ``z`` is
    used only where the world's randomness moves the next state by more than that (Sec. 4.5's sparse ``z``).
    ``latent_revive`` (discrete only): in the first half of training, every ``REVIVE_EVERY`` steps, a value that
    wins less than this share of the batch's transitions takes a perturbed copy of the most-used one
    (``Latent.revive``); 0 turns it off. Keep it below the rarest outcome's share of the data.
    ``latent_relax_by_prior`` (discrete only): relaxed winner-take-all gives each losing value a share of a
    transition in proportion to its prior probability there, not an equal share (``amia.models.latent``).
    ``action_code`` k > 0: the net sees a k-number code of the action, ``tanh(ActionMap([s, a]))``, instead of the
    action itself: a predictor pretrained on frames alone took latent actions of that size (``amia.models.action_free``)
    and post-training learns the map from real actions to them (``amia.training.posttrain``); ``action_hidden`` is the
    map's width.
    """

    hidden: int = 512
    layers: int = 2
    latent: str = "none"
    latent_dim: int = 0
    latent_weight: float = 0.01
    latent_sparsity: float = 0.0
    latent_revive: float = 0.0
    latent_relax_by_prior: bool = False
    action_code: int = 0
    action_hidden: int = 128

    def __post_init__(self):
        at_least(self, 1, "hidden", "layers", "action_hidden")
        at_least(self, 0, "action_code")
        at_least(self, 0, "latent_dim")
        one_of(self, "latent", LATENTS)
        positive(self, "latent_weight")
        at_least(self, 0, "latent_sparsity", "latent_revive")
        check(self.latent_sparsity == 0 or self.latent == "discrete", "latent_sparsity", self.latent_sparsity,
              "0 unless latent=discrete (the cost of a value other than value 0)")
        check(not self.latent_relax_by_prior or self.latent == "discrete", "latent_relax_by_prior",
              self.latent_relax_by_prior, "false unless latent=discrete")
        check(self.latent_revive == 0 or (self.latent == "discrete" and self.latent_revive * self.latent_dim < 1),
              "latent_revive", self.latent_revive, "0, or with latent=discrete a share below 1 / latent_dim")
        check((self.latent == "none") == (self.latent_dim == 0), "latent_dim", self.latent_dim,
              "0 with latent=none, >= 1 with a latent (values of a discrete z, dimensions of a continuous one)")


class Predictor(nn.Module):
    """``Pred(s, a, z) = s + f([s, a, z])`` on states ``(..., D)``, actions ``(..., A)`` and latents ``(..., Z)``."""

    def __init__(self, cfg: PredictorConfig, state_dim: int, action_dim: int):
        super().__init__()
        self.cfg, self.state_dim, self.action_dim = cfg, state_dim, action_dim
        self.latent = (Latent(cfg.latent, cfg.latent_dim, state_dim, action_dim, relax_by_prior=cfg.latent_relax_by_prior)
                       if cfg.latent != "none" else None)
        code = cfg.action_code or action_dim
        self.action_map = mlp([state_dim + action_dim, cfg.action_hidden, code]) if cfg.action_code else None
        self.net = mlp([state_dim + code + cfg.latent_dim] + [cfg.hidden] * cfg.layers + [state_dim])

    def code(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """What the net sees of action ``a`` in state ``s``: the action, or its code (``action_code``)."""
        return a if self.action_map is None else torch.tanh(self.action_map(torch.cat([s, a], dim=-1)))

    def forward(self, s: torch.Tensor, a: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        parts = [s, self.code(s, a)]
        if self.latent is not None:
            parts.append(z if z is not None else self.latent.mode(s, a))
        return s + self.net(torch.cat(parts, dim=-1))

    def _check(self, s0: torch.Tensor, actions: torch.Tensor) -> None:
        if actions.dim() != 3 or actions.shape[-1] != self.action_dim or actions.shape[0] != s0.shape[0]:
            raise ValueError(f"actions should have shape ({s0.shape[0]}, T, {self.action_dim}), got {tuple(actions.shape)}")

    def rollout(self, s0: torch.Tensor, actions: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """Open-loop predictions ``(B, T, D)`` of states 1..T from ``s0 (B, D)`` and ``actions (B, T, A)`` (latents
        ``z (B, T, Z)``; none: the prior's most likely value at each step)."""
        self._check(s0, actions)
        out, s = [], s0
        for t in range(actions.shape[1]):
            s = self(s, actions[:, t], None if z is None else z[:, t])
            out.append(s)
        return torch.stack(out, dim=1)

    def sample_rollout(self, s0: torch.Tensor, actions: torch.Tensor, futures: int,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """``futures`` rollouts ``(B, K, T, D)`` with ``z[t] ~ p(z | s[t], a[t])`` drawn step by step (Sec. 4.8)."""
        self._check(s0, actions)
        if self.latent is None:
            return self.rollout(s0, actions)[:, None].expand(-1, futures, -1, -1)
        b, t_len = actions.shape[:2]
        noise = self.latent.noise((b, futures, t_len), generator, s0.device)
        s, a, out = s0[:, None].expand(b, futures, -1), actions[:, None].expand(b, futures, -1, -1), []
        for t in range(t_len):
            s = self(s, a[:, :, t], self.latent.sample(s, a[:, :, t], noise[:, :, t]))
            out.append(s)
        return torch.stack(out, dim=2)

    def adversarial_rollout(self, s0: torch.Tensor, actions: torch.Tensor, step_cost: Callable[[torch.Tensor], torch.Tensor],
                            candidates: int = 16, generator: torch.Generator | None = None) -> torch.Tensor:
        """The rollout ``(B, T, D)`` in which, at every step, ``z`` is the candidate (every value of a discrete
        latent, ``candidates`` prior samples of a continuous one) that maximises ``step_cost(states (B, C, D)) ->
        (B, C)`` of the next state: latents treated like actions, but working against the cost (Sec. 5)."""
        self._check(s0, actions)
        if self.latent is None:
            return self.rollout(s0, actions)
        out, s = [], s0
        rows = torch.arange(s0.shape[0], device=s0.device)
        for t in range(actions.shape[1]):
            z = self.latent.values(s, actions[:, t], candidates, generator)  # (B, C, Z)
            c = z.shape[1]
            nxt = self(s[:, None].expand(-1, c, -1), actions[:, t, None].expand(-1, c, -1), z)
            with torch.no_grad():
                worst = step_cost(nxt).argmax(1)
            s = nxt[rows, worst]
            out.append(s)
        return torch.stack(out, dim=1)


__all__ = ["Predictor", "PredictorConfig", "mlp"]
