"""The `long_horizon_steps` split: single-step episodes that start after a long-horizon prelude."""

from __future__ import annotations

import numpy as np
import pytest

from vla.envs import get_suite
from vla.envs.tabletop import language, tasks
from vla.envs.tabletop import objects as obj
from vla.envs.tabletop.long_step_env import SPLIT, LongHorizonStepEnv

SMALL = (32, 32)


def _run_expert(env: LongHorizonStepEnv, seed: int) -> bool:
    suite = get_suite("tabletop")
    obs, _ = env.reset(seed=seed)
    expert = suite.expert(env)
    expert.reset()
    for _ in range(env.max_steps):
        obs, _, terminated, truncated, info = env.step(expert.act(obs))
        if terminated or truncated:
            return bool(info["success"])
    return False


@pytest.mark.parametrize("family", get_suite("tabletop").families)
def test_env_long_steps_episode_is_one_step_of_the_family(family: str) -> None:
    env = get_suite("tabletop").make(family, split=SPLIT, image_size=SMALL)
    try:
        obs, info = env.reset(seed=3)
        assert info["split"] == SPLIT and info["family"] == family
        assert language.parse(obs["instruction"])[0] == family
        assert env.max_steps == tasks.MAX_STEPS[family]
        assert len(info["scene"]) == 8 and len(info["prelude"]) == len(info["prelude_success"])
        assert _run_expert(env, 3)  # the expert acts from the scene the prelude left
    finally:
        env.close()


def test_env_long_steps_same_seed_same_episode() -> None:
    env = LongHorizonStepEnv("put_in", image_size=SMALL)
    try:
        a, ia = env.reset(seed=11)
        b, ib = env.reset(seed=11)
        assert a["instruction"] == b["instruction"] and ia["prelude"] == ib["prelude"]
        np.testing.assert_array_equal(a["state"], b["state"])
        np.testing.assert_array_equal(a["images"]["scene"], b["images"]["scene"])
        c, _ = env.reset(seed=12)
        assert not np.array_equal(a["state"], c["state"])
    finally:
        env.close()


def test_env_long_steps_prelude_changed_the_scene() -> None:
    """An episode after a prelude put_in starts with that object in its container, the arm away from home."""
    env = LongHorizonStepEnv("put_in", image_size=SMALL)
    try:
        for seed in range(40):
            _, info = env.reset(seed=seed)
            earlier = [s for s in info["prelude"] if s["skill"] == "put_in"]
            if earlier and all(info["prelude_success"]):
                break
        else:
            pytest.fail("no put_in episode of 40 had a successful put_in prelude")
        step = earlier[0]
        key = tuple(step["obj"].split())
        cx, cy = env.long.containers[step["container"]]
        half = obj.CONTAINERS[step["container"]].inner_half
        p = env.object_position(key)
        assert abs(p[0] - cx) < half[0] and abs(p[1] - cy) < half[1]
        # Scene labels are those of the step's start: the target is where it is now.
        np.testing.assert_allclose(info["scene"][:3], env.object_position(env.task.target), atol=1e-4)
    finally:
        env.close()


def test_env_long_steps_rejects_randomization_and_options() -> None:
    suite = get_suite("tabletop")
    with pytest.raises(ValueError, match="no domain randomization"):
        suite.make("push", split=SPLIT, randomize=True)
    env = LongHorizonStepEnv("push", image_size=SMALL)
    try:
        with pytest.raises(ValueError, match="takes no options"):
            env.reset(seed=0, options={"instruction": "push the red block to the left"})
        with pytest.raises(ValueError, match="seed must be"):
            env.reset(seed=-1)
    finally:
        env.close()
