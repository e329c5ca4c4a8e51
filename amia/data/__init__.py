"""Offline data: collection policies, the HDF5 trajectory layout, and sequence-window sampling."""

from amia.data.collect import CollectConfig, collect
from amia.data.dataset import DatasetError, DatasetInfo, TrajectoryWriter, read_info
from amia.data.sampler import WindowSampler

__all__ = ["CollectConfig", "DatasetError", "DatasetInfo", "TrajectoryWriter", "WindowSampler", "collect", "read_info"]
