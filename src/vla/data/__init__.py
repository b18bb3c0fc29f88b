"""Demonstrations and datasets: recording, the HDF5 store, statistics, training windows, augmentation,
LeRobot import/export. See docs/data.md.

Names are imported lazily so that reading a dataset does not pull in torch or video codecs.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Episode": "vla.data.episode",
    "Step": "vla.data.episode",
    "Recorder": "vla.data.recorder",
    "DatasetWriter": "vla.data.writer",
    "EpisodeDataset": "vla.data.reader",
    "EpisodeInfo": "vla.data.reader",
    "compute_and_store": "vla.data.stats",
    "compute_stats": "vla.data.stats",
    "dataset_stats": "vla.data.stats",
    "WindowConfig": "vla.data.sampler",
    "WindowDataset": "vla.data.sampler",
    "split_episodes": "vla.data.sampler",
    "balanced_sampler": "vla.data.sampler",
    "collate_windows": "vla.data.sampler",
    "AugmentConfig": "vla.data.augment",
    "augment_batch": "vla.data.augment",
    "augment_images": "vla.data.augment",
    "paraphrase_instructions": "vla.data.augment",
    "export_lerobot": "vla.data.lerobot_export",
    "import_lerobot": "vla.data.lerobot_import",
    "CollectConfig": "vla.data.collect",
    "run_collection": "vla.data.collect",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'vla.data' has no attribute '{name}'")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
