"""Perception (Sec. 3, Fig. 2): the encoder that turns an observation into a state, ``s = Enc(x)``."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from amia.infra.validate import at_least, check


@dataclass
class EncoderConfig:
    """A small conv net: ``channels`` per stride-2 layer, then a linear map to a ``dim``-vector state.

    ``downsample`` average-pools the frame first (2: a 64x64 frame is seen at 32x32), which is 4x cheaper.
    """

    dim: int = 64
    channels: tuple[int, ...] = (32, 64, 64, 64)
    downsample: int = 2

    def __post_init__(self):
        at_least(self, 1, "dim", "downsample")
        check(all(isinstance(c, int) and c >= 1 for c in self.channels), "channels", list(self.channels),
              "a list of integers >= 1")


class ConvEncoder(nn.Module):
    """Maps frames ``uint8 (N, C, H, W)`` (or float in [0, 1]) to states ``(N, dim)``."""

    def __init__(self, cfg: EncoderConfig, obs_shape: tuple[int, int, int]):
        super().__init__()
        self.cfg, self.obs_shape = cfg, tuple(obs_shape)
        c, h, w = obs_shape
        layers, cin = [], c
        for cout in cfg.channels:
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.GELU()]
            cin = cout
        self.conv = nn.Sequential(*layers)
        with torch.no_grad():
            n = self.conv(torch.zeros(1, c, h // cfg.downsample, w // cfg.downsample)).numel()
        self.head = nn.Linear(n, cfg.dim)
        for m in self.modules():  # variance-preserving init: a small blob must move the state at init
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.float() / 255.0 if obs.dtype == torch.uint8 else obs
        if self.cfg.downsample > 1:
            x = F.avg_pool2d(x, self.cfg.downsample)
        return self.head(self.conv(x).flatten(1))

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        """States for observations with any leading shape: ``(..., C, H, W) -> (..., dim)``."""
        if tuple(obs.shape[-3:]) != self.obs_shape:
            raise ValueError(f"observations should end with shape {self.obs_shape}, got {tuple(obs.shape)}")
        lead = obs.shape[:-3]
        return self(obs.reshape(-1, *self.obs_shape)).reshape(*lead, self.cfg.dim)
