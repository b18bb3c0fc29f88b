"""Grounding co-training's side of `vla train`: config checks, loading the views, which views a step sees."""

from __future__ import annotations

import numpy as np

from vla.config import TrainConfig
from vla.data.grounding import GroundingSet
from vla.data.reader import EpisodeDataset
from vla.models import PolicyConfig


def check_grounding_config(cfg: TrainConfig, policy_cfg: PolicyConfig) -> None:
    """A grounding head needs labelled views and labelled views need a grounding head: say so early."""
    if policy_cfg.grounding_loss > 0 and not cfg.grounding:
        raise ValueError(
            f"preset '{cfg.preset}' co-trains a grounding head (grounding_loss={policy_cfg.grounding_loss}) "
            "and needs labelled views: pass --grounding FILE (make one with `vla collect-grounding`)"
        )
    if cfg.grounding and policy_cfg.grounding_loss <= 0:
        raise ValueError(
            f"--grounding {cfg.grounding} given, but preset '{cfg.preset}' has no grounding head; use a preset "
            "with grounding_loss > 0 (e.g. 'grounded') or add -p grounding_loss=1.0"
        )


def load_grounding(cfg: TrainConfig, policy_cfg: PolicyConfig, reader: EpisodeDataset) -> GroundingSet:
    g = GroundingSet(cfg.grounding)
    if reader.suite and g.suite != reader.suite:
        raise ValueError(
            f"{cfg.grounding}: grounding views of suite '{g.suite}' but the dataset is of '{reader.suite}'"
        )
    if reader.embodiment is not None and g.state.shape[1] != reader.embodiment.state_dim:
        raise ValueError(
            f"{cfg.grounding}: views hold a {g.state.shape[1]}-D robot state but the dataset's robot has "
            f"{reader.embodiment.state_dim}; make the views with the dataset's suite"
        )
    if g.feature.name != policy_cfg.grounding_feature:
        raise ValueError(
            f"{cfg.grounding}: views labelled with feature '{g.feature.name}', but the policy's grounding "
            f"head estimates '{policy_cfg.grounding_feature}' (-p grounding_feature=...)"
        )
    declared = {f.name: f for f in reader.features}
    if g.feature.name not in declared or declared[g.feature.name] != g.feature:
        raise ValueError(
            f"{cfg.grounding}: feature '{g.feature.name}' of the views is not declared the same way by "
            f"{cfg.dataset} (it declares {sorted(declared) or 'none'}); collect both with the same suite"
        )
    missing = [c for c in policy_cfg.cameras if c not in g.cameras]
    if missing:
        raise ValueError(
            f"{cfg.grounding}: lacks cameras {missing} the policy reads (it has {list(g.cameras)})"
        )
    return g


def grounding_indices(step: int, *, n: int, batch_size: int, seed: int) -> np.ndarray:
    """The labelled views of step `step` (int64 [batch_size]), a pure function of its args."""
    return np.random.default_rng([seed, step, 5]).integers(0, n, size=batch_size).astype(np.int64)
