"""The actor interface (Sec. 3, Fig. 2): every way of acting, used the same way by a batch of episodes.

Flat Mode-2, Mode-1, policy-initialised Mode-2 and hierarchical Mode-2 all follow it, so the episode loop
(``amia.agent.episodes``), the timing and the pictures (``amia.eval``) and the command line never ask which
kind of actor they drive.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Actor(Protocol):
    """Acts for a batch of ``B`` episodes at once.

    ``reset(goal_obs)`` starts the episodes towards the goals shown in ``goal_obs uint8 (B, C, H, W)``;
    ``act(obs)`` takes the current frames ``(B, C, H, W)`` and returns actions ``float32 (B, A)``; everything
    the actor carries between steps (its previous plan, memory, surprise watch, subgoals) lives inside it.
    ``periods`` names how often each kind of decision is made (``{"plan": 4}``: a re-plan every 4 steps),
    ``warmup_steps`` how many steps pass before decision times are representative (cold starts, filling
    memories). ``report()`` returns counts and, for the first ``record`` episodes of ``reset``, a ``trace``:
    ``plans`` (predicted level-1 states of each plan) and, where the actor has them, ``subgoals`` with
    ``subgoal_space`` (the map from level-1 states to the subgoals' space) and ``switched``. ``describe()``
    returns the settings that a result file records.
    """

    periods: dict[str, int]
    warmup_steps: int

    def reset(self, goal_obs: np.ndarray, seed: int = 0, record: int = 0, **task_inputs) -> None: ...

    def act(self, obs: np.ndarray) -> np.ndarray: ...

    def report(self) -> dict: ...

    def describe(self) -> dict: ...


__all__ = ["Actor"]
