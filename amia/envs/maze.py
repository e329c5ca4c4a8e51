"""The maze world ``amia/Maze-v0``: a 3x3 grid of rooms joined by doors, for goals several rooms away.

The testbed of H-JEPA and hierarchical planning (Sec. 4.6, 4.7): the way to a goal three or
more doors away snakes through the rooms, well beyond a flat planner's horizon. Agent, physics and rendering
are those of the rooms worlds (``amia.envs.geometry``): a point of radius 1 drawn as a Gaussian blob, actions
clipped per coordinate to ``max_step``, moves that would cross a wall stop at the wall.

Geometry (defaults; pixels, x right, y down): a 96x96 frame with a 2 px border; internal walls 3 px thick
centred on x, y = 32 and 64 split it into rooms numbered ``r = 3 * row + col``::

    0 | 1 | 2          every wall segment between two neighbouring rooms has a door of height 10 px at
    --+---+--          its middle; ``MazeSpec.open_doors`` lists the open ones. The default opens the
    3 | 4 | 5          serpentine 0-1-2-5-4-3-6-7-8 plus 4-7, so the closed doors are 0-3, 1-4 and 5-8.
    --+---+--
    6 | 7 | 8

The layout is fixed (the same in every episode), so the true state of an episode is the position ``(x, y)``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from amia.envs.geometry import PointWorld, sample_free_points, wall_layer

MAZE_STATE_NAMES = ("x", "y")
SERPENTINE = ((0, 1), (1, 2), (2, 5), (5, 4), (4, 3), (3, 6), (6, 7), (7, 8))


@dataclass(frozen=True)
class MazeSpec:
    """Geometry and physics of a maze world; every length in pixels.

    ``open_doors``: pairs of neighbouring rooms (``r = grid * row + col``) whose shared wall has an open door;
    every other door is closed. ``max_steps``: the episode budget (Gymnasium's time limit and the evaluation
    protocol's steps). ``eval_min_doors``: the evaluation set's least number of doors between start and goal.
    """

    size: int = 96
    border: float = 2.0
    wall_thickness: float = 3.0
    door_height: float = 10.0
    agent_radius: float = 1.0
    agent_sigma: float = 1.2
    max_step: float = 2.45
    grid: int = 3
    open_doors: tuple[tuple[int, int], ...] = SERPENTINE + ((4, 7),)
    max_steps: int = 400
    eval_min_doors: int = 3

    def __post_init__(self):
        n = self.grid
        for a, b in self.open_doors:
            a, b = min(a, b), max(a, b)
            ok = 0 <= a < b < n * n and (b == a + n or (b == a + 1 and b % n != 0))
            if not ok:
                raise ValueError(f"open door {(a, b)} does not join two neighbouring rooms of a {n}x{n} maze")

    @property
    def rooms(self) -> int:
        return self.grid * self.grid


def wall_centres(spec: MazeSpec) -> np.ndarray:
    """Centre coordinates ``(grid - 1,)`` of the internal walls (the same along x and y)."""
    return spec.size * np.arange(1, spec.grid) / spec.grid


def room_extents(spec: MazeSpec) -> tuple[np.ndarray, np.ndarray]:
    """Free extent ``[lo, hi]`` of each row (or column) of rooms between the walls' faces, ``(grid,)`` each."""
    h, c = spec.wall_thickness / 2, wall_centres(spec)
    lo = np.concatenate([[spec.border], c + h])
    hi = np.concatenate([c - h, [spec.size - spec.border]])
    return lo, hi


def _is_open(spec: MazeSpec) -> set[tuple[int, int]]:
    return {(min(a, b), max(a, b)) for a, b in spec.open_doors}


def maze_rectangles(spec: MazeSpec) -> np.ndarray:
    """The maze's obstacles as rectangles ``(R, 4)`` of ``(x0, y0, x1, y1)``: four borders, then each internal
    wall as the pieces between its open doors (a door sits at the middle of its room's side)."""
    s, t, h, n = float(spec.size), spec.border, spec.wall_thickness / 2, spec.grid
    rects = [(0, 0, t, s), (s - t, 0, s, s), (0, 0, s, t), (0, s - t, s, s)]
    lo, hi = room_extents(spec)
    doors, is_open = (lo + hi) / 2, _is_open(spec)
    for k, c in enumerate(wall_centres(spec)):
        for vertical in (True, False):
            # the wall between columns (rows) k and k+1; along it, position i is row (column) i
            cuts = [doors[i] for i in range(n)
                    if ((i * n + k, i * n + k + 1) if vertical else (k * n + i, (k + 1) * n + i)) in is_open]
            ends = [0.0] + [e for d in cuts for e in (d - spec.door_height / 2, d + spec.door_height / 2)] + [s]
            for a, b in zip(ends[::2], ends[1::2]):
                rects.append((c - h, a, c + h, b) if vertical else (a, c - h, b, c + h))
    return np.asarray(rects, dtype=np.float64)


def door_distances(spec: MazeSpec) -> np.ndarray:
    """Doors on the shortest path between every two rooms through open doors, ``int64 (rooms, rooms)``
    (breadth-first search on the door graph); -1 where no path exists."""
    n = spec.rooms
    neighbours: list[list[int]] = [[] for _ in range(n)]
    for a, b in _is_open(spec):
        neighbours[a].append(b)
        neighbours[b].append(a)
    dist = np.full((n, n), -1, dtype=np.int64)
    for src in range(n):
        dist[src, src], queue = 0, deque([src])
        while queue:
            r = queue.popleft()
            for q in neighbours[r]:
                if dist[src, q] < 0:
                    dist[src, q] = dist[src, r] + 1
                    queue.append(q)
    return dist


def door_centres(spec: MazeSpec) -> dict[tuple[int, int], np.ndarray]:
    """Centre ``(x, y)`` of each open door, keyed by its pair of rooms ``(a, b)`` with ``a < b``."""
    lo, hi = room_extents(spec)
    mid, walls, n = (lo + hi) / 2, wall_centres(spec), spec.grid
    centres = {}
    for a, b in sorted(_is_open(spec)):
        row, col = divmod(a, n)
        centres[(a, b)] = np.array([walls[col], mid[row]] if b == a + 1 else [mid[col], walls[row]])
    return centres


def geodesic_distance(spec: MazeSpec, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Shortest path length in pixels between positions ``a`` and ``b`` ``(N, 2)`` through open doors, ``(N,)``.

    Rooms are convex, so a path is straight within a room and passes doors; doors are taken at their centres
    (an upper bound by at most a few pixels per door). Infinite where no path exists.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    world = MazeWorld(1, spec)
    doors = door_centres(spec)
    keys = list(doors)
    pts = np.stack([doors[k] for k in keys]) if keys else np.zeros((0, 2))
    d = len(keys)
    between = np.full((d, d), np.inf)  # door-to-door through one shared room, then all pairs (Floyd-Warshall)
    for i in range(d):
        for j in range(d):
            if i == j:
                between[i, j] = 0.0
            elif set(keys[i]) & set(keys[j]):
                between[i, j] = np.linalg.norm(pts[i] - pts[j])
    for m in range(d):
        between = np.minimum(between, between[:, m:m + 1] + between[m:m + 1, :])
    ra, rb = world.room_index(a), world.room_index(b)
    out = np.where(ra == rb, np.linalg.norm(a - b, axis=-1), np.inf)
    touches = np.array([[r in k for k in keys] for r in range(spec.rooms)], dtype=bool).reshape(spec.rooms, d)
    to_door_a = np.linalg.norm(a[:, None] - pts[None], axis=-1)  # (N, d)
    to_door_b = np.linalg.norm(b[:, None] - pts[None], axis=-1)
    for n in np.flatnonzero(ra != rb):
        ia, ib = np.flatnonzero(touches[ra[n]]), np.flatnonzero(touches[rb[n]])
        if ia.size and ib.size:
            out[n] = (to_door_a[n, ia][:, None] + between[np.ix_(ia, ib)] + to_door_b[n, ib][None, :]).min()
    return out


class MazeWorld(PointWorld):
    """Many episodes of a maze at once: ``reset``, ``step``, ``set_state``, ``render``, as ``RoomsWorld``.

    Arrays are batched over episodes: positions ``(B, 2)``, actions ``(B, 2)``, frames ``uint8 (B, 2, H, W)``
    (channel 0 the agent, channel 1 the walls). The state is ``(x, y)``: the layout never changes.
    """

    state_names = MAZE_STATE_NAMES

    def __init__(self, num_envs: int, spec: MazeSpec | None = None, seed: int | None = None,
                 evaluation: bool = False):
        super().__init__(num_envs, spec or MazeSpec(), seed, evaluation)
        layout = maze_rectangles(self.spec)
        self.rects = np.broadcast_to(layout, (num_envs, *layout.shape))  # one read-only layout for all
        self._wall_layer = wall_layer(layout[None], self._grid)[0]
        self.distances = door_distances(self.spec)
        self._walls, self._extents = wall_centres(self.spec), room_extents(self.spec)

    @property
    def state(self) -> np.ndarray:
        """True state ``float32 (B, 2)``: ``(x, y)``."""
        return self.pos.astype(np.float32)

    def room_index(self, pos: np.ndarray) -> np.ndarray:
        """Room ``3 * row + col`` of each position ``(N, 2)`` -> ``int64 (N,)``; wall centre lines split rooms."""
        pos = np.asarray(pos, dtype=np.float64)
        col = (pos[:, 0, None] >= self._walls[None, :]).sum(axis=1)
        row = (pos[:, 1, None] >= self._walls[None, :]).sum(axis=1)
        return (row * self.spec.grid + col).astype(np.int64)

    def room_distance(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Doors on the shortest path through open doors between rooms ``a`` and ``b`` (-1: no path)."""
        return self.distances[np.asarray(a), np.asarray(b)]

    def sample_free(self, rects: np.ndarray, rng: np.random.Generator, room: np.ndarray | None = None) -> np.ndarray:
        """Uniform free positions, one per rectangle set ``(N, R, 4)``; ``room`` ``(N,)`` picks each one's room."""
        s = self.spec
        n = rects.shape[0]
        r = s.agent_radius
        lo, hi = np.full((n, 2), s.border + r), np.full((n, 2), s.size - s.border - r)
        if room is not None:
            room = np.asarray(room)
            if room.shape != (n,) or np.any((room < 0) | (room >= s.rooms)):
                raise ValueError(f"room must hold {n} room indices in [0, {s.rooms}), got {room}")
            elo, ehi = self._extents
            cols, rows = room % s.grid, room // s.grid
            lo = np.stack([elo[cols], elo[rows]], axis=1) + r
            hi = np.stack([ehi[cols], ehi[rows]], axis=1) - r
        return sample_free_points(rng, lo, hi, rects, r)

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict]:
        """Start every episode at a uniform free position."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.pos = self.sample_free(self.rects, self.rng)
        return self.render(), {"state": self.state}

    def set_state(self, state: np.ndarray) -> tuple[np.ndarray, dict]:
        """Put every episode at a given position ``(B, 2)``."""
        state = np.asarray(state, dtype=np.float64)
        if state.shape != (self.num_envs, 2):
            raise ValueError(f"state must have shape ({self.num_envs}, 2) (x, y), got {state.shape}")
        return self._place(state)


def maze_evaluation_set(spec: MazeSpec, episodes: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded start/goal positions ``float32 (N, 2)``, uniform over free space, whose rooms are at least
    ``spec.eval_min_doors`` doors apart through open doors."""
    world = MazeWorld(episodes, spec)
    far = (world.distances >= spec.eval_min_doors).any(axis=1)
    if not far.any():
        raise ValueError(f"no two rooms of this maze are {spec.eval_min_doors} or more doors apart")
    rng = np.random.default_rng([seed, 2024])
    pairs = {k: np.zeros((episodes, 2)) for k in ("start", "goal")}
    for key in ("start", "goal"):
        todo = np.ones(episodes, dtype=bool)
        while todo.any():
            idx = np.flatnonzero(todo)
            cand = world.sample_free(world.rects[idx], rng)
            room = world.room_index(cand)
            ok = far[room] if key == "start" else (
                world.room_distance(world.room_index(pairs["start"][idx]), room) >= spec.eval_min_doors)
            pairs[key][idx[ok]] = cand[ok]
            todo[idx[ok]] = False
    return {k: v.astype(np.float32) for k, v in pairs.items()}
