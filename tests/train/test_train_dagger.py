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


def test_dagger_rolls_a_g1_policy_out_on_the_g1_and_records_its_experts_labels(tiny, tmp_path) -> None:
    """The robot of the data picks the envs (tabletop's humanoid); the humanoid labeller's actions,
    not the untrained policy's, are what the round records."""
    from vla.data.collect import CollectConfig, run_collection
    from vla.robots.g1.embodiment import NAME

    data = tmp_path / "g1.h5"
    options = (("robot", "humanoid"),)
    run_collection(
        CollectConfig(
            suite="tabletop",
            families=("touch",),
            episodes_per_task=1,
            workers=1,
            image_size=16,
            env_options=options,
        ),
        data,
    )
    torch.set_num_threads(1)
    run0 = TrainConfig(
        dataset=str(data),
        out=str(tmp_path / "run0"),
        policy_overrides=tiny,
        steps=2,
        batch_size=8,
        val_every=0,
        threads=1,
        warmup_steps=1,
    )
    train(run0, progress=False)
    cfg = DaggerConfig(
        dataset=str(data),
        checkpoint=str(tmp_path / "run0" / "checkpoint"),
        out=str(tmp_path / "dagger"),
        rounds=1,
        episodes_per_task=1,
        steps=1,
        workers=1,
        beta=0.0,
    )
    with pytest.raises(ValueError, match="unknown families"):  # the G1's families, not the Panda's
        run_dagger(dataclasses.replace(cfg, families=("stack",)), say=lambda _: None)
    state = run_dagger(cfg, say=lambda _: None)
    assert state["rounds"][0]["episodes"] == 3  # pick_up, touch, lift_box: the G1's families
    with EpisodeDataset(tmp_path / "dagger" / "data.h5") as ds:
        assert ds.embodiment is not None and ds.embodiment.name == NAME
        space = ds.embodiment.action_spaces[0]
        idle = np.r_[space.slice("waist"), space.slice("base"), space.slice("balance")]
        for i, info in enumerate(ds.infos):
            if "dagger_round" in info.meta:
                actions = ds.episode(i).actions
                # The expert keeps waist, base and balance at 0; an untrained policy's outputs are not.
                assert np.all(actions[:, idle] == 0.0), info.family
                assert np.all(np.abs(actions[:, :3]) <= 0.04 + 1e-6)


def test_takeover_gate_waits_its_patience_holds_and_hands_back() -> None:
    from vla.rollout.takeover import Takeover

    gate = Takeover(tolerance=0.25, patience=2, hold=3).gate(
        np.array([-1.0, 0.0, 5.0]), np.array([1.0, 1.0, 5.0])
    )
    label = np.array([0.0, 1.0, 5.0])
    near, far = np.array([0.4, 1.0, 5.0]), np.array([0.0, 0.5, 9.0])  # 0.2 and 0.5 of a range
    assert gate.discrepancy(near, label) == pytest.approx(0.2)
    assert gate.discrepancy(far, label) == pytest.approx(0.5)  # the fixed third dimension never counts
    steps = [gate.step(a, label) for a in (far, near, far, far, near, near, near, near)]
    # One stray step is forgiven; two in a row take over; it drives 3 steps, then hands back on agreement.
    assert steps == [False, False, False, True, True, True, False, False]
    gate.reset()
    assert [gate.step(np.array([np.nan, 1.0, 5.0]), label) for _ in range(2)] == [False, True]
    with pytest.raises(ValueError, match="tolerance"):
        Takeover(tolerance=0.0)
    with pytest.raises(ValueError, match="hold"):
        Takeover(hold=0)


def test_hg_dagger_keeps_only_the_experts_corrections_and_resumes_from_its_log(start, tmp_path) -> None:
    data, checkpoint = start
    out = tmp_path / "hg"
    cfg = DaggerConfig(
        dataset=str(data),
        checkpoint=str(checkpoint),
        out=str(out),
        families=(FAMILY,),
        rounds=1,
        episodes_per_task=2,
        steps=1,
        workers=1,
        mode="hg",
        tolerance=0.2,
    )
    (r1,) = run_dagger(cfg, say=lambda _: None)["rounds"]
    assert r1["beta"] == 0.0 and r1["episodes"] == 2
    assert 0 < r1["labelled_steps"] < r1["visited_steps"], r1  # the untrained policy strays, then is let go
    with EpisodeDataset(out / "data.h5") as ds:
        kept = [
            (info, ds.episode(i).actions) for i, info in enumerate(ds.infos) if "dagger_round" in info.meta
        ]
    assert len(kept) == r1["corrections"] >= 2
    assert sum(len(a) for _, a in kept) == r1["labelled_steps"]
    for info, actions in kept:
        assert np.all(actions[:, 6] == 1.0), "only the expert's actions: touch holds the gripper closed"
        assert info.meta["stretch_start"] >= 1, "the expert takes over after its patience, never at once"
    # A rollout whose log line was torn by a kill reruns, and its stretches are not written twice.
    log = out / "rollouts_1.jsonl"
    lines = log.read_text().splitlines()
    log.write_text(lines[0] + "\n" + lines[1][:5])
    (out / "dagger_state.json").unlink()
    (again,) = run_dagger(cfg, say=lambda _: None)["rounds"]
    assert again["resumed_with"] == 1 and again["labelled_steps"] == r1["labelled_steps"]
    with EpisodeDataset(out / "data.h5") as ds:
        assert sum("dagger_round" in info.meta for info in ds.infos) == len(kept)
    with pytest.raises(ValueError, match="mode"):
        DaggerConfig(dataset="d", checkpoint="c", mode="hgg")
