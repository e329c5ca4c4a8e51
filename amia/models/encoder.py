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
    ``streams`` (optional) splits the frame's channels into groups, each seen by its own conv net and mapped to
    its own share of the state (``stream_dims``, or ``dim`` split evenly with the first stream taking the
    remainder). The
    anti-collapse terms then hold every share to variance that only its channels can give, so a thing drawn
    in its own channel (the chaser of ``amia/Chaser-v0``) cannot be dropped from the state. Empty: one net.
    A stream for a thing with few degrees of freedom is best kept small: those terms make every one of its
    dimensions vary, and a 2-D position spread over many dimensions is spread into ever finer features of it.
    """

    dim: int = 64
    channels: tuple[int, ...] = (32, 64, 64, 64)
    downsample: int = 2
    streams: tuple[tuple[int, ...], ...] = ()
    stream_dims: tuple[int, ...] = ()

    def __post_init__(self):
        at_least(self, 1, "dim", "downsample")
        check(all(isinstance(c, int) and c >= 1 for c in self.channels), "channels", list(self.channels),
              "a list of integers >= 1")
        check(all(len(g) >= 1 and all(isinstance(c, int) and c >= 0 for c in g) for g in self.streams),
              "streams", [list(g) for g in self.streams], "a list of non-empty lists of channel indices >= 0")
        check(len(self.streams) <= self.dim, "streams", [list(g) for g in self.streams],
              f"at most dim={self.dim} groups")
        check(not self.stream_dims or (len(self.stream_dims) == len(self.streams) and min(self.stream_dims) >= 1
                                       and sum(self.stream_dims) == self.dim),
              "stream_dims", list(self.stream_dims), f"one size >= 1 per stream, summing to dim={self.dim}")


def build_encoder(cfg: EncoderConfig, obs_shape: tuple[int, int, int]) -> nn.Module:
    """One ``ConvEncoder``, or a ``StreamEncoder`` when ``cfg.streams`` names channel groups."""
    return StreamEncoder(cfg, obs_shape) if cfg.streams else ConvEncoder(cfg, obs_shape)


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


class StreamEncoder(nn.Module):
    """One ``ConvEncoder`` per channel group of ``cfg.streams``; the state is their outputs side by side."""

    def __init__(self, cfg: EncoderConfig, obs_shape: tuple[int, int, int]):
        super().__init__()
        self.cfg, self.obs_shape = cfg, tuple(obs_shape)
        bad = sorted({c for g in cfg.streams for c in g if c >= obs_shape[0]})
        if bad:
            raise ValueError(f"encoder.streams names channels {bad}, but the frames have {obs_shape[0]} channels "
                             f"(expected indices 0..{obs_shape[0] - 1})")
        n = len(cfg.streams)
        dims = list(cfg.stream_dims) or [cfg.dim // n + (cfg.dim % n if i == 0 else 0) for i in range(n)]
        self.groups = [list(g) for g in cfg.streams]
        self.streams = nn.ModuleList(
            ConvEncoder(EncoderConfig(d, cfg.channels, cfg.downsample), (len(g), *obs_shape[1:]))
            for g, d in zip(self.groups, dims))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.cat([enc(obs[:, g]) for enc, g in zip(self.streams, self.groups)], dim=1)

    encode = ConvEncoder.encode
