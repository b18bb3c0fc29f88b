"""The data of a training run: a dataset's windows, split into train and validation episodes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from vla.config import TrainConfig
from vla.data.grounding import GroundingSet
from vla.data.joint_windows import JointWindows
from vla.data.reader import EpisodeDataset
from vla.data.sampler import WindowConfig, WindowDataset, split_episodes
from vla.envs.base import suite_paraphraser
from vla.models import PolicyConfig
from vla.train_grounding import load_grounding

__all__ = ["TrainData", "episode_windows", "load_data"]


@dataclass
class TrainData:
    """What a training run reads: windows to train and validate on, sampling weights, language
    augmentation, and the datasets behind them (closed by `close`)."""

    train: WindowDataset | JointWindows
    val: WindowDataset | JointWindows | None
    weights: np.ndarray | None
    paraphrase: Callable[[str, np.random.Generator], str] | None
    reader: EpisodeDataset
    grounding: GroundingSet | None = None
    # A joint run (`vla.train_joint`): each robot's paraphraser, and the readers after the first.
    paraphrases: dict[str, Callable[[str, np.random.Generator], str] | None] = field(default_factory=dict)
    more_readers: tuple[EpisodeDataset, ...] = ()

    def close(self) -> None:
        for reader in (self.reader, *self.more_readers):
            reader.close()


def episode_windows(
    reader: EpisodeDataset, cfg: TrainConfig, wcfg: WindowConfig
) -> tuple[WindowDataset, WindowDataset | None]:
    """Train and validation windows of `reader`'s episodes of the chosen families (`cfg.families`),
    split per family (`cfg.val_fraction`, `cfg.seed`)."""
    families = reader.families
    chosen = [i for i, f in enumerate(families) if not cfg.families or f in cfg.families]
    if not chosen:
        raise ValueError(
            f"{reader.path}: no episodes of families {list(cfg.families)}; has {sorted(set(families))}"
        )
    train_eps, val_eps = split_episodes(
        [families[i] for i in chosen], val_fraction=cfg.val_fraction, seed=cfg.seed
    )
    train = WindowDataset(reader, config=wcfg, episodes=[chosen[i] for i in train_eps])
    val = WindowDataset(reader, config=wcfg, episodes=[chosen[i] for i in val_eps]) if val_eps else None
    return train, val


def load_data(cfg: TrainConfig, policy_cfg: PolicyConfig) -> TrainData:
    """The windows of `cfg.dataset` (its chosen families), split into train and validation episodes."""
    reader = EpisodeDataset(cfg.dataset)
    if reader.stats is None:
        raise ValueError(
            f"{cfg.dataset}: dataset has no normalization statistics (run `vla data info` to check)"
        )
    if reader.embodiment is None:
        raise ValueError(f"{cfg.dataset}: dataset has no embodiment description")
    wcfg = WindowConfig(obs_horizon=policy_cfg.obs_horizon, action_horizon=policy_cfg.action_horizon)
    train, val = episode_windows(reader, cfg, wcfg)
    # Language augmentation is the suite's own (a suite without `paraphrase`, or imported data, has none).
    paraphrase = suite_paraphraser(reader.suite) if reader.suite else None
    weights = train.family_weights() if cfg.balance_families else None
    grounding = load_grounding(cfg, policy_cfg, reader) if cfg.grounding else None
    return TrainData(
        train=train, val=val, weights=weights, paraphrase=paraphrase, reader=reader, grounding=grounding
    )
