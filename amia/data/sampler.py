"""Fixed-length windows ``(obs[t..t+T], action[t..t+T-1])`` streamed from a trajectory file in chunks.

Only one chunk of episodes is in memory at a time, so files larger than memory work. Which chunk is loaded
and which windows are drawn depend only on ``(seed, step, rank)``: a resumed run sees the same batches.
"""

from __future__ import annotations

import os

import h5py
import numpy as np

from amia.data.dataset import DatasetError, read_info


class WindowSampler:
    """Draws batches of windows of ``steps`` actions (``steps + 1`` frames) from some episodes of a file.

    Args:
        path: trajectory file (see ``amia.data.dataset``).
        steps: actions per window ``T``.
        batch_size: windows per batch (per process).
        episodes: indices of the episodes to draw from (default: all).
        chunk_frames: most frames held in memory at once.
        seed: base seed.
    """

    def __init__(self, path: str | os.PathLike, steps: int, batch_size: int, episodes=None,
                 chunk_frames: int = 200_000, seed: int = 0, block_episodes: int = 16):
        self.info = read_info(path)
        self.steps, self.batch_size, self.seed = steps, batch_size, seed
        off = self.info.episode_offsets
        eps = np.arange(self.info.episodes) if episodes is None else np.sort(np.asarray(episodes))
        lengths = off[eps + 1] - off[eps]
        eps = eps[lengths >= steps + 1]
        if eps.size == 0:
            raise ValueError(f"{path}: no episode has the {steps + 1} frames that a window of {steps} steps needs")
        self.episodes = eps
        self.blocks = [eps[i:i + block_episodes] for i in range(0, eps.size, block_episodes)]
        frames = off[eps + 1] - off[eps]
        per_block = max(1, int(np.mean(frames)) * block_episodes)
        self.blocks_per_chunk = max(1, min(len(self.blocks), chunk_frames // per_block))
        self.single_chunk = self.blocks_per_chunk >= len(self.blocks)
        chunk_size = self.blocks_per_chunk * per_block
        self.steps_per_chunk = max(1, chunk_size // (batch_size * (steps + 1)))
        self._chunk_id, self._chunk = None, None

    def _load(self, chunk_id: int) -> dict:
        if self.single_chunk:
            chosen = range(len(self.blocks))
        else:
            rng = np.random.default_rng([self.seed, chunk_id, 7])
            chosen = np.sort(rng.choice(len(self.blocks), self.blocks_per_chunk, replace=False))
        off = self.info.episode_offsets
        parts = {"obs": [], "action": [], "state": []}
        starts, lengths = [], []
        n = 0
        with h5py.File(self.info.path, "r") as f:
            for b in chosen:
                eps = self.blocks[b]
                base = off[eps[0]]
                span = self._read(f, base, off[eps[-1] + 1])  # one read per block
                for e in eps:
                    lo, hi = off[e] - base, off[e + 1] - base
                    for k in parts:
                        parts[k].append(span[k][lo:hi])
                    starts.append(n)
                    lengths.append(hi - lo)
                    n += hi - lo
        chunk = {k: np.concatenate(v) for k, v in parts.items()}
        counts = np.asarray(lengths) - self.steps
        chunk["starts"], chunk["cum"] = np.asarray(starts), np.cumsum(counts)
        return chunk

    def _read(self, f: h5py.File, lo: int, hi: int) -> dict[str, np.ndarray]:
        """Frames ``lo:hi`` of every dataset; a chunk that fails its checksum is a ``DatasetError`` naming them."""
        try:
            return {k: f[k][lo:hi] for k in ("obs", "action", "state")}
        except (OSError, RuntimeError) as e:
            raise DatasetError(f"{self.info.path}: frames {lo}..{hi - 1} cannot be read (corrupt data: {e})") from None

    def chunk(self, step: int) -> dict:
        cid = 0 if self.single_chunk else step // self.steps_per_chunk
        if cid != self._chunk_id:
            self._chunk, self._chunk_id = self._load(cid), cid
        return self._chunk

    def batch(self, step: int, rank: int = 0) -> dict[str, np.ndarray]:
        """Windows for one step: ``obs uint8 (B, T+1, C, H, W)``, ``action (B, T, A)``, ``state (B, T+1, S)``."""
        c = self.chunk(step)
        rng = np.random.default_rng([self.seed, step, rank, 11])
        u = rng.integers(0, c["cum"][-1], size=self.batch_size)
        ep = np.searchsorted(c["cum"], u, side="right")
        t0 = c["starts"][ep] + u - np.concatenate([[0], c["cum"]])[ep]
        idx = t0[:, None] + np.arange(self.steps + 1)[None, :]
        return {"obs": c["obs"][idx], "action": c["action"][idx[:, :-1]], "state": c["state"][idx]}
