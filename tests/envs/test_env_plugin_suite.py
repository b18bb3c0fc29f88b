"""The plug-in design: a suite added by test files alone, with a feature of its own, goes through
collection, the dataset, training and the checkpoint without any edit to the core."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.envs import plugin_suite
from vla.envs.base import register_suite


@pytest.fixture(scope="module", autouse=True)
def registered() -> None:
    register_suite(plugin_suite.NAME, plugin_suite.ReachSuite)


def test_plugin_suite_feature_flows_from_env_to_checkpoint(tmp_path: Path) -> None:
    from vla.config import TrainConfig
    from vla.data.collect import collect
    from vla.data.reader import EpisodeDataset
    from vla.data.sampler import WindowDataset
    from vla.models.checkpoint import read_metadata
    from vla.train import train

    data = tmp_path / "reach.h5"
    report = collect(plugin_suite.NAME, out=data, episodes_per_task=4, workers=1, image_size=16)
    assert report["episodes"] == 4
    assert EpisodeDataset(data).features == (plugin_suite.GOAL,)  # the declaration travels with the data
    batch = WindowDataset(data).get_batch(np.arange(3))
    assert tuple(batch.features["goal_spot"].shape) == (3, 4)
    assert batch.features["goal_spot_mask"][:, 3].sum() == 0
    assert tuple(batch.features["subgoal"].shape) == (3, 3)  # derived from ee_pos + gripper
    res = train(
        TrainConfig(
            dataset=str(data),
            out=str(tmp_path / "run"),
            preset="default",
            policy_overrides=(
                "image_size=[16,16]",
                "vision.channels=[8,16]",
                "vision.strides=[2,2]",
                "vision.num_keypoints=4",
                "fusion.dim=32",
                "head.hidden=32",
            ),
            steps=2,
            batch_size=4,
            val_every=0,
            save_every=2,
            threads=1,
            warmup_steps=1,
        ),
        progress=False,
    )
    meta = read_metadata(res["checkpoint"])
    assert [f["name"] for f in meta["features"]] == ["goal_spot"]
    assert json.loads(json.dumps(meta["features"][0]))["parts"][0]["kind"] == "position"
    # `vla eval` of the checkpoint on the suite: spawned workers, the deployed controller stack.
    from vla.config import EvalConfig
    from vla.evaluate import evaluate

    out = evaluate(
        EvalConfig(
            checkpoint=str(res["checkpoint"]),
            suite=plugin_suite.NAME,
            episodes_per_task=2,
            workers=1,
            videos_per_family=0,
            out=str(tmp_path / "eval"),
        )
    )
    assert out["suite"] == plugin_suite.NAME and out["per_family"]["reach"]["episodes"] == 2
    assert (tmp_path / "eval" / "results.json").is_file()


def test_plugin_suite_is_found_by_name_with_a_did_you_mean() -> None:
    from vla.envs import get_suite

    assert get_suite(plugin_suite.NAME).features == (plugin_suite.GOAL,)
    with pytest.raises(KeyError, match="Did you mean 'plugin_reach'"):
        get_suite("plugin_reech")


def test_plugin_suite_evaluates_in_worker_processes(tmp_path: Path) -> None:
    """`vla eval`'s path (spawned workers) runs a suite registered at run time, and the expert's
    episodes succeed through the same engine."""
    from vla.rollout import make_jobs, run_episodes

    jobs = make_jobs(plugin_suite.NAME, ["reach"], episodes_per_family=2, image_size=(16, 16))
    results = run_episodes(jobs, workers=2)
    assert [r.success for r in results] == [True, True]
    assert results[0].meta["goal_spot"][3] == 0.02  # the declared episode feature reaches the result


def test_an_env_failure_reason_reaches_the_results() -> None:
    """An env that ends an episode as a failure names the reason (`info["failure"]`); the episode
    result carries it and the evaluator counts it by reason."""
    from vla.config import EvalConfig
    from vla.evaluate import summarize
    from vla.rollout import make_jobs
    from vla.rollout.loop import run_episode

    class Away:  # drives straight out of the box
        def reset(self) -> None:
            pass

        def act(self, obs: dict) -> np.ndarray:
            return np.array([0.05, 0.0, 0.0, 0.0], dtype=np.float32)

    suite = plugin_suite.ReachSuite()
    (job,) = make_jobs(plugin_suite.NAME, ["reach"], episodes_per_family=1, image_size=(16, 16))
    env = suite.make("reach")
    lost = run_episode(env, Away(), job)
    reached = run_episode(env, suite.expert(env), job)
    assert (lost.failure, lost.success, lost.steps) == ("left_box", False, 7)
    assert (reached.failure, reached.success) == ("", True)
    out = summarize([lost, reached], cfg=EvalConfig(checkpoint="x", suite=plugin_suite.NAME), wall_s=1.0)
    assert out["failures_by_reason"] == {"left_box": 1}
    assert out["per_family"]["reach"]["failures_by_reason"] == {"left_box": 1}
    assert out["rollouts"][0]["failure"] == "left_box" and "failure" not in out["rollouts"][1]
