"""Short-term memory (Sec. 3, Fig. 2; Sec. 4.9): what the agent perceived and imagined, with its intrinsic cost.

Each entry is ``(episode, t, s[t], IC(s[t]), context, imagined)``: the episode it belongs to, its time step,
the state, the intrinsic energy the cost module gave it, the task context it was seen under (the goal's
state for goal reaching) and whether it was perceived or imagined. Memory is a ring buffer of fixed
capacity: writes are batched, and the oldest entries are overwritten once it is full.

Retrieval is by time (``read_time``) and by key similarity in the key-value form of Sec. 4.9
(``read``): ``Mem(q) = sum_j c_j v_j`` with ``c = softmax(-|k_j - q|^2 / temperature)``, the keys being
the stored states and the values their intrinsic costs. The critic is trained from memory
(``trajectories``), never from the dataset file (Sec. 3.3).
"""

from __future__ import annotations

import torch


class ShortTermMemory:
    """Bounded store of ``(episode, t, s, IC(s), context, imagined)`` entries, all tensors on one device."""

    def __init__(self, capacity: int, state_dim: int, context_dim: int = 0, device: torch.device | str = "cpu"):
        if capacity < 1:
            raise ValueError(f"memory capacity must be at least 1, got {capacity}")
        self.capacity, self.state_dim, self.context_dim = capacity, state_dim, context_dim
        dev = torch.device(device)
        self.episode = torch.zeros(capacity, dtype=torch.long, device=dev)
        self.t = torch.zeros(capacity, dtype=torch.long, device=dev)
        self.state = torch.zeros(capacity, state_dim, device=dev)
        self.cost = torch.zeros(capacity, device=dev)
        self.context = torch.zeros(capacity, context_dim, device=dev)
        self.imagined = torch.zeros(capacity, dtype=torch.bool, device=dev)
        self.size, self._next, self.writes = 0, 0, 0

    def __len__(self) -> int:
        return self.size

    def write(self, episode: torch.Tensor, t: torch.Tensor | int, state: torch.Tensor, cost: torch.Tensor,
              context: torch.Tensor | None = None, imagined: bool = False) -> None:
        """Store ``N`` entries at once: ``episode (N,)``, ``t (N,)`` or one int, ``state (N, D)``, ``cost (N,)``,
        ``context (N, K)``. Beyond capacity the oldest entries are overwritten."""
        n = state.shape[0]
        if state.dim() != 2 or state.shape[1] != self.state_dim:
            raise ValueError(f"memory expects states of shape (N, {self.state_dim}), got {tuple(state.shape)}")
        if cost.shape != (n,) or episode.shape != (n,):
            raise ValueError(f"episode and cost should have shape ({n},), got {tuple(episode.shape)} and {tuple(cost.shape)}")
        if self.context_dim and (context is None or tuple(context.shape) != (n, self.context_dim)):
            got = None if context is None else tuple(context.shape)
            raise ValueError(f"memory expects a context of shape ({n}, {self.context_dim}), got {got}")
        if n > self.capacity:  # only the newest ``capacity`` survive
            keep = slice(n - self.capacity, n)
            episode, state, cost = episode[keep], state[keep], cost[keep]
            t = t[keep] if torch.is_tensor(t) else t
            context = context[keep] if context is not None else None
            n = self.capacity
        idx = (self._next + torch.arange(n, device=self.state.device)) % self.capacity
        self.episode[idx] = episode.to(self.episode.device)
        self.t[idx] = t.to(self.t.device) if torch.is_tensor(t) else t
        self.state[idx] = state.detach().to(self.state)
        self.cost[idx] = cost.detach().to(self.cost)
        if self.context_dim:
            self.context[idx] = context.detach().to(self.context)
        self.imagined[idx] = imagined
        self._next = (self._next + n) % self.capacity
        self.size = min(self.capacity, self.size + n)
        self.writes += n

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Every buffer and counter as tensors (to save memory with the rest of a resumable job)."""
        return {"episode": self.episode, "t": self.t, "state": self.state, "cost": self.cost, "context": self.context,
                "imagined": self.imagined, "counters": torch.tensor([self.size, self._next, self.writes])}

    def load_state_dict(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore what ``state_dict`` saved (the capacity and sizes must match)."""
        for name in ("episode", "t", "state", "cost", "context", "imagined"):
            own = getattr(self, name)
            if tensors[name].shape != own.shape:
                raise ValueError(f"saved memory {name} has shape {tuple(tensors[name].shape)}, expected {tuple(own.shape)}")
            own.copy_(tensors[name])
        self.size, self._next, self.writes = (int(v) for v in tensors["counters"])

    def entries(self) -> dict[str, torch.Tensor]:
        """Every stored entry (in no particular order) as a dict of tensors."""
        k = self.size
        return {"episode": self.episode[:k], "t": self.t[:k], "state": self.state[:k], "cost": self.cost[:k],
                "context": self.context[:k], "imagined": self.imagined[:k]}

    def read_time(self, start: int, stop: int, imagined: bool | None = None) -> dict[str, torch.Tensor]:
        """Entries with ``start <= t < stop`` (optionally only perceived or only imagined ones)."""
        e = self.entries()
        mask = (e["t"] >= start) & (e["t"] < stop)
        if imagined is not None:
            mask &= e["imagined"] == imagined
        return {k: v[mask] for k, v in e.items()}

    def read(self, query: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        """Key-value retrieval (Sec. 4.9): ``(Q, D)`` queries -> ``(Q,)`` similarity-weighted stored costs."""
        if self.size == 0:
            raise ValueError("read from an empty memory")
        keys = self.state[: self.size]
        c = torch.softmax(-torch.cdist(query.to(keys), keys).pow(2) / temperature, dim=1)
        return c @ self.cost[: self.size]

    def trajectories(self, imagined: bool = False) -> dict[str, torch.Tensor]:
        """The stored entries (perceived, or imagined) as trajectories: sorted by ``(episode, t)`` and cut into
        runs of consecutive steps. Returns the sorted entries plus ``offsets (R+1,)``: run ``r`` is entries
        ``offsets[r] .. offsets[r+1] - 1`` (a gap left by overwritten entries starts a new run)."""
        e = self.entries()
        keep = e["imagined"] == imagined
        e = {k: v[keep] for k, v in e.items()}
        if e["t"].numel() == 0:
            raise ValueError(f"memory holds no {'imagined' if imagined else 'perceived'} entries (to train a critic from)")
        order = torch.argsort(e["episode"] * (int(e["t"].max()) + 1) + e["t"])
        e = {k: v[order] for k, v in e.items()}
        ep, t = e["episode"], e["t"]
        cuts = torch.nonzero((ep[1:] != ep[:-1]) | (t[1:] != t[:-1] + 1)).flatten() + 1
        e["offsets"] = torch.cat([cuts.new_zeros(1), cuts, cuts.new_full((1,), ep.numel())])
        return e
