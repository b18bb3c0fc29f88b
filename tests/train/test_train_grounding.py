"""`vla train --grounding`: co-training on labelled views, reproducible on resume, refused when mismatched."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vla.config import TrainConfig
from vla.data.grounding import collect_grounding
from vla.train import train

ENV_KEYS = {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def views(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("grounding") / "views.h5"
    collect_grounding("tabletop", out=out, scenes=6, views=2, workers=1, image_size=16)
    return out


def _cfg(dataset: Path, views: Path, out: Path, tiny: tuple[str, ...], steps: int) -> TrainConfig:
    return TrainConfig(
        dataset=str(dataset),
        out=str(out),
        preset="grounded",
        policy_overrides=(*tiny, "goal_loss=0.0"),
        grounding=str(views),
        grounding_batch=4,
        steps=steps,
        batch_size=8,
        val_every=0,
        save_every=2,
        threads=1,
        warmup_steps=1,
    )


def test_train_refuses_views_of_another_robot(toy_dataset, views, tiny, tmp_path):
    # The toy robot has a 5-D state, the tabletop views a 22-D one: refused before training.
    with pytest.raises(ValueError, match="robot state"):
        train(_cfg(toy_dataset, views, tmp_path / "run", tiny, 2), progress=False)


def test_train_grounding_mismatches_fail_before_any_work(toy_dataset, views, tmp_path):
    env = {**__import__("os").environ, **ENV_KEYS}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "vla.cli.main",
                "train",
                str(toy_dataset),
                *args,
                "--out",
                str(tmp_path / "r"),
            ],
            env=env,
            capture_output=True,
            text=True,
        )

    need = run("--preset", "grounded")
    assert need.returncode == 2 and "--grounding FILE" in need.stderr
    useless = run("--grounding", str(views))
    assert useless.returncode == 2 and "no grounding head" in useless.stderr
    missing = run("--preset", "grounded", "--grounding", str(tmp_path / "nope.h5"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    assert not (tmp_path / "r").exists()  # nothing was started


def test_grounded_policy_trains_on_recorded_scenes_and_evaluates(views, tiny, tmp_path):
    """Collect (episodes record their scene) -> train `grounded` -> evaluate with the held estimate
    and with the oracle-scene diagnostic, which a policy without a grounding head refuses."""
    from vla.config import EvalConfig
    from vla.data.collect import collect
    from vla.data.sampler import WindowDataset
    from vla.evaluate import evaluate

    data = tmp_path / "touch.h5"
    collect("tabletop", out=data, families=("touch",), episodes_per_task=2, workers=1, image_size=16)
    assert "scene" in WindowDataset(data).episode_features  # the demonstrations carry their scene labels
    res = train(_cfg(data, views, tmp_path / "run", tiny, 2), progress=False)
    ckpt = res["checkpoint"]

    def run(checkpoint: str, oracle: bool, name: str) -> dict:
        cfg = EvalConfig(
            checkpoint=checkpoint,
            families=("touch",),
            episodes_per_task=1,
            workers=1,
            videos_per_family=0,
            oracle_features=oracle,
            out=str(tmp_path / name),
        )
        return evaluate(cfg)

    for oracle in (False, True):
        out = run(ckpt, oracle, f"eval_{oracle}")
        assert out["config"]["oracle_features"] is oracle and out["per_family"]["touch"]["episodes"] == 1
        assert out["config"]["execute_steps"] == 1  # 0 asked: the grounded preset's own re-planning
        # The held estimate's first-frame error is reported; an oracle run holds no estimate.
        err = out["per_family"]["touch"].get("estimate_cm")
        assert (err is None) is oracle
        if err is not None:
            assert err["scene.target_median"] >= 0 and np.isfinite(err["scene.place_median"])
            assert sorted(out["rollouts"][0]["estimate_cm"]) == ["scene.place", "scene.target"]
    plain_cfg = _cfg(data, views, tmp_path / "plain", tiny, 1)
    plain = train(dataclasses.replace(plain_cfg, preset="default", grounding=None), progress=False)
    with pytest.raises(ValueError, match="oracle_features needs a policy that estimates"):
        run(plain["checkpoint"], True, "eval_plain")
