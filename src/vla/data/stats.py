"""Normalization statistics of state and action, computed once per dataset and stored in its file.

Models copy them into checkpoints (`vla.types.DatasetStats`), so training and deployment always
normalize with the same numbers.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from vla.data.reader import EpisodeDataset
from vla.data.writer import DatasetWriter
from vla.types import DatasetStats, FeatureStats


def feature_stats(values: np.ndarray, *, name: str = "feature") -> FeatureStats:
    """Per-dimension statistics of `values` float [N, D] (computed in float64).

    Args:
        values: one row per sample.
        name: the feature's name, for the error message.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{name}: statistics need a non-empty [N, D] array, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        bad = np.argwhere(~np.isfinite(x))[0]
        raise ValueError(f"{name}: non-finite value at sample {bad[0]}, dim {bad[1]}")
    q01, q99 = np.quantile(x, [0.01, 0.99], axis=0)
    return FeatureStats(
        mean=x.mean(axis=0),
        std=x.std(axis=0),
        min=x.min(axis=0),
        max=x.max(axis=0),
        q01=q01,
        q99=q99,
        count=int(x.shape[0]),
    )


def compute_stats(states: Iterable[np.ndarray], actions: Iterable[np.ndarray]) -> DatasetStats:
    """Statistics over every step of every episode (per-episode arrays [N_i, S] and [N_i, A])."""
    state_list, action_list = list(states), list(actions)
    if not state_list:
        raise ValueError("cannot compute statistics of an empty dataset")
    return DatasetStats(
        state=feature_stats(np.concatenate(state_list), name="state"),
        action=feature_stats(np.concatenate(action_list), name="action"),
    )


def dataset_stats(dataset: EpisodeDataset) -> DatasetStats:
    """Computes the statistics of every step in `dataset` (reads only state and actions)."""
    if len(dataset) == 0:
        raise ValueError(f"{dataset.path}: cannot compute statistics of a dataset with no episodes")
    pairs = [dataset.read_low_dim(i) for i in range(len(dataset))]
    return compute_stats([s for s, _ in pairs], [a for _, a in pairs])


def compute_and_store(path: str | Path) -> DatasetStats:
    """Computes the statistics of the dataset at `path` and stores them in the file. Returns them."""
    with EpisodeDataset(path) as ds:
        stats = dataset_stats(ds)
    DatasetWriter(path).set_stats(stats)
    return stats
