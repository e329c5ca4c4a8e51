"""Latent variables of the world model (Sec. 4.5, 4.8): ``z`` in ``Pred(s, a, z)``, its regulariser ``R(z)`` and
its prior ``p(z | s, a)``.

When the world is not deterministic, the same state and action lead to several futures; ``z`` says which one.
Training minimises the *free energy* ``F(s, a, s') = min_z E(s, a, z, s') + beta R(z | s)`` with
``E = ||Pred(s, a, z) - s'||^2`` (mean over dimensions). ``R`` limits what ``z`` can carry: without it, ``z``
could encode the whole next state and the energy would say nothing about the world (Sec. 4.5).

Kinds (``PredictorConfig.latent``):

- ``discrete``: ``z`` takes one of ``k`` values (one-hot); every value is tried. ``R(z | s, a) = -log p(z | s, a)``
  with ``p`` a softmax whose logits are predicted from the state and the action (the action decides, e.g., whether
  the agent steps into a gust): ``p ~ exp(-R)`` is the Gibbs distribution of Sec. 4.8, and it holds the outcomes'
  frequencies. ``k`` bounds the information to ``log k`` nats per step. Training takes, per transition, the value of
  least one-step energy from the encoded state (direct minimisation over ``z``, the best value per sample); that
  value learns from the transition with weight ``1 - RELAX`` and every other value with ``RELAX / (k - 1)``
  ("relaxed winner-take-all"). The small share keeps every value learning from all the data: a value that starts far
  off still comes to win the outcomes nearest to it (a plain minimum can let one value win everything), and a value
  stays sensible where it does not win (with a share of 0.001 such values drifted 4 px off where the world is
  certain, and every error of the prior then sampled a wrong future). The price is a pull of each value towards the
  outcomes it loses: with k = 4 values and outcomes of probabilities 0.7 and 0.3 that are 20 px apart, the rarer
  one's value sits about 0.15 px short of it; an outcome of probability 0.015 20 px away, about 3.6 px short. The
  prior learns, by cross-entropy, how often each value wins. ``relax_by_prior``: a losing value learns from a
  transition with ``RELAX p(z | s, a)`` instead, so a rare outcome's value is pulled only where the prior expects
  it (a push that happens only in a gust zone is no longer pulled towards every calm transition of the world).
- ``gaussian``: continuous low-dimensional ``z`` inferred by an amortised encoder ``q(s, s')`` with noise;
  ``R`` is the KL divergence from ``q`` to a Gaussian prior ``N(mu(s, a), sigma(s, a))`` (noise as the regulariser).
- ``free``: continuous ``z`` from the amortised encoder, no noise, no ``R`` in the objective (the control that
  shows why ``R`` matters); a Gaussian prior is fitted to the inferred ``z`` only so that a planner can sample.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from amia.models.layers import mlp

LATENTS = ("none", "discrete", "gaussian", "free")
_LOG_2PI = math.log(2 * math.pi)
RELAX = 0.01


def sparsity_ramp(progress: float) -> float:
    """The share of ``latent_sparsity`` in force at ``progress`` (0..1) of training: none for the first fifth (the
    values first learn what they can explain), then rising linearly to all of it at half-way."""
    return min(max((progress - 0.2) / 0.3, 0.0), 1.0)


def gaussian_kl(mu: torch.Tensor, log_std: torch.Tensor, p_mu: torch.Tensor, p_log_std: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, std) || N(p_mu, p_std))`` of diagonal Gaussians, summed over the last dimension."""
    var, p_var = (2 * log_std).exp(), (2 * p_log_std).exp()
    return (p_log_std - log_std + (var + (mu - p_mu).pow(2)) / (2 * p_var) - 0.5).sum(-1)


def gaussian_nll(z: torch.Tensor, mu: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """``-log N(z; mu, std)`` of a diagonal Gaussian, summed over the last dimension."""
    return (log_std + 0.5 * ((z - mu) / log_std.exp()).pow(2) + 0.5 * _LOG_2PI).sum(-1)


class Latent(nn.Module):
    """The latent of one predictor: inference of ``z`` in training, ``R(z | s, a)``, and sampling from the prior.

    ``dim`` is the number of values ``k`` (discrete) or the dimension of ``z`` (gaussian, free); ``width`` is
    what the predictor takes (``k`` one-hot entries, or ``dim`` numbers). The prior reads the state and the
    action, the encoder of ``z`` (continuous kinds) the transition; both read states through ``detach``: they
    describe the representation, they do not shape it.
    """

    def __init__(self, kind: str, dim: int, state_dim: int, action_dim: int, hidden: int = 256,
                 relax_by_prior: bool = False):
        super().__init__()
        self.relax_by_prior = relax_by_prior
        if kind not in LATENTS[1:]:
            raise ValueError(f"latent kind must be one of {LATENTS[1:]}, got {kind!r}")
        if dim < 1:
            raise ValueError(f"a {kind} latent needs dim >= 1, got {dim}")
        self.kind, self.dim, self.width = kind, dim, dim
        self.prior = mlp([state_dim + action_dim, hidden, hidden, dim if kind == "discrete" else 2 * dim])
        self.infer = None if kind == "discrete" else mlp([2 * state_dim, hidden, hidden, 2 * dim if kind == "gaussian" else dim])

    def prior_params(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(..., k)`` (discrete) or ``(mu, log_std)`` each ``(..., dim)`` of ``p(z | s, a)``."""
        out = self.prior(torch.cat([s.detach(), a], dim=-1))
        if self.kind == "discrete":
            return out
        mu, log_std = out.chunk(2, dim=-1)
        return mu, log_std.clamp(-5.0, 2.0)

    def step(self, predictor: nn.Module, s: torch.Tensor, a: torch.Tensor, target: torch.Tensor, beta: float,
             observed: torch.Tensor | None = None, sparsity: float = 0.0
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One training step of the free energy: ``(prediction (B, D), E (B,), R (B,))``; the loss is ``E + beta R``.

        ``s`` is the state the prediction starts from (in a rollout, the previous prediction); ``observed`` the
        encoded state at the same step (default ``s``), from which ``z`` is inferred together with ``target``: the
        latent explains what happened in the transition ``(observed, target)``, not the rollout's drift.

        discrete: ``z*`` is the value of least one-step energy from ``observed``, plus ``sparsity`` for any value but
        value 0 (no gradient through the choice;
        weighing ``R`` in too would let a confident prior keep choosing its favourite, so that one value wins
        everything); ``E`` is the relaxed winner-take-all energy of the prediction from ``s``, ``(1 - RELAX)
        E(z*) + RELAX mean_{z != z*} E(z)``, and ``R = -log p(z* | observed, a)`` (the prior's cross-entropy); the
        prediction is that of ``z*``. gaussian: ``z`` sampled from ``q(observed, target)``, ``R`` its KL to the
        prior; free: ``z = q(observed, target)``, ``R`` the prior's fit to it (which trains only the prior).
        """
        observed = s if observed is None else observed
        if self.kind == "discrete":
            cand = self.candidates(predictor, s, a)
            energy = (cand - target[:, None]).pow(2).mean(-1)  # (B, k)
            with torch.no_grad():
                if observed is not s:
                    energy_observed = (self.candidates(predictor, observed, a) - target[:, None]).pow(2).mean(-1)
                else:
                    energy_observed = energy
                best = (energy_observed + sparsity * self.sparse_cost(energy_observed)).argmin(1)
            log_prior = F.log_softmax(self.prior_params(observed, a), dim=-1)
            rows = torch.arange(s.shape[0], device=s.device)
            won = F.one_hot(best, self.dim).to(energy.dtype)
            share = RELAX * log_prior.detach().exp() if self.relax_by_prior else RELAX / max(1, self.dim - 1)
            weights = won * (1 - RELAX) + (1 - won) * share
            return cand[rows, best], (weights * energy).sum(1), -log_prior[rows, best]
        q = self.infer(torch.cat([observed, target], dim=-1).detach())
        p_mu, p_log_std = self.prior_params(observed, a)
        if self.kind == "gaussian":
            mu, log_std = q.chunk(2, dim=-1)
            log_std = log_std.clamp(-5.0, 2.0)
            z = mu + log_std.exp() * torch.randn_like(mu) if self.training else mu
            reg = gaussian_kl(mu, log_std, p_mu, p_log_std)
        else:
            z = q
            reg = gaussian_nll(z.detach(), p_mu, p_log_std)
        pred = predictor(s, a, z)
        return pred, (pred - target).pow(2).mean(-1), reg

    def free_energy(self, predictor: nn.Module, s: torch.Tensor, a: torch.Tensor, target: torch.Tensor,
                    beta: float, steps: int = 50, lr: float = 0.1, sparsity: float = 0.0) -> torch.Tensor:
        """``F = min_z E + beta R(z | s, a)`` per sample ``(B,)``: exact over every value of a discrete ``z`` (with
        ``sparsity`` charged for any value but value 0); for a continuous one, ``steps`` of Adam on ``z`` from the
        amortised guess, with ``R = -log p(z | s, a)`` (``free``: no ``R``). Predictor and latent weights are left
        untouched."""
        with torch.no_grad():
            if self.kind == "discrete":
                energy = (self.candidates(predictor, s, a) - target[:, None]).pow(2).mean(-1)
                reg = sparsity * self.sparse_cost(energy) - beta * F.log_softmax(self.prior_params(s, a), dim=-1)
                return (energy + reg).min(1).values
            q = self.infer(torch.cat([s, target], dim=-1))
            z0 = q.chunk(2, dim=-1)[0] if self.kind == "gaussian" else q
            p_mu, p_log_std = self.prior_params(s, a)
        weight = 0.0 if self.kind == "free" else beta

        def energy_of(z: torch.Tensor) -> torch.Tensor:
            e = (predictor(s, a, z) - target).pow(2).mean(-1)
            return e + weight * gaussian_nll(z, p_mu, p_log_std) if weight else e

        z = z0.clone().requires_grad_(True)
        opt = torch.optim.Adam([z], lr=lr)
        best = energy_of(z0).detach()
        with torch.enable_grad():
            for _ in range(steps):
                e = energy_of(z)
                best = torch.minimum(best, e.detach())
                opt.zero_grad(set_to_none=True)
                z.grad = torch.autograd.grad(e.sum(), z)[0]
                opt.step()
        with torch.no_grad():
            return torch.minimum(best, energy_of(z))

    @torch.no_grad()
    def winners(self, predictor: nn.Module, s: torch.Tensor, a: torch.Tensor, target: torch.Tensor,
                sparsity: float = 0.0) -> torch.Tensor:
        """``z*`` (discrete): the value of least one-step energy from ``s (B, D)`` to ``target (B, D)``, ``(B,)``."""
        energy = (self.candidates(predictor, s, a) - target[:, None]).pow(2).mean(-1)
        return (energy + sparsity * self.sparse_cost(energy)).argmin(1)

    @torch.no_grad()
    def revive(self, predictor: nn.Module, wins: torch.Tensor, share: float, generator: torch.Generator,
               noise: float = 0.1) -> list[int]:
        """Give every value that won less than ``share`` of the transitions (``wins (k,)``, counts) a copy of the
        most-used value's embedding (its column of the predictor's first layer, perturbed by ``noise`` of that
        column's spread) and split that value's prior mass with it: the two then compete for the most-used value's
        transitions and divide them, as a k-means codebook splits a crowded centre (a "dead" value, left at
        the mean by relaxed winner-take-all, never wins anything on its own). Returns the revived values."""
        total = float(wins.sum())
        if self.kind != "discrete" or total == 0:
            return []
        dead = [j for j in range(self.dim) if wins[j] < share * total]
        first, last = predictor.net[0], self.prior[-1]
        offset = first.in_features - self.dim
        order = torch.argsort(wins, descending=True).tolist()
        for i, j in enumerate(dead):
            src = order[i % max(1, self.dim - len(dead))]
            col = first.weight[:, offset + src]
            first.weight[:, offset + j] = col + noise * col.std() * torch.randn(col.shape, generator=generator).to(col.device)
            last.weight[j], last.bias[j] = last.weight[src], last.bias[src] - math.log(2.0)
            last.bias[src] -= math.log(2.0)
        return dead

    def sparse_cost(self, like: torch.Tensor) -> torch.Tensor:
        """``[z != 0]`` for every value, shaped to broadcast over ``like (..., k)``: what sparsity charges."""
        cost = torch.ones(self.dim, device=like.device, dtype=like.dtype)
        cost[0] = 0.0
        return cost

    def candidates(self, predictor: nn.Module, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """The predictions ``(B, k, D)`` of every value of a discrete ``z``."""
        b, k = s.shape[0], self.dim
        codes = torch.eye(k, device=s.device, dtype=s.dtype)
        return predictor(s[:, None].expand(b, k, -1), a[:, None].expand(b, k, -1), codes.expand(b, k, k))

    def noise(self, shape: tuple[int, ...], generator: torch.Generator | None, device) -> torch.Tensor:
        """The randomness of ``shape`` samples: uniforms ``shape`` (discrete) or normals ``(*shape, dim)``."""
        if self.kind == "discrete":
            return torch.rand(shape, generator=generator, device=device)
        return torch.randn((*shape, self.dim), generator=generator, device=device)

    def sample(self, s: torch.Tensor, a: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """``z ~ p(z | s, a)`` for states ``(..., D)`` and actions ``(..., A)`` from ``noise`` (``noise()``): one-hot
        ``(..., k)`` or ``(..., dim)``."""
        if self.kind == "discrete":
            cdf = F.softmax(self.prior_params(s, a), dim=-1).cumsum(-1)
            idx = (cdf < noise[..., None]).sum(-1).clamp(max=self.dim - 1)
            return F.one_hot(idx, self.dim).to(s.dtype)
        mu, log_std = self.prior_params(s, a)
        return mu + log_std.exp() * noise

    def mode(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """The prior's most likely ``z`` for states ``(..., D)`` and actions ``(..., A)``."""
        if self.kind == "discrete":
            return F.one_hot(self.prior_params(s, a).argmax(-1), self.dim).to(s.dtype)
        return self.prior_params(s, a)[0]

    def values(self, s: torch.Tensor, a: torch.Tensor, count: int, generator: torch.Generator | None) -> torch.Tensor:
        """Candidate latents ``(..., C, width)`` for an adversary: every value (discrete, ``C = k``) or ``count``
        samples of the prior (continuous)."""
        if self.kind == "discrete":
            codes = torch.eye(self.dim, device=s.device, dtype=s.dtype)
            return codes.expand(*s.shape[:-1], self.dim, self.dim)
        lead = (*s.shape[:-1], count)
        eps = torch.randn((*lead, self.dim), generator=generator, device=s.device)
        return self.sample(s[..., None, :].expand(*lead, s.shape[-1]), a[..., None, :].expand(*lead, a.shape[-1]), eps)


__all__ = ["LATENTS", "RELAX", "Latent", "gaussian_kl", "gaussian_nll"]
