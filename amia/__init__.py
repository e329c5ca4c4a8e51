"""amia: the autonomous machine intelligence architecture (LeCun, 2022) in PyTorch."""

import amia.envs  # noqa: F401  (registers the built-in worlds with Gymnasium)

__version__ = "0.1.0"
