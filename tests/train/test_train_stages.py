"""Staged fine-tuning and per-module learning rates, from a `--config` file (docs/examples/three_stage.json)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vla.config import Stage, TrainConfig, from_dict, read_config_file
from vla.data.reader import EpisodeDataset
from vla.models import build_policy
from vla.models.language import build_vocab
from vla.models.policy import PREFIXES
from vla.train import build_policy_config, lr_at, make_optimizer, train
from vla.train_optim import check_module_names, set_lr

RECIPE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "three_stage.json"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def _tiny_policy(dataset: Path, cfg: TrainConfig):
    with EpisodeDataset(dataset) as reader:
        pcfg = build_policy_config(cfg).override({"language.vocab": build_vocab(reader.instructions)})
        return build_policy(pcfg, embodiment=reader.embodiment, stats=reader.stats)


def test_one_adamw_group_pair_per_module_with_its_scaled_lr(toy_dataset, tiny):
    cfg = TrainConfig(dataset=str(toy_dataset), policy_overrides=tiny, lr_scale={"vision": 0.1, "head": 3.0})
    policy = _tiny_policy(toy_dataset, cfg)
    optimizer = make_optimizer(policy, cfg)
    trainable = {id(p): n for n, p in policy.named_parameters() if p.requires_grad}
    grouped = [id(p) for g in optimizer.param_groups for p in g["params"]]
    assert sorted(grouped) == sorted(trainable), "every trainable parameter in exactly one group"
    for g in optimizer.param_groups:
        names = [trainable[id(p)] for p in g["params"]]
        assert {n.split(".", 1)[0] for n in names} == {g["module"]}
        assert all((p.ndim >= 2) == (g["weight_decay"] > 0) for p in g["params"])
    assert {g["module"] for g in optimizer.param_groups} == {
        m for m, ps in policy.param_groups_by_name().items() if ps
    }
    logged = set_lr(optimizer, 2e-3)
    for g in optimizer.param_groups:
        assert g["lr"] == pytest.approx(2e-3 * {"vision": 0.1, "head": 3.0}.get(g["module"], 1.0))
    assert logged == {"lr/vision": pytest.approx(2e-4), "lr/head": pytest.approx(6e-3)}


def test_module_name_typos_are_refused_with_a_did_you_mean():
    with pytest.raises(
        ValueError, match=r"lr_scale\['visoin'\]: 'visoin' is not a policy module\. Did you mean 'vision'"
    ):
        check_module_names(TrainConfig(dataset="d", lr_scale={"visoin": 0.1}), PREFIXES)
    with pytest.raises(ValueError, match=r"stages\[1\]\.frozen: 'langauge' .* Did you mean 'language'"):
        check_module_names(
            TrainConfig(dataset="d", stages=(Stage(2, ("vision",)), Stage(4, ("langauge",)))), PREFIXES
        )
    with pytest.raises(ValueError, match=r"lr_scale\['vision'\] must be a finite number >= 0"):
        TrainConfig(dataset="d", lr_scale={"vision": -1.0})


def _recipe(dataset: Path, out: Path, tiny: tuple[str, ...]) -> TrainConfig:
    """The shipped recipe, its stage ends moved to steps 2 and 5 of an 8-step run (its frozen sets and
    learning-rate scales as shipped)."""
    recipe = from_dict(TrainConfig, {**read_config_file(RECIPE), "dataset": str(dataset)})
    assert [s.frozen for s in recipe.stages] == [("vision", "language"), ("language",)]
    assert recipe.lr_scale == {"vision": 0.1, "language": 0.1}
    return dataclasses.replace(
        recipe,
        out=str(out),
        policy_overrides=tiny,  # word-vocabulary language: trainable, so its stage shows
        steps=8,
        warmup_steps=2,
        stages=tuple(
            dataclasses.replace(s, until_step=e) for s, e in zip(recipe.stages, (2, 5), strict=True)
        ),
        batch_size=8,
        threads=1,
        val_every=0,
        save_every=0,
    )


def test_three_stage_recipe_trains_what_each_stage_unfreezes_at_its_scaled_lr(toy_dataset, tiny, tmp_path):
    torch.set_num_threads(1)
    cfg = _recipe(toy_dataset, tmp_path / "staged", tiny)
    # A time budget this small stops (and saves) after every step; each resume runs the next one, so
    # the weights after every step can be read, and the run crosses both stage ends on a resume.
    states = []
    for step in range(cfg.steps):
        train(dataclasses.replace(cfg, time_budget_s=1e-9), resume=step > 0, progress=False)
        states.append(load_file(str(tmp_path / "staged" / "train_state" / "model.safetensors")))

    def changed(a: int, b: int) -> set[str]:
        """Modules whose weights changed from after step a to after step b."""
        return {k.split(".", 1)[0] for k in states[a] if not torch.equal(states[a][k], states[b][k])}

    modules = {m for m, ps in _tiny_policy(toy_dataset, cfg).param_groups_by_name().items() if ps}
    assert {"vision", "language", "head", "goal"} <= modules
    assert changed(0, 1) == modules - {"vision", "language"}  # stage 1: the encoders frozen
    assert changed(1, 4) == modules - {"language"}  # stage 2: vision unfrozen
    assert changed(4, 7) == modules  # stage 3: everything
    lines = [json.loads(x) for x in (tmp_path / "staged" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == list(range(1, 9))
    for x in lines:
        assert x["lr"] == pytest.approx(lr_at(x["step"] - 1, cfg))
        assert x["lr/vision"] == pytest.approx(0.1 * x["lr"]) and x["lr/language"] == pytest.approx(
            0.1 * x["lr"]
        )
    # Eight one-step resumes end at the weights of one uninterrupted run.
    train(dataclasses.replace(cfg, out=str(tmp_path / "straight")), progress=False)
    straight = load_file(str(tmp_path / "straight" / "train_state" / "model.safetensors"))
    worst = max(float((straight[k].double() - states[-1][k].double()).abs().max()) for k in straight)
    assert worst <= 1e-6, f"resumed staged run differs by {worst}"


def test_cli_reads_the_config_file_under_flags_and_set(toy_dataset, tiny, tmp_path):
    args = [a for o in tiny for a in ("-p", o)]
    run = subprocess.run(
        [
            *(sys.executable, "-m", "vla.cli.main", "train", str(toy_dataset), "--config", str(RECIPE)),
            *args,
            *("--out", str(tmp_path / "run"), "--steps", "3", "--batch-size", "8"),
            *("--set", "threads=1", "--set", "val_every=0", "--set", "lr_scale.head=0.5"),
        ],
        env=ENV,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    saved = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert saved["steps"] == 3 and saved["warmup_steps"] == 500  # the flag wins; the file fills in
    assert saved["lr_scale"] == {"vision": 0.1, "language": 0.1, "head": 0.5}
    assert saved["stages"][0] == {"until_step": 500, "frozen": ["vision", "language"]}
    assert saved["policy_overrides"] == list(tiny)
    assert json.loads(run.stdout.splitlines()[-1])["steps"] == 3
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"stpes": 3}))
    typo = subprocess.run(
        [sys.executable, "-m", "vla.cli.main", "train", str(toy_dataset), "--config", str(bad)],
        env=ENV,
        capture_output=True,
        text=True,
    )
    assert typo.returncode == 2 and "unknown field 'stpes'. Did you mean 'steps'" in typo.stderr
    assert np.isfinite(json.loads(run.stdout.splitlines()[-1])["metrics"]["loss"])
