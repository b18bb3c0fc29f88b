"""One policy for two robots: a shared trunk, per-robot heads, a checkpoint per robot, and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.train.conftest import IMAGE, kill_at_first_save, write_toy_dataset
from vla.config import TrainConfig
from vla.data.episode import Episode
from vla.data.stats import compute_and_store
from vla.data.subgoals import dataset_subgoals
from vla.data.writer import DatasetWriter
from vla.models import Policy
from vla.spaces import ActionGroup, ActionSpace, Effector, Embodiment, StateField
from vla.train import train
from vla.types import Observation

BOUNDS = ((-1.0, -1.0), (1.0, 1.0))
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "vla.cli.main", *args]


def two_hands() -> Embodiment:
    """A second toy robot: two hands (two effectors), one head camera, other dims than the toy arm."""
    return Embodiment(
        name="toy_two_hands",
        action_spaces=(
            ActionSpace(
                "both",
                (
                    ActionGroup("left", 2, *BOUNDS, "m"),
                    ActionGroup("right", 2, *BOUNDS, "m"),
                    ActionGroup("hands", 2, (0.0, 0.0), (1.0, 1.0), "fraction"),
                ),
            ),
        ),
        state_fields=(
            StateField("left_pos", 3, "m"),
            StateField("right_pos", 3, "m"),
            StateField("tilt", 1, "rad"),
        ),
        cameras=("head",),
        image_size=IMAGE,
        control_hz=10.0,
        joint_low=(),
        joint_high=(),
        max_joint_velocity=(),
        workspace_low=(-1.0, -1.0, -1.0),
        workspace_high=(1.0, 1.0, 1.0),
        effectors=(Effector("left_pos", "hands", 0), Effector("right_pos", "hands", 1)),
    )


def write_two_hands(path: Path, *, episodes: int = 4, length: int = 16) -> Path:
    rng = np.random.default_rng(1)
    writer = DatasetWriter(path, embodiment=two_hands(), suite="")
    for e in range(episodes):
        state = rng.uniform(-1, 1, size=(length, 7)).astype(np.float32)
        head = np.zeros((length, *IMAGE, 3), np.uint8)
        head[:, 2:6, 2:6] = (40, 40, 255)
        hands = np.stack([np.arange(length) >= 5, np.arange(length) >= 9], 1).astype(np.float32)
        actions = np.concatenate([state[:, :4] * 0.3, hands], 1).astype(np.float32)
        family = "lift" if e % 2 else "hold"
        writer.append(
            Episode(
                images={"head": head},
                state=state,
                actions=actions,
                timestamps=np.arange(length) / 10.0,
                instruction=f"{family} the blue box",
                success=True,
                meta={"family": family},
            )
        )
    compute_and_store(path)
    return path


def test_subgoals_of_two_effectors_are_each_hands_own_next_flip() -> None:
    state = np.arange(10 * 7, dtype=np.float32).reshape(10, 7)
    actions = np.zeros((10, 6), np.float32)
    actions[4:, 4] = 1.0  # the left hand closes at step 4, the right one never
    goal = dataset_subgoals(state, actions, np.array([0]), np.array([10]), two_hands())
    assert goal is not None and goal.shape == (10, 6)
    np.testing.assert_array_equal(goal[:4, :3], np.repeat(state[4:5, 0:3], 4, 0))  # left: at its flip
    np.testing.assert_array_equal(goal[4:, :3], np.repeat(state[9:10, 0:3], 6, 0))  # then the end
    np.testing.assert_array_equal(goal[:, 3:], np.repeat(state[9:10, 3:6], 10, 0))  # right: the end


def test_effectors_are_checked_and_round_trip() -> None:
    emb = two_hands()
    assert Embodiment.from_dict(json.loads(json.dumps(emb.to_dict()))) == emb
    assert emb.effector_layout() == [(slice(0, 3), 4), (slice(3, 6), 5)]
    with pytest.raises(ValueError, match="effector field 'tilt' must be a 3-float"):
        Embodiment(**{**emb.__dict__, "effectors": (Effector("tilt", "hands", 0),)})
    with pytest.raises(ValueError, match=r"effector action 'hands'\[2\]"):
        Embodiment(**{**emb.__dict__, "effectors": (Effector("left_pos", "hands", 2),)})


def _cfg(tmp_path: Path, tiny: tuple[str, ...], steps: int, out: str = "run") -> TrainConfig:
    return TrainConfig(
        dataset=str(write_toy_dataset(tmp_path / "arm.h5")),
        joint_with=(str(write_two_hands(tmp_path / "hands.h5")),),
        out=str(tmp_path / out),
        policy_overrides=(*tiny, "goal_loss=1.0"),
        steps=steps,
        batch_size=8,
        val_every=3,
        save_every=2,
        threads=1,
        warmup_steps=1,
    )


def test_joint_run_shares_the_trunk_and_saves_a_checkpoint_per_robot(tmp_path: Path, tiny) -> None:
    torch.set_num_threads(1)
    summary = train(_cfg(tmp_path, tiny, steps=4), progress=False)
    root = Path(summary["checkpoint"])
    assert json.loads((root / "joint.json").read_text()) == {"embodiments": ["toy_arm", "toy_two_hands"]}
    metrics = summary["metrics"]
    assert {"toy_arm/loss", "toy_two_hands/loss", "toy_two_hands/goal_loss"} <= set(metrics)
    logged = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert {"val_loss", "val_loss/lift", "val_loss/left"} <= set(logged[2])  # both robots' families
    arm = Policy.from_pretrained(root, embodiment="toy_arm")
    hands = Policy.from_pretrained(root / "toy_two_hands")  # the sub-directory is a checkpoint too
    assert (arm.action_dim, hands.action_dim, hands.config.cameras) == (3, 6, ("head",))
    assert hands.goal is not None and hands.goal.mean.numel() == 6
    # One trunk: both files hold the same vision weights; the heads are each robot's own.
    wa = load_file(str(root / "toy_arm" / "model.safetensors"))
    wh = load_file(str(root / "toy_two_hands" / "model.safetensors"))
    trunk = [k for k in wa if k.startswith("vision.")]
    assert trunk and all(torch.equal(wa[k], wh[k]) for k in trunk)
    obs = Observation(
        images={"head": np.zeros((*IMAGE, 3), np.uint8)},
        state=np.zeros(7, np.float32),
        instruction="lift the blue box",
    )
    chunk = hands.predict(obs)
    assert chunk.actions.shape[-1] == 6 and np.isfinite(chunk.actions).all()
    with pytest.raises(ValueError, match=r"joint checkpoint of \['toy_arm', 'toy_two_hands'\]"):
        Policy.from_pretrained(root)
    with pytest.raises(ValueError, match="no head for embodiment 'panda_tabletop'"):
        Policy.from_pretrained(root, embodiment="panda_tabletop")


def test_joint_run_resumes_after_sigkill_at_the_same_weights(tmp_path: Path, tiny) -> None:
    """`vla train --joint-with ... --resume` after a SIGKILL ends where the uninterrupted run ends."""
    arm, hands = write_toy_dataset(tmp_path / "arm.h5"), write_two_hands(tmp_path / "hands.h5")
    common = [str(arm), "--joint-with", str(hands), *[a for o in tiny for a in ("-p", o)]]
    common += [
        "--steps",
        "60",
        "--batch-size",
        "8",
        "-s",
        "threads=1",
        "-s",
        "val_every=0",
        "-s",
        "save_every=5",
    ]
    subprocess.run(
        _cli("train", *common, "--out", str(tmp_path / "full")), env=ENV, check=True, capture_output=True
    )
    run = tmp_path / "killed"
    killed_at, returncode = kill_at_first_save(_cli("train", *common, "--out", str(run)), run, ENV)
    assert killed_at is not None and killed_at < 60, "the run must be killed mid-way"
    assert returncode == -signal.SIGKILL
    subprocess.run(
        _cli("train", *common, "--out", str(run), "--resume"), env=ENV, check=True, capture_output=True
    )
    for robot in ("toy_arm", "toy_two_hands"):
        a = load_file(str(tmp_path / "full" / "checkpoint" / robot / "model.safetensors"))
        b = load_file(str(run / "checkpoint" / robot / "model.safetensors"))
        assert a.keys() == b.keys()
        worst = max(float((a[k] - b[k]).abs().max()) for k in a)
        assert worst <= 1e-6, (robot, worst)


def test_joint_run_refuses_what_it_cannot_do(tmp_path: Path, tiny) -> None:
    cfg = _cfg(tmp_path, tiny, steps=1)
    with pytest.raises(ValueError, match="one dataset per robot"):
        train(TrainConfig(**{**cfg.__dict__, "joint_with": (cfg.dataset,)}), progress=False)
    with pytest.raises(ValueError, match="do not set 'cameras'"):
        train(TrainConfig(**{**cfg.__dict__, "policy_overrides": (*tiny, "cameras=head")}), progress=False)


def test_a_robot_without_the_presets_cameras_trains_on_its_own(tmp_path: Path, tiny) -> None:
    """The preset names scene + wrist; the two-handed robot has a head camera only."""
    cfg = TrainConfig(
        dataset=str(write_two_hands(tmp_path / "hands.h5")),
        out=str(tmp_path / "run"),
        policy_overrides=tiny,
        steps=1,
        batch_size=4,
        val_every=0,
        threads=1,
    )
    policy = Policy.from_pretrained(train(cfg, progress=False)["checkpoint"])
    assert policy.config.cameras == ("head",)
    with pytest.raises(ValueError, match=r"config cameras \['scene'\] are not cameras of 'toy_two_hands'"):
        train(TrainConfig(**{**cfg.__dict__, "policy_overrides": (*tiny, "cameras=scene")}), progress=False)
