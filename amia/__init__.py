"""amia: the autonomous machine intelligence architecture (LeCun, 2022) in PyTorch.

The few entry points a user needs::

    amia.make_world(env_id, n)                      a batched built-in world (also ``gymnasium.make``)
    amia.collect(env_id, path, CollectConfig())     reward-free trajectories into an HDF5 file
    amia.collect_gym(env_id, path, GymCollectConfig())   the same from any Gymnasium env with pixels
    amia.train(env_id, run_dir, TrainConfig())      the JEPA world model (collects data when none is given;
                                                    ``env_id=None, data=FILE``: any env's data)
    amia.load_agent(run_dir, AgentConfig())         an actor: ``reset(goal_obs)``, then ``act(obs)``
    amia.evaluate(run_dir, EvalConfig())            the goal-reaching protocol's summary
    amia.goal_frame(run_dir, GoalFrameConfig())     the goal-frame protocol, on any env with hooks
    amia.GymWorld(env_id, n, size, hooks)           any Gymnasium env as a batch of episodes for an actor
    amia.distill / amia.refine / amia.train_level2  Mode-1 and the critic, refinement, the H-JEPA's level 2
"""

import amia.envs  # noqa: F401  (registers the built-in worlds with Gymnasium)
from amia.agent import Actor, AgentConfig, load_agent
from amia.data.collect import CollectConfig, collect
from amia.data.gym_collect import GymCollectConfig, collect_gym
from amia.envs import evaluation_set, make_world
from amia.envs.gym_world import GymWorld
from amia.envs.hooks import EnvHooks, hooks_for, register_hooks
from amia.eval.goal_frame import GoalFrameConfig, goal_frame
from amia.eval.protocol import EvalConfig, evaluate
from amia.models.level2 import HJEPAConfig
from amia.training.distill import DistillConfig, distill
from amia.training.level2 import train_level2
from amia.training.refine import RefineConfig, refine
from amia.training.world_model import TrainConfig, default_config, train

__version__ = "0.1.0"

__all__ = ["Actor", "AgentConfig", "CollectConfig", "DistillConfig", "EnvHooks", "EvalConfig", "GoalFrameConfig",
           "GymCollectConfig", "GymWorld", "HJEPAConfig", "RefineConfig", "TrainConfig", "collect", "collect_gym",
           "default_config", "distill", "evaluate", "evaluation_set", "goal_frame", "hooks_for", "load_agent",
           "make_world", "refine", "register_hooks", "train", "train_level2"]
