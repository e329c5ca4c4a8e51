"""JEPA training objective (Sec. 4.4, 4.5): energy ``D(s_y, Pred(s_x, a))`` over a rollout plus regularisers.

One module holds the trainable parts (encoder, predictor, optional expander and inverse-dynamics head) and
computes every loss term in ``forward``, so one ``DistributedDataParallel`` wrapper covers the whole step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from amia.infra.distributed import gather_batch
from amia.infra.validate import at_least, one_of, positive
from amia.models import regularizers as R
from amia.models.encoder import EncoderConfig, build_encoder
from amia.models.latent import sparsity_ramp
from amia.models.predictor import Predictor, PredictorConfig, mlp

REGULARIZERS = ("vicreg", "sigreg", "none")


@dataclass
class LossConfig:
    """Weight of each loss term (0 switches a term off) and the regulariser's settings.

    ``regularizer``: ``vicreg`` (variance hinge + covariance penalty, Sec. 4.5.1), ``sigreg`` (LeJEPA) or ``none``.
    ``expander``: width of the MLP expander that VICReg / SIGReg see (0: they see the state itself).
    """

    regularizer: str = "vicreg"
    pred: float = 1.0
    var: float = 1.0
    cov: float = 0.04
    std_target: float = 1.0
    expander: int = 0
    smooth: float = 1.0
    idm: float = 1.0
    sigreg: float = 0.002
    sigreg_directions: int = 256

    def __post_init__(self):
        one_of(self, "regularizer", REGULARIZERS)
        at_least(self, 0, "pred", "var", "cov", "expander", "smooth", "idm", "sigreg")
        positive(self, "std_target")
        at_least(self, 1, "sigreg_directions")


@dataclass
class JEPAConfig:
    """Architecture and objective of a one-level action-conditioned JEPA."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    loss: LossConfig = field(default_factory=LossConfig)


class JEPA(nn.Module):
    """Encoder + predictor (+ expander, inverse-dynamics head) and the loss of one training step."""

    def __init__(self, cfg: JEPAConfig, obs_shape: tuple[int, int, int], action_dim: int,
                 action_box: tuple[list[float], list[float]] | None = None):
        super().__init__()
        if cfg.loss.regularizer not in REGULARIZERS:
            raise ValueError(f"loss.regularizer must be one of {REGULARIZERS}, got {cfg.loss.regularizer!r}")
        self.cfg, self.obs_shape, self.action_dim, self.action_box = cfg, tuple(obs_shape), action_dim, action_box
        if action_box is not None:  # the data's action box, mapped to [-1, 1]^A for the networks (kept in meta)
            low, high = (torch.tensor(v, dtype=torch.float32) for v in action_box)
            self.register_buffer("action_mid", (high + low) / 2, persistent=False)
            self.register_buffer("action_half", (high - low) / 2, persistent=False)
        d = cfg.encoder.dim
        self.encoder = build_encoder(cfg.encoder, obs_shape)
        self.predictor = Predictor(cfg.predictor, d, action_dim)
        self.expander = mlp([d, cfg.loss.expander, cfg.loss.expander]) if cfg.loss.expander else nn.Identity()
        self.idm = mlp([2 * d, 256, action_dim]) if cfg.loss.idm else None

    def normalise(self, actions: torch.Tensor) -> torch.Tensor:
        """Actions in the data's units to the networks' units: ``[-1, 1]^A`` for a model built with an
        ``action_box``, unchanged otherwise (amia's worlds: the predictor takes their actions as they are)."""
        return actions if self.action_box is None else (actions - self.action_mid) / self.action_half

    def forward(self, obs: torch.Tensor, actions: torch.Tensor, seed: int = 0, progress: float = 1.0
                ) -> dict[str, torch.Tensor]:
        """Loss terms for windows ``obs uint8 (B, T+1, C, H, W)`` and ``actions (B, T, A)`` in the data's units;
        ``loss`` is their sum."""
        c = self.cfg.loss
        actions = self.normalise(actions)
        s = self.encoder.encode(obs)  # (B, T+1, D)
        terms: dict[str, torch.Tensor] = {}
        weights = {"pred": c.pred}
        if self.predictor.latent is None:
            terms["pred"] = (self.predictor.rollout(s[:, 0], actions) - s[:, 1:]).pow(2).mean()
        else:
            terms["pred"], terms["latent_reg"] = self.free_energy_rollout(s, actions, progress)
            weights["latent_reg"] = self.cfg.predictor.latent_weight
        self.regularize(s, seed, terms, weights)
        if self.idm is not None:
            a_hat = self.idm(torch.cat([s[:, :-1], s[:, 1:]], dim=-1))
            terms["idm"], weights["idm"] = (a_hat - actions).pow(2).mean(), c.idm
        terms["loss"] = sum(weights[k] * terms[k] for k in weights)
        return terms

    def regularize(self, s: torch.Tensor, seed: int, terms: dict, weights: dict) -> None:
        """Add the anti-collapse terms on states ``s (B, T+1, D)`` (VICReg or SIGReg, Sec. 4.5.1) and temporal
        smoothness to ``terms``, with their weights in ``weights``."""
        c = self.cfg.loss
        if c.regularizer != "none":
            v = gather_batch(self.expander(s).flatten(0, 1))
            if c.regularizer == "vicreg":
                terms["var"], weights["var"] = R.variance_hinge(v, c.std_target), c.var
                terms["cov"], weights["cov"] = R.covariance_penalty(v), c.cov
            else:
                g = torch.Generator().manual_seed(seed)
                dirs = R.random_directions(v.shape[1], c.sigreg_directions, g, v.device)
                terms["sigreg"], weights["sigreg"] = R.sigreg(v, dirs), c.sigreg
        if c.smooth:
            terms["smooth"], weights["smooth"] = R.temporal_smoothness(s), c.smooth

    def predict_windows(self, s: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Open-loop predictions ``(B, T, D)`` of ``s[:, 1:]`` from ``s[:, 0]`` for encoded windows ``s (B, T+1, D)``
        and their ``actions (B, T, A)`` in the data's units (what the diagnostics score)."""
        return self.predictor.rollout(s[:, 0], self.normalise(actions))

    @torch.no_grad()
    def revive_latent_values(self, obs: torch.Tensor, actions: torch.Tensor, seed: int) -> list[int]:
        """Revive the discrete latent's dead values (``Latent.revive``) from the winners of the transitions in
        ``obs (B, T+1, C, H, W)``, ``actions (B, T, A)``; counts are summed over processes. Returns the revived."""
        latent, share = self.predictor.latent, self.cfg.predictor.latent_revive
        s, a = self.encoder.encode(obs), self.normalise(actions)
        won = torch.cat([latent.winners(self.predictor, s[:, t], a[:, t], s[:, t + 1]) for t in range(a.shape[1])])
        wins = torch.bincount(won, minlength=latent.dim).float()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(wins)
        return latent.revive(self.predictor, wins.cpu(), share, torch.Generator().manual_seed(seed))

    def free_energy_rollout(self, s: torch.Tensor, actions: torch.Tensor, progress: float = 1.0
                            ) -> tuple[torch.Tensor, torch.Tensor]:
        """The energy and ``R(z)`` (means) of a rollout from ``s[:, 0]`` in which every step takes the ``z`` inferred
        from the encoded transition ``(s[:, t], s[:, t + 1])`` (Sec. 4.5; ``amia.models.latent``)."""
        beta, latent = self.cfg.predictor.latent_weight, self.predictor.latent
        sparsity = self.cfg.predictor.latent_sparsity * sparsity_ramp(progress)
        state, energy, reg = s[:, 0], [], []
        for t in range(actions.shape[1]):
            state, e, r = latent.step(self.predictor, state, actions[:, t], s[:, t + 1], beta, observed=s[:, t],
                                      sparsity=sparsity)
            energy.append(e)
            reg.append(r)
        return torch.stack(energy).mean(), torch.stack(reg).mean()
