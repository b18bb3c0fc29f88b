"""Fixtures for the training area: a small synthetic dataset written with the real HDF5 writer."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from vla.data.episode import Episode
from vla.data.stats import compute_and_store
from vla.data.writer import DatasetWriter
from vla.spaces import ActionGroup, ActionSpace, Embodiment, StateField

IMAGE = (16, 16)

# A tiny policy so the loop itself is what the tests measure (word-vocabulary language: no MiniLM load).
TINY = (
    "vision.channels=[8, 8]",
    "vision.strides=[2, 2]",
    "vision.num_keypoints=4",
    "fusion.dim=32",
    "fusion.state_hidden=32",
    "head.hidden=32",
    "head.ensemble=1",
    "language.kind=vocab",
    "action_horizon=4",
    "image_size=[16, 16]",
)


def toy_embodiment() -> Embodiment:
    return Embodiment(
        name="toy_arm",
        action_spaces=(
            ActionSpace(
                "ee_delta",
                (
                    ActionGroup("arm_pos", 2, (-1.0, -1.0), (1.0, 1.0), "m"),
                    ActionGroup("gripper", 1, (0.0,), (1.0,), "fraction"),
                ),
            ),
        ),
        state_fields=(StateField("joint_pos", 2, "rad"), StateField("ee_pos", 3, "m")),
        cameras=("scene", "wrist"),
        image_size=IMAGE,
        control_hz=10.0,
        joint_low=(-3.0, -3.0),
        joint_high=(3.0, 3.0),
        max_joint_velocity=(2.0, 2.0),
        workspace_low=(-1.0, -1.0, -1.0),
        workspace_high=(1.0, 1.0, 1.0),
    )


def write_toy_dataset(path: Path, *, episodes: int = 6, length: int = 20, seed: int = 0) -> Path:
    """Episodes whose action depends on the state and on where a bright square sits in the image."""
    rng = np.random.default_rng(seed)
    writer = DatasetWriter(path, embodiment=toy_embodiment(), suite="")
    for e in range(episodes):
        state = rng.uniform(-1, 1, size=(length, 5)).astype(np.float32)
        images = {c: np.zeros((length, *IMAGE, 3), np.uint8) for c in ("scene", "wrist")}
        col = rng.integers(0, IMAGE[1] - 4, size=length)
        for t in range(length):
            images["scene"][t, 6:10, col[t] : col[t] + 4] = (255, 40, 40)
        actions = np.stack([state[:, 0] * 0.5, col / IMAGE[1] - 0.5, (state[:, 1] > 0)], 1).astype(np.float32)
        family = "left" if e % 2 else "right"
        writer.append(
            Episode(
                images=images,
                state=state,
                actions=actions,
                timestamps=np.arange(length) / 10.0,
                instruction=f"move the red square {family}",
                success=True,
                meta={"family": family},
            )
        )
    compute_and_store(path)
    return path


@pytest.fixture
def toy_dataset(tmp_path: Path) -> Path:
    return write_toy_dataset(tmp_path / "toy.h5")


@pytest.fixture(scope="session")
def tiny() -> tuple[str, ...]:
    """Policy overrides for a tiny, fast model."""
    return TINY


@pytest.fixture
def toy_dataset_factory():
    """`toy_dataset_factory(path, episodes=6, length=20, seed=0)` writes a toy dataset and returns its path."""
    return write_toy_dataset


def kill_at_first_save(cmd: list[str], run: Path, env: dict[str, str]) -> tuple[int | None, int | None]:
    """Starts the training command `cmd` (writing to `run`) and SIGKILLs it as soon as its first
    training state is saved; returns (the saved step, the process's return code)."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = run / "train_state" / "state.json"
    deadline = time.time() + 120
    killed_at = None
    while time.time() < deadline and proc.poll() is None:
        if state.exists():
            try:
                killed_at = json.loads(state.read_text())["step"]
            except (json.JSONDecodeError, FileNotFoundError):
                continue
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait()
    return killed_at, proc.returncode
