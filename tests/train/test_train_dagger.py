"""DAgger: the expert labels the states a (tiny, real) policy visits in real tabletop episodes; the
aggregate grows by exactly the round's episodes, every round fine-tunes from the one before, and a run
killed with SIGKILL resumes without repeating an episode. Fine-tuning starts from the checkpoint's
weights (`TrainConfig.init_from`)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vla.config import TrainConfig
from vla.dagger import ROUND_SEEDS, DaggerConfig, run_dagger
from vla.data.collect import collect
from vla.data.reader import EpisodeDataset
from vla.train import train

FAMILY = "touch"  # the touch expert holds the gripper closed all along: its labels say gripper = 1
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "MUJOCO_GL": "egl"}


@pytest.fixture(scope="module")
def start(tmp_path_factory: pytest.TempPathFactory, tiny: tuple[str, ...]) -> tuple[Path, Path]:
    """Two expert demonstrations of touch (16x16 images) and a tiny policy trained on them for 4 steps."""
    root = tmp_path_factory.mktemp("dagger")
    data = root / "demos.h5"
    collect("tabletop", out=data, families=[FAMILY], episodes_per_task=2, workers=1, image_size=16)
    torch.set_num_threads(1)
    cfg = TrainConfig(
        dataset=str(data),
        out=str(root / "run0"),
        policy_overrides=tiny,
        steps=4,
        batch_size=8,
        val_every=0,
        threads=1,
        warmup_steps=1,
    )
    train(cfg, progress=False)
    return data, root / "run0" / "checkpoint"


def _dagger_episodes(path: Path) -> dict[int, list[tuple[int, np.ndarray]]]:
    by_round: dict[int, list[tuple[int, np.ndarray]]] = {}
    with EpisodeDataset(path) as ds:
        for i, info in enumerate(ds.infos):
            if "dagger_round" in info.meta:
                actions = ds.episode(i).actions
                by_round.setdefault(int(info.meta["dagger_round"]), []).append(
                    (int(info.meta["seed"]), actions)
                )
    return by_round


def test_dagger_appends_expert_labels_of_visited_states_and_fine_tunes(start, tmp_path) -> None:
    data, checkpoint = start
    cfg = DaggerConfig(
        dataset=str(data),
        checkpoint=str(checkpoint),
        out=str(tmp_path / "dagger"),
        families=(FAMILY,),
        rounds=1,
        episodes_per_task=2,
        steps=2,
        workers=1,
        beta=0.0,
    )
    state = run_dagger(cfg, say=lambda _: None)
    (r1,) = state["rounds"]
    assert r1["episodes"] == 2 and r1["expert_acted_share"] == 0.0  # beta 0: the policy drove every step
    assert r1["labelled_steps"] > 0
    episodes = _dagger_episodes(tmp_path / "dagger" / "data.h5")
    assert sorted(s for s, _ in episodes[1]) == [cfg.seed + ROUND_SEEDS, cfg.seed + ROUND_SEEDS + 1]
    for _, actions in episodes[1]:
        # The untrained policy's gripper commands are anything in [0, 1]; the touch expert's are all 1.
        assert np.all(actions[:, 6] == 1.0)
        assert np.all(np.abs(actions[:, :3]) <= 0.05 + 1e-6)
    with EpisodeDataset(data) as ds:
        assert len(ds.infos) == 2, "the starting dataset is copied, never changed"
    assert Path(state["checkpoint"]).is_dir()
    assert json.loads((tmp_path / "dagger" / "round_1" / "train_config.json").read_text())[
        "init_from"
    ] == str(checkpoint)
    with pytest.raises(ValueError, match="other settings"):
        run_dagger(dataclasses.replace(cfg, beta=0.3), say=lambda _: None)


def test_init_from_starts_at_the_checkpoint_weights_and_refuses_another_config(start, tiny, tmp_path) -> None:
    data, checkpoint = start
    cfg = TrainConfig(
        dataset=str(data),
        out=str(tmp_path / "ft"),
        policy_overrides=tiny,
        steps=1,
        lr=1e-12,
        ema_decay=0.0,
        val_every=0,
        threads=1,
        warmup_steps=0,
        init_from=str(checkpoint),
    )
    train(cfg, progress=False)
    a = load_file(str(checkpoint / "model.safetensors"))
    b = load_file(str(tmp_path / "ft" / "checkpoint" / "model.safetensors"))
    assert max(float((a[k] - b[k]).abs().max()) for k in a if a[k].is_floating_point()) < 1e-6
    other = dataclasses.replace(cfg, out=str(tmp_path / "ft2"), policy_overrides=(*tiny, "fusion.dim=16"))
    with pytest.raises(ValueError, match=r"fusion\.dim"):
        train(other, progress=False)


def test_dagger_resumes_after_sigkill_without_repeating_an_episode(start, tmp_path) -> None:
    data, checkpoint = start
    out = tmp_path / "killed"
    args = [
        sys.executable,
        "-m",
        "vla.cli.main",
        "dagger",
        str(data),
        "--checkpoint",
        str(checkpoint),
        "--out",
        str(out),
        "--families",
        FAMILY,
        "--rounds",
        "2",
        "--episodes-per-task",
        "2",
        "--steps",
        "2",
        "--workers",
        "1",
    ]
    proc = subprocess.Popen(args, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    deadline = time.time() + 300
    while time.time() < deadline:
        line = proc.stdout.readline()
        if line.startswith("round 1:") or not line:
            break
    proc.send_signal(signal.SIGKILL)  # round 1 collected, its fine-tuning starting
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "dagger_state.json").exists(), "killed before round 1 finished"
    done = subprocess.run(args, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    state = json.loads(done.stdout.strip().splitlines()[-1])
    assert [r["round"] for r in state["rounds"]] == [1, 2]
    # Round 1's figures count the episodes collected before the kill.
    assert state["rounds"][0]["resumed_with"] == 2 and state["rounds"][0]["episodes"] == 2
    episodes = _dagger_episodes(out / "data.h5")
    for r in (1, 2):
        seeds = [s for s, _ in episodes[r]]
        assert sorted(seeds) == [200_000 + r * ROUND_SEEDS + i for i in range(2)]
    assert (out / "round_2" / "checkpoint" / "model.safetensors").is_file()
