"""A JEPA trained on frames alone (Sec. 4.5, 4.8): the action it never sees becomes a latent.

Without actions the next state is uncertain: whatever moved the world between two frames is missing. A latent
action ``z = tanh(Infer([s[t], s[t+1]]))``, inferred from consecutive encoded states, stands in for it, and the
predictor ``s[t+1] = Pred(s[t], z[t])`` is an ordinary ``Predictor`` whose "action" is ``z``. Its regulariser
``R(z)`` keeps ``z`` from carrying the whole next frame: few numbers (``dim``), bounded by ``tanh``, an L2 penalty,
and Gaussian noise added before the predictor, so that only what the noise does not drown passes (the
information-limiting latent of Sec. 4.5's list). Everything else is the action-conditioned JEPA's objective:
open-loop prediction over the window, VICReg (or SIGReg) and smoothness on the states.

Post-training (``amia.training.posttrain``) then learns, from a few episodes that have actions, the map from real
actions to these latents; the result is an ordinary action-conditioned run.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from amia.infra.validate import at_least
from amia.models.jepa import JEPA, JEPAConfig
from amia.models.layers import mlp


@dataclass
class LatentActionConfig:
    """The latent action of a JEPA trained without actions: ``dim`` numbers in [-1, 1] inferred by an MLP of
    width ``hidden`` from ``(s[t], s[t+1])``; ``R(z)`` is ``l2`` times its mean square, and ``noise`` the std of
    the Gaussian noise added to it during training."""

    dim: int = 4
    hidden: int = 256
    noise: float = 0.05
    l2: float = 0.01

    def __post_init__(self):
        at_least(self, 1, "dim", "hidden")
        at_least(self, 0, "noise", "l2")


class ActionFreeJEPA(JEPA):
    """Encoder, predictor ``Pred(s, z)`` and the latent-action encoder ``Infer``; the loss of one training step."""

    def __init__(self, cfg: JEPAConfig, obs_shape: tuple[int, int, int], latent: LatentActionConfig):
        cfg = replace(cfg, loss=replace(cfg.loss, idm=0.0))  # no action to recover
        super().__init__(cfg, obs_shape, action_dim=latent.dim)
        self.latent_action = latent
        self.infer = mlp([2 * cfg.encoder.dim, latent.hidden, latent.dim])

    def latent_actions(self, s: torch.Tensor) -> torch.Tensor:
        """The latent actions ``(B, T, dim)`` of encoded windows ``s (B, T+1, D)``."""
        return torch.tanh(self.infer(torch.cat([s[:, :-1], s[:, 1:]], dim=-1)))

    def predict_windows(self, s: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Open-loop predictions of ``s[:, 1:]`` from ``s[:, 0]``, each step with the latent action inferred from
        the window (``actions`` are ignored: there may be none)."""
        return self.predictor.rollout(s[:, 0], self.latent_actions(s))

    def transition_terms(self, s: torch.Tensor, seed: int = 0) -> dict[str, torch.Tensor]:
        """The open-loop prediction error of encoded windows ``s (B, T+1, D)`` with their (noisy, in training)
        latent actions, and the mean square of those latents (``R(z)`` before its weight)."""
        z = self.latent_actions(s)
        noisy = z
        if self.training and self.latent_action.noise:
            g = torch.Generator(device="cpu").manual_seed(seed)
            noisy = z + self.latent_action.noise * torch.randn(z.shape, generator=g).to(z.device)
        return {"pred": (self.predictor.rollout(s[:, 0], noisy) - s[:, 1:]).pow(2).mean(), "latent_l2": z.pow(2).mean()}

    def forward(self, obs: torch.Tensor, actions: torch.Tensor | None = None, seed: int = 0, progress: float = 1.0
                ) -> dict[str, torch.Tensor]:
        """Loss terms for windows ``obs uint8 (B, T+1, C, H, W)`` (``actions``, if any, are ignored); ``loss`` is
        their weighted sum."""
        s = self.encoder.encode(obs)
        terms = self.transition_terms(s, seed)
        weights = {"pred": self.cfg.loss.pred, "latent_l2": self.latent_action.l2}
        self.regularize(s, seed, terms, weights)
        terms["loss"] = sum(weights[k] * terms[k] for k in weights)
        return terms


__all__ = ["ActionFreeJEPA", "LatentActionConfig"]
