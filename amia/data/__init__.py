"""Offline data: collection policies, the HDF5 trajectory layout, and sequence-window sampling."""

from amia.data.collect import CollectConfig, collect
from amia.data.dataset import DatasetError, DatasetInfo, TrajectoryWriter, check_world, read_info, verify_frames
from amia.data.sampler import WindowSampler

__all__ = ["CollectConfig", "DatasetError", "DatasetInfo", "TrajectoryWriter", "WindowSampler", "check_world", "collect",
           "read_info", "verify_frames"]
