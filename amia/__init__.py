"""amia: the autonomous machine intelligence architecture (LeCun, 2022) in PyTorch.

The few entry points a user needs::

    amia.make_world(env_id, n)                      a batched built-in world (also ``gymnasium.make``)
    amia.collect(env_id, path, CollectConfig())     reward-free trajectories into an HDF5 file
    amia.train(env_id, run_dir, TrainConfig())      the JEPA world model (collects data when none is given)
    amia.load_agent(run_dir, AgentConfig())         an actor: ``reset(goal_obs)``, then ``act(obs)``
    amia.evaluate(run_dir, EvalConfig())            the goal-reaching protocol's summary
    amia.distill / amia.refine / amia.train_level2  Mode-1 and the critic, refinement, the H-JEPA's level 2
"""

import amia.envs  # noqa: F401  (registers the built-in worlds with Gymnasium)
from amia.agent import Actor, AgentConfig, load_agent
from amia.data.collect import CollectConfig, collect
from amia.envs import evaluation_set, make_world
from amia.eval.protocol import EvalConfig, evaluate
from amia.models.level2 import HJEPAConfig
from amia.training.distill import DistillConfig, distill
from amia.training.level2 import train_level2
from amia.training.refine import RefineConfig, refine
from amia.training.world_model import TrainConfig, default_config, train

__version__ = "0.1.0"

__all__ = ["Actor", "AgentConfig", "CollectConfig", "DistillConfig", "EvalConfig", "HJEPAConfig", "RefineConfig",
           "TrainConfig", "collect", "default_config", "distill", "evaluate", "evaluation_set", "load_agent",
           "make_world", "refine", "train", "train_level2"]
