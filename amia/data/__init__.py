"""Offline data: collection (amia's worlds and any Gymnasium env), the HDF5 trajectory layout, window sampling."""

from amia.data.collect import CollectConfig, collect
from amia.data.dataset import DatasetError, DatasetInfo, TrajectoryWriter, read_info
from amia.data.gym_collect import GymCollectConfig, collect_gym
from amia.data.sampler import WindowSampler

__all__ = ["CollectConfig", "DatasetError", "DatasetInfo", "GymCollectConfig", "TrajectoryWriter", "WindowSampler",
           "collect", "collect_gym", "read_info"]
