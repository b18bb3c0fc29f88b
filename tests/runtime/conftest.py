"""Fixtures of the runtime tests: a Panda-like embodiment and small deterministic torch-free policies.

The policy doubles stand in for a model only where the model is beside the point (wire layer, safety,
chunking); the end-to-end tests use a real saved checkpoint.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from vla.runtime.schema import PolicySpec
from vla.runtime.server import PolicyServer, ServeConfig
from vla.spaces import ActionGroup, ActionSpace, Embodiment, StateField
from vla.types import ActionChunk, Observation

JOINT_LOW = (-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973)
JOINT_HIGH = (2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973)
MAX_JOINT_VELOCITY = (2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61)
IMAGE_SIZE = (24, 32)


def make_test_embodiment() -> Embodiment:
    """A Panda with the tabletop layout (22-D state, ee_delta 7-D and joint_pos 8-D actions)."""
    grip = "fraction (0 open, 1 closed)"
    ee_delta = ActionSpace(
        "ee_delta",
        (
            ActionGroup("arm_pos", 3, (-0.05,) * 3, (0.05,) * 3, "m"),
            ActionGroup("arm_rot", 3, (-0.25,) * 3, (0.25,) * 3, "rad"),
            ActionGroup("gripper", 1, (0.0,), (1.0,), grip),
        ),
    )
    joint_pos = ActionSpace(
        "joint_pos",
        (
            ActionGroup("joints", 7, JOINT_LOW, JOINT_HIGH, "rad"),
            ActionGroup("gripper", 1, (0.0,), (1.0,), grip),
        ),
    )
    return Embodiment(
        name="test_panda",
        action_spaces=(ee_delta, joint_pos),
        state_fields=(
            StateField("joint_pos", 7, "rad"),
            StateField("joint_vel", 7, "rad/s"),
            StateField("gripper", 1, "m"),
            StateField("ee_pos", 3, "m"),
            StateField("ee_quat", 4, "quaternion"),
        ),
        cameras=("scene", "wrist"),
        image_size=IMAGE_SIZE,
        control_hz=10.0,
        joint_low=JOINT_LOW,
        joint_high=JOINT_HIGH,
        max_joint_velocity=MAX_JOINT_VELOCITY,
        workspace_low=(0.25, -0.42, 0.008),
        workspace_high=(0.80, 0.42, 0.55),
    )


@dataclass(frozen=True)
class _Cfg:
    obs_horizon: int = 1
    action_horizon: int = 4


class ScriptedPolicy:
    """Deterministic policy double: action[h] = 0.001 * (h + 1) + 0.0001 * calls + 0.001 * state[7]
    (state[7] = joint_vel[0] tags each batch row). `mode` makes it misbehave: "nan" (NaN actions),
    "nan_first" (NaN on the first call only), "raise", "huge".

    Also records the batches it saw and can sleep to simulate a slow model.
    """

    def __init__(
        self,
        *,
        action_dim: int = 7,
        horizon: int = 4,
        obs_horizon: int = 1,
        mode: str = "ok",
        delay: float = 0.0,
    ) -> None:
        self.config = _Cfg(obs_horizon=obs_horizon, action_horizon=horizon)
        self.embodiment = make_test_embodiment()
        self.action_dim = action_dim
        self.mode = mode
        self.delay = delay
        self.calls = 0
        self.seen: list[Observation] = []
        self._active = 0
        self.max_concurrent = 0
        self._lock = threading.Lock()

    def predict(self, obs: Observation) -> ActionChunk:
        with self._lock:
            self._active += 1
            self.max_concurrent = max(self.max_concurrent, self._active)
        try:
            if self.delay:
                time.sleep(self.delay)
            self.calls += 1
            self.seen.append(obs)
            if self.mode == "raise":
                raise RuntimeError("scripted failure")
            b = obs.state.shape[0]
            h = np.arange(self.config.action_horizon, dtype=np.float32)[:, None]
            actions = np.broadcast_to(
                0.001 * (h + 1) + 0.0001 * self.calls, (b, len(h), self.action_dim)
            ).copy()
            actions += 0.001 * obs.state[:, -1, 7][:, None, None]  # joint_vel[0] tags a batch row
            if self.mode == "nan" or (self.mode == "nan_first" and self.calls == 1):
                actions[:] = np.nan
            elif self.mode == "huge":
                actions[:] = 1e6
            return ActionChunk(actions=actions.astype(np.float32), confidence=np.full(b, 0.9, np.float32))
        finally:
            with self._lock:
                self._active -= 1


def make_spec(policy: ScriptedPolicy) -> PolicySpec:
    emb = policy.embodiment
    return PolicySpec(
        embodiment=emb,
        action_space="ee_delta",
        cameras=emb.cameras,
        image_size=emb.image_size,
        action_horizon=policy.config.action_horizon,
        obs_horizon=policy.config.obs_horizon,
        stats_sha256="0" * 64,
        name="scripted",
    )


def make_obs(rng: np.random.Generator | None = None, *, prefix: str = "images/") -> dict:
    """A valid request for the test embodiment (ee inside the workspace)."""
    rng = rng or np.random.default_rng(0)
    hi, wi = IMAGE_SIZE
    state = np.zeros(22, np.float32)
    state[:7] = (np.asarray(JOINT_LOW) + np.asarray(JOINT_HIGH)) / 2
    state[15:18] = (0.5, 0.0, 0.3)
    state[18] = 1.0
    return {
        f"{prefix}scene": rng.integers(0, 255, (hi, wi, 3), dtype=np.uint8),
        f"{prefix}wrist": rng.integers(0, 255, (hi, wi, 3), dtype=np.uint8),
        "state": state,
        "prompt": "open the drawer",
    }


@pytest.fixture
def embodiment() -> Embodiment:
    return make_test_embodiment()


@pytest.fixture
def scripted_server() -> Iterator[tuple[PolicyServer, ScriptedPolicy]]:
    policy = ScriptedPolicy()
    server = PolicyServer(policy, make_spec(policy), ServeConfig(port=0))
    server.start()
    try:
        yield server, policy
    finally:
        server.stop()


class Helpers:
    """The helpers above, handed to tests through the `rt` fixture (test modules cannot import conftest
    under pytest's importlib import mode)."""

    ScriptedPolicy = ScriptedPolicy
    make_spec = staticmethod(make_spec)
    make_obs = staticmethod(make_obs)
    make_test_embodiment = staticmethod(make_test_embodiment)
    IMAGE_SIZE = IMAGE_SIZE


@pytest.fixture(scope="session")
def rt() -> type[Helpers]:
    return Helpers


def _feature(lo: np.ndarray, hi: np.ndarray):
    from vla.types import FeatureStats

    return FeatureStats(mean=(lo + hi) / 2, std=(hi - lo) / 4, min=lo, max=hi, q01=lo, q99=hi, count=10)


def build_tiny_policy(**overrides):
    """A real (untrained) default-preset policy at a tiny size for the test embodiment."""
    import torch

    from vla.models import build_policy
    from vla.presets import get_preset
    from vla.types import DatasetStats

    torch.manual_seed(0)
    emb = make_test_embodiment()
    space = emb.action_space()
    stats = DatasetStats(
        state=_feature(-np.ones(22), np.ones(22)),
        action=_feature(space.low.astype(np.float64), space.high.astype(np.float64)),
    )
    cfg = get_preset("default").override(
        {
            "image_size": list(IMAGE_SIZE),
            "action_horizon": 4,
            "vision.channels": [8, 16],
            "vision.strides": [2, 2],
            "vision.num_keypoints": 8,
            "fusion.dim": 64,
            "fusion.state_hidden": 32,
            "head.hidden": 64,
            **overrides,
        }
    )
    from vla.envs.tabletop.labels import SCENE

    return build_policy(cfg, embodiment=emb, stats=stats, features=(SCENE,))


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A saved checkpoint directory of `build_tiny_policy()` (shared by the session's tests)."""
    import torch

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("ckpt") / "tiny"
    build_tiny_policy().save_pretrained(out)
    return out


Helpers.build_tiny_policy = staticmethod(build_tiny_policy)  # type: ignore[attr-defined]
