"""Pictures of what the agent sees and plans: animated GIFs of episodes with their plans, planner plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def to_rgb(frames: np.ndarray) -> np.ndarray:
    """Observations ``uint8 (..., 2, H, W)`` to RGB ``(..., H, W, 3)``: walls grey, agent white."""
    agent, walls = frames[..., 0, :, :], frames[..., 1, :, :]
    grey = (walls // 2).astype(np.uint8)
    rgb = np.stack([grey, grey, grey], axis=-1)
    return np.maximum(rgb, agent[..., None])


def _dot(img: np.ndarray, xy: np.ndarray, colour, radius: int = 1) -> None:
    h, w = img.shape[:2]
    x, y = int(np.floor(xy[0])), int(np.floor(xy[1]))
    img[max(0, y - radius):min(h, y + radius + 1), max(0, x - radius):min(w, x + radius + 1)] = colour


def _ring(img: np.ndarray, xy: np.ndarray, colour, radius: int = 2) -> None:
    """A hollow square of half-width ``radius`` around ``xy`` (the subgoal's marker)."""
    h, w = img.shape[:2]
    x, y = int(np.floor(xy[0])), int(np.floor(xy[1]))
    for i in range(-radius, radius + 1):
        for px, py in ((x + i, y - radius), (x + i, y + radius), (x - radius, y + i), (x + radius, y + i)):
            if 0 <= px < w and 0 <= py < h:
                img[py, px] = colour


def episode_gif(path: str | Path, frames: np.ndarray, goals: np.ndarray, plans: list[np.ndarray] | None,
                replan_every: int, scale: int = 4, fps: int = 10, subgoals: list[np.ndarray] | None = None) -> None:
    """Write a GIF of several episodes side by side.

    ``frames`` ``uint8 (T, E, 2, H, W)``; ``goals`` goal positions ``(E, 2)``; ``plans`` one array of planned
    positions ``(E, horizon, 2)`` per re-plan (drawn as blue dots until the next re-plan); the goal is green.
    ``subgoals``: hierarchical Mode-2's subgoal positions ``(E, 2)`` per (level-1) re-plan, drawn as orange
    rings (NaN: none, level 1 plans to the goal itself).
    """
    import imageio.v2 as imageio

    t_steps, episodes = frames.shape[:2]
    pictures = []
    for t in range(t_steps):
        tiles = []
        for e in range(episodes):
            img = to_rgb(frames[t, e]).copy()
            if plans:
                for xy in plans[min(t // replan_every, len(plans) - 1)][e]:
                    _dot(img, xy, (60, 120, 255), radius=0)
            if subgoals:
                xy = subgoals[min(t // replan_every, len(subgoals) - 1)][e]
                if np.isfinite(xy).all():
                    _ring(img, xy, (255, 140, 0))
            _dot(img, goals[e], (0, 220, 0))
            tiles.append(np.pad(img, ((1, 1), (1, 1), (0, 0)), constant_values=255))
        row = np.concatenate(tiles, axis=1)
        pictures.append(row.repeat(scale, axis=0).repeat(scale, axis=1))
    imageio.mimsave(str(path), pictures, duration=1000 / fps, loop=0)


def planner_plot(path: str | Path, results: list[dict]) -> None:
    """Success rate and time per plan for each planner, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["planner"] for r in results]
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.2))
    a.bar(names, [r["success_rate"] for r in results], color="tab:green")
    a.set_ylim(0, 1)
    a.set_ylabel("success rate")
    b.bar(names, [r["ms_per_plan_median"] or 0 for r in results], color="tab:blue")
    b.set_ylabel("ms per plan (median, batch 1)")
    env = results[0]["env"] if results else ""
    fig.suptitle(f"Mode-2 goal reaching on {env} ({results[0]['episodes'] if results else 0} episodes)")
    fig.tight_layout()
    fig.savefig(str(path), dpi=120)
    plt.close(fig)


def write_gif(path: str | Path, actor, env_id: str, cfg, data_path: str | Path | None, episodes: int = 4) -> bool:
    """An animation of the protocol's first ``episodes`` episodes with each plan's predicted positions (blue) and,
    where the actor hands subgoals down, the subgoals (orange rings; none once it plans to the goal itself).
    Positions are read from states by linear read-outs fitted on the trajectory file ``data_path``; without it,
    the frames alone are drawn. Returns whether the plans could be drawn."""
    import dataclasses

    import torch

    from amia.data.encode import encode_frames
    from amia.data.sampler import WindowSampler
    from amia.eval.diagnostics import draw_windows
    from amia.eval.protocol import run_protocol
    from amia.models.probe import LinearProbe

    out = run_protocol(actor, env_id, dataclasses.replace(cfg, episodes=episodes), progress=False, record=episodes)
    trace, plans, subgoals = out["trace"], None, None
    if data_path is not None and Path(data_path).exists():
        batch = draw_windows(WindowSampler(data_path, 1, 256, seed=0), 512)
        states = encode_frames(actor.model.encoder, batch["obs"], actor.device).flatten(0, 1)
        xy = torch.from_numpy(batch["state"]).flatten(0, 1)[:, :2]
        probe = LinearProbe.fit(states, xy)
        plans = [probe(p).numpy() for p in trace["plans"]]
        if trace.get("subgoals"):
            with torch.no_grad():
                probe2 = LinearProbe.fit(trace["subgoal_space"](states.to(actor.device)).cpu(), xy)
            subgoals = [np.where(on[:, None], np.nan, probe2(g).numpy())
                        for g, on in zip(trace["subgoals"], trace["switched"])]
    episode_gif(path, np.stack(out["frames"]), out["goal_xy"], plans, actor.periods["plan"], subgoals=subgoals)
    return plans is not None
