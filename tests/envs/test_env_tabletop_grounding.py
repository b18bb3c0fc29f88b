"""Labelled scenes for grounding pretraining: labels read from the simulator, views from many arm poses."""

from __future__ import annotations

import numpy as np
import pytest

from vla.envs.tabletop import tasks
from vla.envs.tabletop.env import TabletopEnv
from vla.envs.tabletop.grounding import render_scenes
from vla.envs.tabletop.labels import LABELS, scene_labels


@pytest.mark.parametrize("family", tasks.FAMILIES)
def test_env_grounding_labels_follow_the_instruction(family: str) -> None:
    env = TabletopEnv(family)
    try:
        for seed in range(3):
            env.reset(seed=seed)
            spec = env.task
            assert spec is not None
            labels, mask = scene_labels(env)
            assert labels.shape == mask.shape == (len(LABELS),)
            np.testing.assert_allclose(labels[:3], env.object_position(spec.target), atol=1e-6)
            place = labels[3:6]
            if family == "put_in":
                np.testing.assert_allclose(place[:2], spec.containers[spec.container], atol=1e-6)
            elif family in ("stack", "move_next_to"):
                np.testing.assert_allclose(place, env.object_position(spec.other), atol=1e-6)
            elif family == "push":
                moved = place[:2] - labels[:2]
                want = np.asarray(tasks.DIRECTION_VECTORS[spec.direction]) * tasks.PUSH_DISTANCE
                np.testing.assert_allclose(moved, want, atol=1e-6)
            elif family == "pick_up":
                assert place[2] - labels[2] == pytest.approx(tasks.LIFT_HEIGHT)
            else:
                np.testing.assert_allclose(place, labels[:3])
            # A block's yaw is labelled (as cos/sin of 4θ, on the unit circle); a round object's is not.
            assert mask[6] == mask[7] == (1.0 if spec.target[1] == "block" else 0.0)
            assert np.hypot(labels[6], labels[7]) == pytest.approx(1.0, abs=1e-5)
    finally:
        env.close()


def test_env_grounding_views_are_deterministic_and_varied() -> None:
    seeds, fams = [11, 12], ["touch", "put_in"]
    a = render_scenes(seeds, family_of=fams, views=3, image_size=(48, 48))
    b = render_scenes(seeds, family_of=fams, views=3, image_size=(48, 48))
    assert a["images"]["scene"].shape == (6, 48, 48, 3) and a["images"]["wrist"].shape == (6, 48, 48, 3)
    assert a["labels"].shape == a["mask"].shape == (6, len(LABELS))
    assert a["family"] == ["touch"] * 3 + ["put_in"] * 3
    for cam in ("scene", "wrist"):
        np.testing.assert_array_equal(a["images"][cam], b["images"][cam])  # same seeds, same views
    np.testing.assert_array_equal(a["labels"], b["labels"])
    # The arm moves between views of one scene: the wrist camera sees different things...
    w = a["images"]["wrist"].astype(np.int16)
    assert np.abs(w[0] - w[1]).mean() > 3 and np.abs(w[1] - w[2]).mean() > 3
    # ...while the scene, and so its labels, stay put.
    np.testing.assert_array_equal(a["labels"][0], a["labels"][2])
    # The instruction is the episode's own, naming the target; the first view is the episode's own
    # first frame (the one a policy reads the scene from), and the episode records the same labels.
    env = TabletopEnv("touch", image_size=(48, 48))
    obs, info = env.reset(seed=11)
    assert a["instruction"][0] == env.task.instruction
    for cam in ("scene", "wrist"):
        np.testing.assert_array_equal(a["images"][cam][0], obs["images"][cam])
    np.testing.assert_allclose(info["scene"], a["labels"][0], atol=1e-5)
    np.testing.assert_array_equal(info["scene_mask"], a["mask"][0])
    env.close()


def test_env_grounding_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="one family per seed"):
        render_scenes([1, 2], family_of=["touch"], views=1)
    with pytest.raises(ValueError, match="views must be"):
        render_scenes([1], family_of=["touch"], views=0)
