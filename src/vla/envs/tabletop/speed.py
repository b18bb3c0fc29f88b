"""Simulation throughput: env.step per second with every camera rendered, in one and in N processes.

The scripted expert drives the robot so the measurement includes what real episodes cost (IK or the
whole-body controller, grasp contacts, carried objects), not an idle arm. The envs are built by
`suite.make(family, **env_options)` like every rollout's (`EpisodeJob.env_options`), so
`env_options=(("robot", "humanoid"),)` measures the G1 with the same code as the Panda.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from dataclasses import dataclass
from typing import Any

SUITE = "tabletop"


@dataclass(frozen=True)
class SpeedResult:
    """Steps and times of one process.

    Attributes:
        steps: env.step calls made.
        step_seconds: time spent inside env.step (physics + IK + rendering + success check).
        wall_seconds: total time including resets and the expert.
        step_cpu_seconds: CPU time of this process (all its threads, including the GL rasterizer)
            inside env.step; unlike wall time it barely changes when other jobs share the cores.
        cameras: cameras rendered per step.
    """

    steps: int
    step_seconds: float
    wall_seconds: float
    step_cpu_seconds: float
    cameras: int = 0

    @property
    def steps_per_s(self) -> float:
        return self.steps / max(self.step_seconds, 1e-9)

    @property
    def steps_per_cpu_s(self) -> float:
        return self.steps / max(self.step_cpu_seconds, 1e-9)

    @property
    def wall_steps_per_s(self) -> float:
        return self.steps / max(self.wall_seconds, 1e-9)


def measure_steps(
    seconds: float,
    *,
    image_size: tuple[int, int] = (96, 96),
    seed: int = 0,
    env_options: tuple[tuple[str, Any], ...] = (),
) -> SpeedResult:
    """Steps expert-driven tabletop envs (cycling through the families) for about `seconds` seconds.

    Args:
        seconds: wall-clock budget (> 0).
        image_size: camera image (height, width).
        seed: first episode seed.
        env_options: further options of the suite's `make` as (name, value) pairs, e.g.
            (("robot", "humanoid"),); the families are the ones those options accept.

    Raises:
        KeyError: an option names an unknown robot (the message lists the known ones).
    """
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    from vla.envs import get_suite
    from vla.envs.base import option_families

    suite = get_suite(SUITE)
    families = option_families(suite, env_options)
    # Envs are built when their family's turn comes (a short run needs one; the G1's takes ~5 s), and
    # the building is not part of the measured wall time.
    built: dict[str, tuple[Any, Any]] = {}
    building = 0.0
    steps, in_step, in_step_cpu = 0, 0.0, 0.0
    start = time.perf_counter()
    episode = 0
    try:
        while time.perf_counter() - start - building < seconds:
            family = families[episode % len(families)]
            if family not in built:
                t = time.perf_counter()
                env = suite.make(family, image_size=image_size, **dict(env_options))
                built[family] = (env, suite.expert(env))
                building += time.perf_counter() - t
            env, expert = built[family]
            obs, _ = env.reset(seed=seed + episode)
            expert.reset()
            episode += 1
            for _ in range(env.max_steps):
                action = expert.act(obs)
                t, c = time.perf_counter(), time.process_time()
                obs, _, terminated, truncated, _ = env.step(action)
                in_step += time.perf_counter() - t
                in_step_cpu += time.process_time() - c
                steps += 1
                if terminated or truncated:
                    break
        cameras = len(next(iter(built.values()))[0].embodiment.cameras)
    finally:
        for env, _ in built.values():
            env.close()
    return SpeedResult(
        steps=steps,
        step_seconds=in_step,
        wall_seconds=time.perf_counter() - start - building,
        step_cpu_seconds=in_step_cpu,
        cameras=cameras,
    )


def _init_worker() -> None:
    # Before any GL context exists in the fresh (spawned) process: one llvmpipe thread per process.
    os.environ["LP_NUM_THREADS"] = "1"


def _worker(args: tuple[float, tuple[int, int], int, tuple[tuple[str, Any], ...]]) -> SpeedResult:
    seconds, image_size, seed, env_options = args
    return measure_steps(seconds, image_size=image_size, seed=seed, env_options=env_options)


def measure_parallel(
    seconds: float,
    *,
    processes: int,
    image_size: tuple[int, int] = (96, 96),
    env_options: tuple[tuple[str, Any], ...] = (),
) -> list[SpeedResult]:
    """Runs `measure_steps` in `processes` spawned processes at once (one software-GL thread each)."""
    if processes < 1:
        raise ValueError(f"processes must be >= 1, got {processes}")
    ctx = mp.get_context("spawn")
    with ctx.Pool(processes=processes, initializer=_init_worker) as pool:
        return pool.map(
            _worker, [(seconds, image_size, 1000 * i, tuple(env_options)) for i in range(processes)]
        )
