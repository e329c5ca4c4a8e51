"""The reflex (amia.models.reflex): its numpy kernel against its PyTorch forward pass, and its fit on a known policy."""

import numpy as np
import pytest
import torch

from amia.agent.load import AgentConfig, AgentError
from amia.envs import make_world
from amia.models.reflex import Reflex, ReflexConfig
from amia.training.reflex import ReflexTrainConfig, fit


def test_the_numpy_kernel_computes_the_same_actions_as_the_network():
    torch.manual_seed(0)
    reflex = Reflex(ReflexConfig(pool=4, hidden=32), (2, 16, 24), context_dim=5, action_dim=3, bound=2.0)
    frames = torch.randint(0, 256, (6, 2, 16, 24), dtype=torch.uint8)
    goal = torch.randn(6, 5)
    kernel = reflex.kernel()
    np.testing.assert_allclose(kernel.act(frames.numpy(), kernel.context(goal.numpy())),
                               reflex(frames, goal).detach().numpy(), atol=1e-5)
    # the pixel input is the average of each 4x4 block, in [0, 1]
    assert reflex.pooled(frames)[0, 0].item() == pytest.approx(frames[0, 0, :4, :4].float().mean().item() / 255)
    with pytest.raises(ValueError, match="must divide the frame's size 16x24"):
        Reflex(ReflexConfig(pool=5), (2, 16, 24), 5, 3, 2.0)


def test_the_reflex_learns_to_head_for_the_goal_from_pooled_pixels():
    """A known policy, ``a = 2.45 tanh((goal - position) / 8)``, whose position the reflex must read from
    4x4-pooled frames of TwoRooms (the goal comes as its context): after fitting, its actions are within a few
    hundredths of the policy's on positions it did not see."""
    rng = np.random.default_rng(0)

    def sample(n):
        world = make_world("amia/TwoRooms-v0", n)
        pos = rng.uniform(6, 26, (n, 2)).astype(np.float32)  # the left room
        world.set_state(np.concatenate([pos, np.full((n, 2), 32.0, dtype=np.float32)], 1))
        goal = rng.uniform(6, 26, (n, 2)).astype(np.float32)
        frames = torch.from_numpy(world.render())
        return frames, torch.from_numpy(goal / 32), torch.from_numpy(2.45 * np.tanh((goal - pos) / 8))

    torch.manual_seed(0)
    reflex = Reflex(ReflexConfig(pool=4, hidden=64), (2, 64, 64), context_dim=2, action_dim=2, bound=2.45)
    frames, goal, action = sample(4000)
    data = {"pixels": reflex.pooled(frames).half(), "context": goal, "action": action}
    losses = fit(reflex, data, ReflexTrainConfig(fit_steps=1500, batch_size=256, lr=3e-3), seed=0)
    frames, goal, action = sample(500)
    with torch.no_grad():
        error = (reflex(frames, goal) - action).pow(2).mean().item()
    assert losses[-1] < losses[0] / 20
    assert error < 0.02 * action.pow(2).mean().item()


def test_reflex_settings_are_checked():
    with pytest.raises(AgentError, match="reflex=true acts in Mode-1"):
        AgentConfig(reflex=True)
    with pytest.raises(ValueError, match="seed"):
        ReflexTrainConfig(seed=0)


def test_the_stuck_watch_backs_off_a_pinned_episode_only():
    """Episode 0 pushes right for 4 steps and its frame does not change: it takes 2 steps backing off, turned 45
    degrees, at full speed. Episode 1's frame changes, episode 2 asks for too little motion: neither is stuck."""
    from amia.agent.reflex import StuckWatch
    from amia.agent.surprise import SurpriseConfig

    watch = StuckWatch(SurpriseConfig(enabled=True, steps=2, explore="back_off"), bound=2.45, seed=0, every=4)
    wanted = np.array([[2.45, 0.0], [2.45, 0.0], [0.2, 0.0]], dtype=np.float32)
    frames = np.zeros((3, 1, 4, 4), dtype=np.uint8)
    out = []
    for t in range(7):
        obs = frames.copy()
        obs[1, 0, 0, 0] = t  # episode 1 moves
        out.append(watch.step(obs, wanted, t))
    out = np.stack(out, 1)  # (B, T, 2)
    np.testing.assert_allclose(out[1:], np.broadcast_to(wanted[1:, None], (2, 7, 2)))
    np.testing.assert_allclose(out[0, :4], np.broadcast_to(wanted[0], (4, 2)))
    side = watch.side[0]
    back = np.array([-1.0, -side]) * 2.45 / np.sqrt(2)  # -x turned 45 degrees to the episode's side
    np.testing.assert_allclose(out[0, 4], back, atol=1e-4)
    np.testing.assert_allclose(out[0, 5], back, atol=1e-4)
    np.testing.assert_allclose(out[0, 6], wanted[0])
    assert watch.surprises == 1 and watch.explored_steps == 2
