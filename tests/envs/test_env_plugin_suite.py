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


def test_plugin_suite_is_found_by_name_with_a_did_you_mean() -> None:
    from vla.envs import get_suite

    assert get_suite(plugin_suite.NAME).features == (plugin_suite.GOAL,)
    with pytest.raises(KeyError, match="Did you mean 'plugin_reach'"):
        get_suite("plugin_reech")
