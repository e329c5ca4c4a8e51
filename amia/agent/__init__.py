"""The actor (Sec. 3): one interface for every mode, the flat and hierarchical actors, surprise, short-term memory,
the episode loop, and building an actor from a run directory."""

from amia.agent.actor import Actor
from amia.agent.load import AgentConfig, AgentError, load_agent

__all__ = ["Actor", "AgentConfig", "AgentError", "load_agent"]
