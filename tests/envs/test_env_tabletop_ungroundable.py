"""The `ungroundable` split: four kinds of instruction over train scenes; holding still for the window
succeeds, reaching for an object fails even without touching it."""

from __future__ import annotations

import numpy as np
import pytest

from vla.envs.tabletop import objects as obj
from vla.envs.tabletop.env import TabletopEnv
from vla.envs.tabletop.expert import TabletopExpert
from vla.envs.tabletop.tasks import sample_episode
from vla.envs.tabletop.ungroundable import HOLD_STEPS, KINDS, UNKNOWN_OBJECTS, UNKNOWN_VERBS


def test_the_split_draws_every_kind_and_each_is_what_it_says():
    seen = set()
    for seed in range(60):
        spec = sample_episode("pick_up", "ungroundable", np.random.default_rng(seed))
        seen.add(spec.ungroundable)
        named = spec.instruction
        if spec.ungroundable == "absent_object":
            present = {obj.describe(*k) for k in spec.objects}
            names = {obj.describe(*p) for p in obj.TRAIN_PAIRS}
            assert any(n in named for n in names - present) and not any(n in named for n in present)
        elif spec.ungroundable == "unknown_verb":
            assert any(v in named.split() for v in UNKNOWN_VERBS)
        elif spec.ungroundable == "unknown_object":
            assert any(o in named for o in UNKNOWN_OBJECTS)
    assert seen == set(KINDS)


@pytest.fixture(scope="module")
def env():
    e = TabletopEnv("touch", split="ungroundable", image_size=(16, 16))
    yield e
    e.close()


def test_holding_for_the_window_succeeds(env):
    obs, info = env.reset(seed=3)
    assert info["ungroundable"] in KINDS and env.max_steps == HOLD_STEPS
    expert = TabletopExpert(env)
    done = False
    for step in range(HOLD_STEPS):
        obs, _, done, truncated, _ = env.step(expert.act(obs))
        assert done == (step == HOLD_STEPS - 1)  # judged at the end of the window, not before
        if done or truncated:
            break
    assert done


def test_reaching_towards_an_object_fails_without_touching_it(env):
    env.reset(seed=4)
    toward = next(iter(env.task.objects))
    for _ in range(HOLD_STEPS):
        pos, _ = env.tcp_pose()
        goal = env.object_position(toward) + np.array([0.0, 0.0, 0.12])  # stops 12 cm above it
        delta = np.clip(goal - pos, -0.02, 0.02)
        _, _, done, truncated, _ = env.step(np.array([*delta, 0, 0, 0, 0.0], np.float32))
        if done or truncated:
            break
    assert truncated and not done
