"""Measurements of the data layer: sampler throughput (windows/s) and HDF5 image read speed.

Used by `vla bench data` and benchmarks/bench_data.py. Timing lives here, never in unit tests.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vla.data.augment import AugmentConfig, augment_batch
from vla.data.episode import Episode
from vla.data.reader import EpisodeDataset
from vla.data.sampler import WindowConfig, WindowDataset
from vla.data.writer import DatasetWriter


def write_synthetic(
    path: str | Path,
    *,
    episodes: int = 40,
    steps: int = 100,
    image_size: int = 96,
    compression: str = "gzip",
    seed: int = 0,
) -> Path:
    """Writes a dataset of smooth synthetic 2-camera episodes (compressible like renders, unlike noise)."""
    rng = np.random.default_rng(seed)
    writer = DatasetWriter(path, suite="synthetic", compression=compression)
    y, x = np.mgrid[0:image_size, 0:image_size].astype(np.float32) / image_size
    for e in range(episodes):
        t = np.arange(steps, dtype=np.float32)[:, None, None] / steps  # (N, 1, 1)
        frames = {}
        for c, cam in enumerate(("scene", "wrist")):
            base = np.stack(
                [
                    128 + 100 * np.sin(6 * x + t * 3 + e + c),
                    128 + 100 * np.cos(5 * y - t * 2 + c),
                    128 + 60 * np.sin(4 * (x + y) + t + e),
                ],
                axis=-1,
            )  # (N, Hi, Wi, 3)
            frames[cam] = np.clip(base, 0, 255).astype(np.uint8)
        writer.append(
            Episode(
                images=frames,
                state=rng.normal(size=(steps, 22)).astype(np.float32),
                actions=rng.normal(size=(steps, 7)).astype(np.float32),
                timestamps=np.arange(steps, dtype=np.float64) / 10.0,
                instruction=f"synthetic task {e % 6}",
                success=True,
                meta={"family": f"family_{e % 6}"},
            )
        )
    return Path(path)


def sampler_throughput(
    path: str | Path,
    *,
    batch_size: int = 64,
    obs_horizon: int = 2,
    action_horizon: int = 16,
    batches: int = 30,
    augment: bool = False,
    seed: int = 0,
) -> dict[str, Any]:
    """Times random batches cut from the dataset at `path` (RAM-cached), optionally augmented.

    Returns:
        A dict with windows_per_s (median over batches), p10/p90 windows/s, cache load seconds, ...
    """
    t0 = time.perf_counter()
    ds = WindowDataset(path, config=WindowConfig(obs_horizon=obs_horizon, action_horizon=action_horizon))
    load_s = time.perf_counter() - t0
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    cfg = AugmentConfig()
    times = []
    for _ in range(batches + 2):
        idx = rng.integers(0, len(ds), size=batch_size)
        start = time.perf_counter()
        batch = ds.get_batch(idx)
        if augment:
            batch = augment_batch(batch, cfg, generator=gen)
        times.append(time.perf_counter() - start)
    per_batch = np.asarray(times[2:])  # the first batches warm caches and allocators
    wps = batch_size / per_batch
    return {
        "windows_per_s": float(np.median(wps)),
        "windows_per_s_p10": float(np.percentile(wps, 10)),
        "windows_per_s_p90": float(np.percentile(wps, 90)),
        "ms_per_batch": float(np.median(per_batch) * 1000),
        "batch_size": batch_size,
        "obs_horizon": obs_horizon,
        "action_horizon": action_horizon,
        "augment": augment,
        "cameras": list(ds.cameras),
        "steps": len(ds),
        "cache_load_s": load_s,
        "torch_threads": torch.get_num_threads(),
    }


def read_speed(path: str | Path) -> dict[str, Any]:
    """Times decoding every image of the dataset at `path` from disk (page cache warm)."""
    with EpisodeDataset(path) as ds:
        frames = 0
        start = time.perf_counter()
        for i in range(len(ds)):
            for cam in ds.cameras:
                frames += len(ds.read_frames(i, cam))
        seconds = time.perf_counter() - start
    return {
        "frames_per_s": frames / seconds,
        "frames": frames,
        "seconds": seconds,
        "file_mb": Path(path).stat().st_size / 2**20,
    }
