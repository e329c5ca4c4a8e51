"""Offline data: collection (amia's worlds and any Gymnasium env), the HDF5 trajectory layout, Minari conversion, window
sampling."""

from amia.data.collect import CollectConfig, collect
from amia.data.dataset import DatasetError, DatasetInfo, TrajectoryWriter, check_world, read_info, verify_frames
from amia.data.gym_collect import GymCollectConfig, collect_gym
from amia.data.minari_io import from_minari, to_minari
from amia.data.sampler import WindowSampler

__all__ = ["CollectConfig", "DatasetError", "DatasetInfo", "GymCollectConfig", "TrajectoryWriter", "WindowSampler",
           "check_world", "collect", "collect_gym", "from_minari", "read_info", "to_minari", "verify_frames"]
