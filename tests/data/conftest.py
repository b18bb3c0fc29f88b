"""Fixtures for the data area: small synthetic episodes (random arrays are real data here)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from vla.data.episode import Episode
from vla.data.writer import DatasetWriter
from vla.spaces import ActionGroup, ActionSpace, Embodiment, StateField

STATE_DIM = 5
ACTION_DIM = 3
IMAGE = (12, 16)


def make_embodiment() -> Embodiment:
    return Embodiment(
        name="synthetic_arm",
        action_spaces=(
            ActionSpace(
                "ee_delta",
                (
                    ActionGroup("arm_pos", 2, (-1.0, -1.0), (1.0, 1.0), "m"),
                    ActionGroup("gripper", 1, (0.0,), (1.0,), "fraction"),
                ),
            ),
        ),
        state_fields=(StateField("joints", 3, "rad"), StateField("ee_pos", 2, "m")),
        cameras=("scene", "wrist"),
        image_size=IMAGE,
        control_hz=10.0,
        joint_low=(-3.0, -3.0, -3.0),
        joint_high=(3.0, 3.0, 3.0),
        max_joint_velocity=(2.0, 2.0, 2.0),
        workspace_low=(-1.0, -1.0, 0.0),
        workspace_high=(1.0, 1.0, 1.0),
    )


def make_episode(
    rng: np.random.Generator, n: int, *, family: str = "pick", index: int = 0, success: bool = True
) -> Episode:
    """An episode whose values encode (index, step) so tests can check exactly what they read."""
    steps = np.arange(n, dtype=np.float32)
    state = rng.normal(size=(n, STATE_DIM)).astype(np.float32)
    state[:, 0] = index * 1000 + steps
    actions = rng.normal(size=(n, ACTION_DIM)).astype(np.float32)
    actions[:, 0] = index * 1000 + steps
    images = {cam: rng.integers(0, 256, size=(n, *IMAGE, 3), dtype=np.uint8) for cam in ("scene", "wrist")}
    return Episode(
        images=images,
        state=state,
        actions=actions,
        timestamps=np.arange(n, dtype=np.float64) / 10.0,
        instruction=f"{family} the object number {index}",
        success=success,
        meta={"family": family, "split": "train", "seed": index},
    )


@pytest.fixture
def embodiment() -> Embodiment:
    return make_embodiment()


@pytest.fixture
def episode_factory() -> Callable[..., Episode]:
    """`episode_factory(rng, n, family=..., index=..., success=...)` -> a synthetic Episode."""
    return make_episode


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def small_dataset(tmp_path: Path, rng: np.random.Generator) -> tuple[Path, list[Episode]]:
    """Six episodes of three families with lengths 3..9, written to an .h5 file."""
    path = tmp_path / "small.h5"
    writer = DatasetWriter(path, embodiment=make_embodiment(), suite="synthetic", env_args={"k": 1})
    episodes = []
    for i, (fam, n) in enumerate(
        [("pick", 5), ("push", 3), ("open", 9), ("pick", 7), ("push", 4), ("open", 6)]
    ):
        ep = make_episode(rng, n, family=fam, index=i)
        writer.append(ep)
        episodes.append(ep)
    return path, episodes
