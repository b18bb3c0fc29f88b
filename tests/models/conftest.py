"""Fixtures of the models tests: a tiny embodiment, statistics, a synthetic task and a fitting loop.

The synthetic task needs all three inputs: action = f(state, colour of the scene image, instruction).
    a0 = 0.4 * state[0]                      (proprioception)
    a1 = +0.4 if the scene is red else -0.4  (vision)
    a2 = +0.4 for "go left", -0.4 for "go right"   (language)
Every step h of the chunk scales the action by (1 + 0.1 h), so the steps differ.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from vla.models import PolicyConfig, build_policy
from vla.models.policy import Policy
from vla.spaces import ActionGroup, ActionSpace, Embodiment, StateField
from vla.types import Batch, DatasetStats, FeatureStats, Observation

S, A, HI = 4, 3, 32
TOY_CAMERAS = ("scene", "wrist")
INSTRUCTIONS = ("go left", "go right")


def make_embodiment(state_dim: int = S, action_dim: int = A) -> Embodiment:
    space = ActionSpace(
        "delta",
        (
            ActionGroup("arm", action_dim - 1, (-1.0,) * (action_dim - 1), (1.0,) * (action_dim - 1), "m"),
            ActionGroup("gripper", 1, (0.0,), (1.0,), "fraction (0 open, 1 closed)"),
        ),
    )
    return Embodiment(
        name="toy",
        action_spaces=(space,),
        state_fields=(StateField("joints", state_dim, "rad"),),
        cameras=TOY_CAMERAS,
        image_size=(HI, HI),
        control_hz=10.0,
        joint_low=(-1.0,),
        joint_high=(1.0,),
        max_joint_velocity=(1.0,),
        workspace_low=(0.0, 0.0, 0.0),
        workspace_high=(1.0, 1.0, 1.0),
    )


def embodiment_with_ee(state_dim: int = S) -> Embodiment:
    """The toy robot with its last three state dims declared as an end-effector position."""
    fields = (StateField("joints", state_dim - 3, "rad"), StateField("ee_pos", 3, "m"))
    return dataclasses.replace(make_embodiment(state_dim=state_dim), state_fields=fields)


def feature_stats(x: np.ndarray) -> FeatureStats:
    x = x.reshape(-1, x.shape[-1]).astype(np.float64)
    return FeatureStats(
        mean=x.mean(0),
        std=x.std(0),
        min=x.min(0),
        max=x.max(0),
        q01=np.quantile(x, 0.01, axis=0),
        q99=np.quantile(x, 0.99, axis=0),
        count=len(x),
    )


@dataclass
class ToyData:
    images: dict[str, np.ndarray]  # camera -> uint8 (N, T, Hi, Wi, 3)
    state: np.ndarray  # (N, T, S)
    instruction: list[str]
    actions: np.ndarray  # (N, H, A)

    def batch(self, idx: np.ndarray | None = None) -> Batch:
        i = np.arange(len(self.instruction)) if idx is None else idx
        H = self.actions.shape[1]
        return Batch(
            images={k: torch.from_numpy(v[i]) for k, v in self.images.items()},
            state=torch.from_numpy(self.state[i]),
            obs_pad=torch.zeros(len(i), self.state.shape[1], dtype=torch.bool),
            instruction=[self.instruction[j] for j in i],
            actions=torch.from_numpy(self.actions[i]),
            action_pad=torch.zeros(len(i), H, dtype=torch.bool),
        )

    def obs(self, idx: np.ndarray | None = None) -> Observation:
        i = np.arange(len(self.instruction)) if idx is None else idx
        return Observation(
            images={k: v[i] for k, v in self.images.items()},
            state=self.state[i],
            instruction=[self.instruction[j] for j in i],
        )

    def stats(self) -> DatasetStats:
        return DatasetStats(state=feature_stats(self.state), action=feature_stats(self.actions))


def make_toy(n: int = 32, *, T: int = 1, H: int = 4, seed: int = 0, size: int = HI) -> ToyData:
    rng = np.random.default_rng(seed)
    red = rng.integers(0, 2, n).astype(bool)
    left = rng.integers(0, 2, n).astype(bool)
    state = rng.normal(size=(n, T, S)).astype(np.float32)
    scene = np.zeros((n, T, size, size, 3), np.uint8)
    scene[red, ..., 0] = 200
    scene[~red, ..., 2] = 200
    scene += rng.integers(0, 30, scene.shape, dtype=np.uint8)  # texture noise, so colour is the signal
    wrist = rng.integers(0, 60, (n, T, size, size, 3), dtype=np.uint8)
    base = np.stack([0.4 * state[:, -1, 0], np.where(red, 0.4, -0.4), np.where(left, 0.4, -0.4)], axis=-1)
    scale = 1.0 + 0.1 * np.arange(H)
    actions = (base[:, None, :] * scale[None, :, None]).astype(np.float32)  # (N, H, A)
    instr = [INSTRUCTIONS[0] if lf else INSTRUCTIONS[1] for lf in left]
    return ToyData({"scene": scene, "wrist": wrist}, state, instr, actions)


# Shrinks any preset to test size while keeping its family (kinds of vision, pool, fusion and head).
TINY = {
    "image_size": [HI, HI],
    "vision.channels": [8, 16, 16],
    "vision.strides": [2, 2, 1],
    "vision.num_keypoints": 8,
    "vision.num_tokens": 4,
    "vision.patch_size": 8,
    "vision.vit_dim": 32,
    "vision.vit_depth": 1,
    "vision.vit_heads": 2,
    "vision.random_shift": 0,
    "fusion.dim": 64,
    "fusion.depth": 1,
    "fusion.dec_depth": 1,
    "fusion.heads": 2,
    "fusion.state_hidden": 32,
    "fusion.dropout": 0.0,
    "head.hidden": 64,
    "head.denoiser_depth": 1,
    "head.num_bins": 64,
    "head.train_steps": 50,
    "action_horizon": 4,
}


def tiny(cfg: PolicyConfig, **extra: object) -> PolicyConfig:
    over = dict(TINY)
    if cfg.vision.kind == "resnet18":
        over["vision.channels"] = [8]
        over["vision.strides"] = [1]
    # A suite's preset names that suite's cameras (metaworld: corner2); the toy robot has scene + wrist,
    # so such a preset is fitted from the toy's scene camera: what is under test is the model, not the view.
    if any(c not in TOY_CAMERAS for c in cfg.cameras):
        over["cameras"] = ["scene"]
    over.update(extra)
    return cfg.override(over)


def fit(policy: Policy, data: ToyData, *, steps: int, lr: float = 3e-3) -> list[float]:
    """Full-batch AdamW; returns the loss history."""
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    policy.train()
    batch = data.batch()
    losses = []
    for _ in range(steps):
        loss, _ = policy.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    policy.eval()
    return losses


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture
def toy() -> ToyData:
    return make_toy()


@pytest.fixture
def embodiment() -> Embodiment:
    return make_embodiment()


def build(cfg: PolicyConfig, data: ToyData, *, seed: int = 0) -> Policy:
    torch.manual_seed(seed)
    return build_policy(cfg, embodiment=make_embodiment(), stats=data.stats())


@pytest.fixture
def kit() -> SimpleNamespace:
    """The helpers above, for test modules (conftest is not importable under --import-mode=importlib)."""
    return SimpleNamespace(
        make_toy=make_toy,
        fit=fit,
        tiny=tiny,
        build=build,
        embodiment=make_embodiment,
        embodiment_with_ee=embodiment_with_ee,
        stats=feature_stats,
        S=S,
        A=A,
    )
