"""Infrastructure: dataclass configs, safe checkpoints, the run directory, provenance and distributed helpers."""
