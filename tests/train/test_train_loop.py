"""The training loop: schedule, checkpoints, staged freezing, bit-exact resume after SIGKILL, DDP."""

from __future__ import annotations

import itertools
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

from tests.train.conftest import kill_at_first_save
from vla.config import Stage, TrainConfig, apply_overrides
from vla.data.reader import EpisodeDataset
from vla.data.sampler import WindowConfig, WindowDataset
from vla.models import Policy, build_policy
from vla.models.language import build_vocab
from vla.train import _apply_stage, _LossModule, build_policy_config, lr_at, make_optimizer, train, train_step
from vla.types import Observation

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "vla.cli.main", *args]


def _policy_args(tiny: tuple[str, ...]) -> list[str]:
    return [a for o in tiny for a in ("--policy", o)]


def test_lr_warms_up_then_decays_to_floor():
    cfg = TrainConfig(dataset="x", steps=100, warmup_steps=10, lr=1e-3, min_lr_ratio=0.1)
    lrs = [lr_at(s, cfg) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-4)
    assert max(lrs) == pytest.approx(1e-3)
    assert lrs[-1] == pytest.approx(1e-4, rel=0.01)
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(lrs[10:]))


def test_overrides_parse_by_type_and_reject_typos():
    cfg = apply_overrides(TrainConfig(dataset="x"), ["steps=7", "families=a,b", "augment=false", "lr=0.01"])
    assert (cfg.steps, cfg.families, cfg.augment, cfg.lr) == (7, ("a", "b"), False, 0.01)
    with pytest.raises(ValueError, match="Did you mean 'steps'"):
        apply_overrides(cfg, ["stepz=3"])
    with pytest.raises(ValueError, match="'steps': expected an integer, got 'many'"):
        apply_overrides(cfg, ["steps=many"])
    with pytest.raises(ValueError, match="batch_size must be positive"):
        apply_overrides(cfg, ["batch_size=0"])


def test_train_writes_a_loadable_checkpoint_with_stats(toy_dataset, tiny, tmp_path):
    torch.set_num_threads(1)
    cfg = TrainConfig(
        dataset=str(toy_dataset),
        out=str(tmp_path / "run"),
        policy_overrides=tiny,
        steps=6,
        batch_size=8,
        val_every=3,
        save_every=3,
        threads=1,
        warmup_steps=2,
    )
    summary = train(cfg, progress=False)
    assert summary["steps"] == 6
    ckpt = Path(summary["checkpoint"])
    assert {"config.json", "model.safetensors", "stats.json", "metadata.json"} <= {
        p.name for p in ckpt.iterdir()
    }
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3, 4, 5, 6]
    assert "val_loss" in lines[2] and any(k.startswith("val_loss/") for k in lines[2])
    policy = Policy.from_pretrained(ckpt)
    obs = Observation(
        images={c: np.zeros((16, 16, 3), np.uint8) for c in ("scene", "wrist")},
        state=np.zeros(5, np.float32),
        instruction="move the red square left",
    )
    assert policy.predict(obs).actions.shape == (1, 4, 3)
    with pytest.raises(FileExistsError, match="--resume"):
        train(cfg, progress=False)


def test_staged_freezing_keeps_vision_fixed_until_its_stage_ends(toy_dataset, tiny):
    torch.set_num_threads(1)
    cfg = TrainConfig(
        dataset=str(toy_dataset),
        policy_overrides=tiny,
        steps=4,
        batch_size=8,
        ema_decay=0.0,
        stages=(Stage(until_step=2, frozen=("vision",)),),
    )
    reader = EpisodeDataset(toy_dataset)
    pcfg = build_policy_config(cfg).override({"language.vocab": build_vocab(reader.instructions)})
    policy = build_policy(pcfg, embodiment=reader.embodiment, stats=reader.stats)
    data = WindowDataset(reader, config=WindowConfig(obs_horizon=1, action_horizon=4))
    base = {n: p.requires_grad for n, p in policy.named_parameters()}
    optimizer = make_optimizer(policy, cfg)
    snapshot = {n: p.detach().clone() for n, p in policy.named_parameters()}

    def changed(prefix: str) -> bool:
        return any(
            not torch.equal(snapshot[n], p) for n, p in policy.named_parameters() if n.startswith(prefix)
        )

    for step in range(4):
        _apply_stage(policy, base, cfg.frozen_prefixes(step))
        batch = data.get_batch(np.arange(step * 8, step * 8 + 8))
        train_step(_LossModule(policy), batch, optimizer, lr=1e-2, grad_clip=1.0)
        if step == 1:
            assert not changed("vision."), "vision trained while frozen"
            assert changed("head.")
    assert changed("vision."), "vision never trained after its stage ended"
    reader.close()


def test_resume_after_sigkill_ends_at_the_same_weights(toy_dataset_factory, tiny, tmp_path):
    data = toy_dataset_factory(tmp_path / "toy.h5")
    common = [
        str(data),
        *_policy_args(tiny),
        "--steps",
        "150",
        "--batch-size",
        "8",
        "--set",
        "threads=1",
        "--set",
        "val_every=50",
        "--set",
        "save_every=10",
    ]
    subprocess.run(
        _cli("train", *common, "--out", str(tmp_path / "full")), env=ENV, check=True, capture_output=True
    )

    run = tmp_path / "killed"
    killed_at, returncode = kill_at_first_save(_cli("train", *common, "--out", str(run)), run, ENV)
    assert killed_at is not None and killed_at < 150, "the run must be killed mid-way"
    assert returncode == -signal.SIGKILL
    done = subprocess.run(
        _cli("train", *common, "--out", str(run), "--resume"), env=ENV, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    a = load_file(str(tmp_path / "full" / "train_state" / "model.safetensors"))
    b = load_file(str(run / "train_state" / "model.safetensors"))
    assert a.keys() == b.keys()
    worst = max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())
    assert worst <= 1e-6, f"resumed weights differ by {worst}"
    ea = load_file(str(tmp_path / "full" / "checkpoint" / "model.safetensors"))
    eb = load_file(str(run / "checkpoint" / "model.safetensors"))
    assert (
        max(float((ea[k].double() - eb[k].double()).abs().max()) for k in ea if ea[k].is_floating_point())
        <= 1e-6
    )


def test_two_process_ddp_equals_one_process_on_the_same_global_batch(toy_dataset_factory, tiny, tmp_path):
    data = toy_dataset_factory(tmp_path / "toy.h5")
    common = [
        str(data),
        *_policy_args((*tiny, "vision.random_shift=0", "fusion.dropout=0.0")),
        "--steps",
        "5",
        "--batch-size",
        "8",
        "--set",
        "threads=1",
        "--set",
        "augment=false",
        "--set",
        "val_every=0",
        "--set",
        "ema_decay=0",
    ]
    single = subprocess.run(
        _cli("train", *common, "--out", str(tmp_path / "one")), env=ENV, capture_output=True, text=True
    )
    assert single.returncode == 0, single.stderr[-2000:]
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "vla.cli.main",
    ]
    ddp = subprocess.run(
        [*torchrun, "train", *common, "--out", str(tmp_path / "two")],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    a = load_file(str(tmp_path / "one" / "train_state" / "model.safetensors"))
    b = load_file(str(tmp_path / "two" / "train_state" / "model.safetensors"))
    worst = max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())
    # Model-internal randomness (dropout, random shift) is off: only float summation order differs.
    assert worst < 5e-5, f"DDP weights differ from single-process weights by {worst}"


def test_cli_reports_bad_inputs_before_any_work(toy_dataset, tmp_path):
    missing = subprocess.run(
        _cli("train", str(tmp_path / "nope.h5")), env=ENV, capture_output=True, text=True
    )
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    typo = subprocess.run(
        _cli("train", str(toy_dataset), "--preset", "defualt"), env=ENV, capture_output=True, text=True
    )
    assert typo.returncode == 2 and "Did you mean 'default'" in typo.stderr
    bad = subprocess.run(
        _cli("train", str(toy_dataset), "--set", "lr=-1"), env=ENV, capture_output=True, text=True
    )
    assert bad.returncode == 2 and "lr must be positive" in bad.stderr
