"""Physical interventions: a clip the robot's driver would make anyway is counted apart from one that
changes the command; the policy's own outputs stay inside what the demonstrations did."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from vla.envs.metaworld.embodiment import make_embodiment as metaworld_embodiment
from vla.models.normalize import Normalizer
from vla.runtime.safety import SafetyFilter
from vla.spaces import Embodiment
from vla.types import DatasetStats, FeatureStats


def _state(emb: Embodiment, ee: tuple[float, float, float]) -> np.ndarray:
    s = np.zeros(emb.state_dim, np.float32)
    lo, hi = np.asarray(emb.joint_low), np.asarray(emb.joint_high)
    s[:7] = (lo + hi) / 2
    s[15:18] = ee
    s[18:22] = (1, 0, 0, 0)
    return s


def test_safety_bounds_clip_is_not_physical_when_the_driver_clips(rt) -> None:
    emb = dataclasses.replace(rt.make_test_embodiment(), driver_clips=("action_bounds", "workspace"))
    f = SafetyFilter(emb)
    state = _state(emb, (0.5, 0.0, 0.3))
    f.act(np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.08]), state)  # gripper past its range
    assert f.stats["gripper_range"] == 1 and f.physical_stats["gripper_range"] == 0
    # A rate clip (the delta jumps by more than half its range in one step) changes the command.
    f.act(np.array([0.05, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]), state)
    f.act(np.array([-0.05, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]), state)
    assert f.stats["velocity"] >= 1 and f.physical_stats["velocity"] == f.stats["velocity"]
    # A hold is always physical.
    f.act(np.array([np.nan] * 7), state)
    assert f.physical_stats["non_finite_action"] == 1


def test_safety_same_clip_is_physical_without_a_driver_clip(rt) -> None:
    emb = rt.make_test_embodiment()
    assert emb.driver_clips == ()
    f = SafetyFilter(emb)
    f.act(np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.08]), _state(emb, (0.5, 0.0, 0.3)))
    assert f.physical_stats["gripper_range"] == 1


def test_safety_workspace_clip_matches_the_driver_box(rt) -> None:
    emb = dataclasses.replace(rt.make_test_embodiment(), driver_clips=("action_bounds", "workspace"))
    f = SafetyFilter(emb)
    top = emb.workspace_high[2]
    f.act(np.array([0.0, 0.0, 0.04, 0.0, 0.0, 0.0, 0.0]), _state(emb, (0.5, 0.0, top - 0.01)))
    assert f.stats["workspace"] == 1 and f.physical_stats["workspace"] == 0
    # With a margin the filter's box is smaller than the driver's: that clip is physical.
    g = SafetyFilter(emb, dataclasses.replace(f.config, workspace_margin=0.05))
    g.act(np.array([0.0, 0.0, 0.04, 0.0, 0.0, 0.0, 0.0]), _state(emb, (0.5, 0.0, top - 0.06)))
    assert g.physical_stats["workspace"] == 1


def test_safety_metaworld_declares_its_own_clip() -> None:
    emb = metaworld_embodiment((32, 32))
    f = SafetyFilter(emb)
    state = np.zeros(emb.state_dim, np.float32)
    f.act(np.array([1.1, 0.0, -1.05, 1.0]), state)
    assert f.stats["action_bounds"] == 1 and f.interventions == 1 and not f.physical_stats
    restored = Embodiment.from_dict(emb.to_dict())
    assert restored.driver_clips == ("action_bounds",)


def test_embodiment_rejects_unknown_driver_clip(rt) -> None:
    with pytest.raises(ValueError, match="unknown driver_clips"):
        dataclasses.replace(rt.make_test_embodiment(), driver_clips=("teleport",))


def _stats(lo: float, hi: float, q01: float, q99: float) -> DatasetStats:
    def fs(a: float, b: float, qa: float, qb: float) -> FeatureStats:
        v = np.array([a, b], dtype=np.float64)
        return FeatureStats(
            mean=v.mean(keepdims=True).repeat(2),
            std=np.ones(2),
            min=np.full(2, a),
            max=np.full(2, b),
            q01=np.full(2, qa),
            q99=np.full(2, qb),
            count=10,
        )

    return DatasetStats(state=fs(0.0, 1.0, 0.0, 1.0), action=fs(lo, hi, q01, q99))


def test_normalizer_keeps_actions_inside_the_demonstrated_range() -> None:
    n = Normalizer(_stats(lo=-1.0, hi=1.0, q01=-0.9, q99=0.9))
    out = n.unaction(torch.tensor([[1.1, -1.1], [0.5, 0.0]]))  # the head's tanh bound is 1.1
    assert float(out.max()) <= 1.0 and float(out.min()) >= -1.0
    assert out[1].tolist() == pytest.approx([0.45, 0.0])  # inside the range: unchanged scaling
