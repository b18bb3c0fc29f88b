"""Fixtures of the env tests: cached tabletop envs with tiny images (real MuJoCo, real rendering)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

from vla.envs.tabletop.env import TabletopEnv
from vla.envs.tabletop.expert import TabletopExpert

SMALL = (32, 32)


@pytest.fixture(scope="session")
def make_env() -> Iterator[Callable[..., TabletopEnv]]:
    """Returns a factory of envs cached per arguments (building one costs ~10 ms plus a GL context)."""
    cache: dict[tuple[Any, ...], TabletopEnv] = {}

    def make(family: str, **kwargs: Any) -> TabletopEnv:
        kwargs.setdefault("image_size", SMALL)
        key = (family, *sorted((k, str(v)) for k, v in kwargs.items()))
        if key not in cache:
            cache[key] = TabletopEnv(family, **kwargs)
        return cache[key]

    yield make
    for env in cache.values():
        env.close()


def run_expert(env: TabletopEnv, seed: int) -> tuple[bool, int]:
    """Runs the scripted expert for one episode; returns (success, steps)."""
    expert = TabletopExpert(env)
    obs, _ = env.reset(seed=seed)
    expert.reset()
    info: dict[str, Any] = {"success": False}
    steps = 0
    for steps in range(1, env.max_steps + 1):  # noqa: B007
        obs, _, terminated, truncated, info = env.step(expert.act(obs))
        if terminated or truncated:
            break
    return bool(info["success"]), steps


def hold_action(env: TabletopEnv, *, gripper: float = 0.0) -> np.ndarray:
    """An ee_delta action that keeps the arm where it is."""
    a = np.zeros(7, dtype=np.float32)
    a[6] = gripper
    return a
