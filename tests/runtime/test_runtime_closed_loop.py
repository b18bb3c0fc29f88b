"""Closed loop in the real MuJoCo tabletop: the safe controller keeps a runaway policy inside the
workspace, and a real engine drives the arm through the same wrapper."""

from __future__ import annotations

import os

import numpy as np
import pytest

from vla.runtime import RecoveryConfig, make_safe_controller
from vla.types import ActionChunk, Observation

os.environ.setdefault("MUJOCO_GL", "egl")


class RunawayPolicy:
    """Always asks for the largest step up and sideways (out of the workspace), with NaNs mixed in."""

    def __init__(self, embodiment) -> None:
        self.embodiment = embodiment
        self.calls = 0

    def predict(self, obs: Observation) -> ActionChunk:
        self.calls += 1
        actions = np.tile(np.array([10.0, 10.0, 10.0, 0.0, 0.0, 0.0, 1.0], np.float32), (1, 4, 1))
        if self.calls % 3 == 0:
            actions[:, 1] = np.nan
        return ActionChunk(actions=actions)


@pytest.fixture
def env():
    from vla.envs import get_suite

    e = get_suite("tabletop").make("touch", split="train", image_size=(32, 32))
    yield e
    e.close()


def test_runaway_policy_stays_inside_workspace(env):
    emb = env.embodiment
    ctl = make_safe_controller(RunawayPolicy(emb), mode="chunk", recovery=RecoveryConfig(max_retries=1))
    obs, _ = env.reset(seed=0)
    lo, hi = np.asarray(emb.workspace_low), np.asarray(emb.workspace_high)
    ee = emb.state_slice("ee_pos")
    for _ in range(25):
        action = ctl.act(obs)
        assert np.all(np.isfinite(action))
        assert np.all(action >= emb.action_space().low - 1e-6) and np.all(
            action <= emb.action_space().high + 1e-6
        )
        obs, *_ = env.step(action)
        assert np.all(obs["state"][ee] >= lo - 0.01) and np.all(obs["state"][ee] <= hi + 0.01)
    stats = ctl.safety.stats
    assert stats["action_bounds"] > 0 and stats["workspace"] > 0 and stats["non_finite_action"] > 0


def test_real_engine_drives_the_arm(env, tmp_path):
    import torch

    from vla.models import build_policy
    from vla.presets import get_preset
    from vla.runtime.engine import Engine, EngineConfig
    from vla.types import DatasetStats, FeatureStats

    torch.manual_seed(0)
    emb = env.embodiment
    space = emb.action_space()
    lo, hi = space.low.astype(np.float64), space.high.astype(np.float64)
    s = emb.state_dim

    def feature(a, b):
        return FeatureStats(mean=(a + b) / 2, std=(b - a) / 4, min=a, max=b, q01=a, q99=b, count=1)

    stats = DatasetStats(state=feature(-np.ones(s), np.ones(s)), action=feature(lo, hi))
    cfg = get_preset("default").override(
        {
            "image_size": [32, 32],
            "action_horizon": 4,
            "vision.channels": [8, 16],
            "vision.strides": [2, 2],
            "fusion.dim": 64,
        }
    )
    build_policy(cfg, embodiment=emb, stats=stats).save_pretrained(tmp_path / "ckpt")
    engine = Engine.from_checkpoint(tmp_path / "ckpt", EngineConfig(backend="onnx"))
    ctl = make_safe_controller(engine, mode="ensemble")
    obs, _ = env.reset(seed=1)
    start = obs["state"].copy()
    for _ in range(6):
        obs, *_ = env.step(ctl.act(obs))
    assert not ctl.failed
    assert not np.allclose(obs["state"], start)  # the arm moved under the engine's commands
