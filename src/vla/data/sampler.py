"""Training windows cut from episodes: T frames of history and an H-step action chunk per window.

A window anchored at step t of an episode holds observations t-T+1..t and actions t..t+H-1. Indices
outside the episode repeat its edge frame/action and are flagged in `obs_pad` (before the start) and
`action_pad` (past the end), as `vla.types.Batch` specifies. There is one window per step.

Speed: decoded images are kept in RAM (up to `cache_bytes`) as one array per camera, and a batch is cut
with a single numpy fancy index per field, so an epoch never re-decompresses HDF5. Use the dataset with
a torch DataLoader: it implements `__getitems__`, so the loader asks for a whole batch at once:
`DataLoader(ds, batch_size=64, shuffle=True, collate_fn=collate_windows)`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, WeightedRandomSampler

from vla.data.reader import EpisodeDataset
from vla.data.subgoals import SUBGOAL, dataset_subgoals
from vla.features import Feature
from vla.types import Batch


@dataclass(frozen=True)
class WindowConfig:
    """How windows are cut.

    Attributes:
        obs_horizon: T, frames of observation history per window (>= 1).
        action_horizon: H, actions per chunk (>= 1).
        cache_bytes: RAM budget for decoded images; episodes beyond it are read from the file per batch.
    """

    obs_horizon: int = 1
    action_horizon: int = 8
    cache_bytes: int = 8 * 2**30

    def __post_init__(self) -> None:
        if self.obs_horizon < 1:
            raise ValueError(f"obs_horizon must be >= 1, got {self.obs_horizon}")
        if self.action_horizon < 1:
            raise ValueError(f"action_horizon must be >= 1, got {self.action_horizon}")
        if self.cache_bytes < 0:
            raise ValueError(f"cache_bytes must be >= 0, got {self.cache_bytes}")


def split_episodes(families: Sequence[str], *, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Splits episode indices into train and validation BY EPISODE, stratified by task family.

    Every family with at least two episodes contributes at least one validation episode (when
    `val_fraction` > 0), so per-family validation metrics exist. Deterministic given `seed`.

    Args:
        families: one family name per episode ("" when unknown).
        val_fraction: share of each family's episodes held out, in [0, 1).
        seed: the shuffle seed.

    Returns:
        (train indices, validation indices), each sorted.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    train: list[int] = []
    val: list[int] = []
    for fam in sorted(set(families)):
        idx = np.asarray([i for i, f in enumerate(families) if f == fam])
        rng.shuffle(idx)
        n_val = round(len(idx) * val_fraction)
        if val_fraction > 0 and len(idx) >= 2:
            n_val = min(max(n_val, 1), len(idx) - 1)
        val.extend(idx[:n_val].tolist())
        train.extend(idx[n_val:].tolist())
    return sorted(train), sorted(val)


class WindowDataset(Dataset[Batch]):
    """Windows over selected episodes of a dataset file, as a torch map-style Dataset.

    Args:
        source: the dataset file (or an open EpisodeDataset).
        config: window sizes and cache budget.
        episodes: which episodes to use (default all), e.g. one side of `split_episodes`.
    """

    def __init__(
        self,
        source: str | Path | EpisodeDataset,
        *,
        config: WindowConfig | None = None,
        episodes: Sequence[int] | None = None,
    ) -> None:
        self.config = config or WindowConfig()
        reader = source if isinstance(source, EpisodeDataset) else EpisodeDataset(source)
        self.path = reader.path
        self.episodes = list(range(len(reader))) if episodes is None else [int(e) for e in episodes]
        if not self.episodes:
            raise ValueError(f"{self.path}: no episodes selected for windows")
        for e in self.episodes:
            reader.info(e)  # raises IndexError naming the file for an out-of-range episode
        self.cameras = reader.cameras
        self.stats = reader.stats
        self.embodiment = reader.embodiment
        infos = [reader.info(e) for e in self.episodes]
        lengths = np.asarray([i.length for i in infos], dtype=np.int64)
        self.ep_start = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)  # (E,)
        self.ep_end = self.ep_start + lengths  # (E,) exclusive
        self.ep_of_step = np.repeat(np.arange(len(lengths)), lengths)  # (N,)
        self.instructions = [i.instruction for i in infos]
        self.families = [i.family for i in infos]
        pairs = [reader.read_low_dim(e) for e in self.episodes]
        self.state = np.concatenate([s for s, _ in pairs])  # (N, S)
        self.actions = np.concatenate([a for _, a in pairs])  # (N, A)
        # Per-step extras (B, D) cut at the window's anchor; per-episode ones (E, D) by episode.
        self.step_features: dict[str, np.ndarray] = {}
        goal = dataset_subgoals(self.state, self.actions, self.ep_start, self.ep_end, self.embodiment)
        if goal is not None:
            self.step_features[SUBGOAL] = goal
        self.features = reader.features
        self.episode_features = episode_features(reader.features, [i.meta for i in infos], where=str(self.path))
        self._load_images(reader, lengths)
        if not isinstance(source, EpisodeDataset):
            reader.close()
        self._reader: EpisodeDataset | None = None
        self._reader_pid = -1

    def _load_images(self, reader: EpisodeDataset, lengths: np.ndarray) -> None:
        """Decodes whole episodes into RAM, in order, while they fit the byte budget."""
        hi, wi = reader.image_size
        per_step = hi * wi * 3 * len(self.cameras)
        fits = np.cumsum(lengths) * per_step <= self.config.cache_bytes
        n_cached_eps = int(fits.sum())
        self.n_cached_steps = int(lengths[:n_cached_eps].sum())
        self.images = {
            cam: np.empty((self.n_cached_steps, hi, wi, 3), dtype=np.uint8) for cam in self.cameras
        }  # (Nc, Hi, Wi, 3)
        for k in range(n_cached_eps):
            a, b = self.ep_start[k], self.ep_end[k]
            for cam in self.cameras:
                self.images[cam][a:b] = reader.read_frames(self.episodes[k], cam)

    @property
    def fully_cached(self) -> bool:
        return self.n_cached_steps == len(self)

    def __len__(self) -> int:
        return int(self.state.shape[0])

    def window_indices(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Global step indices of windows anchored at global steps `idx` int [B].

        Returns:
            obs_idx int64 [B, T], obs_pad bool [B, T], act_idx int64 [B, H], action_pad bool [B, H].
        """
        idx = np.asarray(idx, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"window index out of range [0, {len(self)}): {idx.min()}..{idx.max()}")
        ep = self.ep_of_step[idx]  # (B,)
        start, end = self.ep_start[ep][:, None], self.ep_end[ep][:, None]  # (B, 1)
        T, H = self.config.obs_horizon, self.config.action_horizon
        obs_raw = idx[:, None] + np.arange(-T + 1, 1)[None]  # (B, T)
        act_raw = idx[:, None] + np.arange(H)[None]  # (B, H)
        obs_pad = obs_raw < start
        act_pad = act_raw >= end
        return np.maximum(obs_raw, start), obs_pad, np.minimum(act_raw, end - 1), act_pad

    def _frames(self, cam: str, obs_idx: np.ndarray) -> np.ndarray:
        """uint8 [B, T, Hi, Wi, 3] frames at global steps `obs_idx` [B, T]."""
        if self.fully_cached or obs_idx.max() < self.n_cached_steps:
            return self.images[cam][obs_idx]
        out = np.empty((*obs_idx.shape, *self.images[cam].shape[1:]), dtype=np.uint8)
        cached = obs_idx < self.n_cached_steps
        out[cached] = self.images[cam][obs_idx[cached]]
        reader = self._open_reader()
        for ep in np.unique(self.ep_of_step[obs_idx[~cached]]):
            mask = (~cached) & (self.ep_of_step[obs_idx] == ep)
            local = obs_idx[mask] - self.ep_start[ep]
            uniq, inverse = np.unique(local, return_inverse=True)
            frames = reader.read_frames(self.episodes[ep], cam, uniq)
            out[mask] = frames[inverse]
        return out

    def _open_reader(self) -> EpisodeDataset:
        # One handle per process: HDF5 handles must not be shared across DataLoader worker forks.
        if self._reader is None or self._reader_pid != os.getpid():
            self._reader = EpisodeDataset(self.path)
            self._reader_pid = os.getpid()
        return self._reader

    def get_batch(self, idx: Sequence[int] | np.ndarray) -> Batch:
        """Cuts the windows anchored at global steps `idx` into a Batch (torch tensors, robot units)."""
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        obs_idx, obs_pad, act_idx, act_pad = self.window_indices(idx)
        ep = self.ep_of_step[idx]
        return Batch(
            images={cam: torch.from_numpy(self._frames(cam, obs_idx)) for cam in self.cameras},
            state=torch.from_numpy(self.state[obs_idx]),  # (B, T, S)
            obs_pad=torch.from_numpy(obs_pad),
            instruction=[self.instructions[e] for e in ep],
            actions=torch.from_numpy(self.actions[act_idx]),  # (B, H, A)
            action_pad=torch.from_numpy(act_pad),
            family=[self.families[e] for e in ep],
            features={
                **{k: torch.from_numpy(v[idx]) for k, v in self.step_features.items()},  # (B, D)
                **{k: torch.from_numpy(v[ep]) for k, v in self.episode_features.items()},  # (B, D)
            },
        )

    def __getitem__(self, index: int) -> Batch:
        return self.get_batch([index])

    def __getitems__(self, indices: list[int]) -> Batch:
        return self.get_batch(indices)

    @property
    def family_names(self) -> list[str]:
        """The task families present, sorted (empty names, i.e. unknown families, left out)."""
        return sorted({f for f in self.families if f})

    def family_weights(self) -> np.ndarray:
        """float64 [len]: per-window weights giving every task family the same total probability."""
        fams = np.asarray(self.families)[self.ep_of_step]
        weights = np.empty(len(self), dtype=np.float64)
        names = sorted(set(self.families))
        for fam in names:
            mask = fams == fam
            weights[mask] = 1.0 / (mask.sum() * len(names))
        return weights


def balanced_sampler(dataset: WindowDataset, *, num_samples: int, seed: int) -> WeightedRandomSampler:
    """A sampler drawing windows so that every task family is seen equally often (with replacement)."""
    gen = torch.Generator().manual_seed(seed)
    weights = dataset.family_weights().tolist()
    return WeightedRandomSampler(weights, num_samples=num_samples, replacement=True, generator=gen)


def collate_windows(items: Batch | list[Batch]) -> Batch:
    """DataLoader collate function: passes a whole batch through, or concatenates single windows."""
    if isinstance(items, Batch):
        return items
    if not items:
        raise ValueError("cannot collate an empty list of windows")
    return Batch(
        images={cam: torch.cat([b.images[cam] for b in items]) for cam in items[0].images},
        state=torch.cat([b.state for b in items]),
        obs_pad=torch.cat([b.obs_pad for b in items]),
        instruction=[s for b in items for s in b.instruction],
        actions=torch.cat([b.actions for b in items]),
        action_pad=torch.cat([b.action_pad for b in items]),
        family=[s for b in items for s in b.family],
        features={k: torch.cat([b.features[k] for b in items]) for k in items[0].features},
    )


def episode_features(
    features: tuple[Feature, ...], metas: list[dict[str, Any]], *, where: str
) -> dict[str, np.ndarray]:
    """The declared episode features (and masks) of every episode, float32 [E, D] by name.

    A feature some episode lacks is left out (its loss is then off), so a dataset merged from two
    suites still trains; a value of the wrong size is an error naming the episode.
    """
    out: dict[str, np.ndarray] = {}
    for feat in features:
        if feat.scope != "episode":
            continue
        keys = [feat.name] + ([feat.mask_key] if feat.masked else [])
        if not metas or any(k not in m for m in metas for k in keys):
            continue
        for k in keys:
            rows = [feat.check(m[k], where=f"{where} episode {e} meta '{k}'") for e, m in enumerate(metas)]
            out[k] = np.stack(rows).astype(np.float32)
    return out
