"""Simulation throughput: env.step per second with both cameras rendered, in one and in N processes.

The scripted expert drives the arm so the measurement includes what real episodes cost (IK, grasp
contacts, carried objects), not an idle arm.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from dataclasses import dataclass

from vla.envs.tabletop.tasks import FAMILIES


@dataclass(frozen=True)
class SpeedResult:
    """Steps and times of one process.

    Attributes:
        steps: env.step calls made.
        step_seconds: time spent inside env.step (physics + IK + rendering + success check).
        wall_seconds: total time including resets and the expert.
        step_cpu_seconds: CPU time of this process (all its threads, including the GL rasterizer)
            inside env.step; unlike wall time it barely changes when other jobs share the cores.
    """

    steps: int
    step_seconds: float
    wall_seconds: float
    step_cpu_seconds: float

    @property
    def steps_per_s(self) -> float:
        return self.steps / max(self.step_seconds, 1e-9)

    @property
    def steps_per_cpu_s(self) -> float:
        return self.steps / max(self.step_cpu_seconds, 1e-9)

    @property
    def wall_steps_per_s(self) -> float:
        return self.steps / max(self.wall_seconds, 1e-9)


def measure_steps(seconds: float, *, image_size: tuple[int, int] = (96, 96), seed: int = 0) -> SpeedResult:
    """Steps expert-driven tabletop envs (cycling through the families) for about `seconds` seconds.

    Args:
        seconds: wall-clock budget (> 0).
        image_size: camera image (height, width).
        seed: first episode seed.
    """
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    from vla.envs.tabletop.env import TabletopEnv
    from vla.envs.tabletop.expert import TabletopExpert

    envs = [TabletopEnv(f, image_size=image_size) for f in FAMILIES]
    experts = [TabletopExpert(e) for e in envs]
    steps, in_step, in_step_cpu = 0, 0.0, 0.0
    start = time.perf_counter()
    episode = 0
    try:
        while time.perf_counter() - start < seconds:
            env, expert = envs[episode % len(envs)], experts[episode % len(envs)]
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
    finally:
        for env in envs:
            env.close()
    return SpeedResult(
        steps=steps,
        step_seconds=in_step,
        wall_seconds=time.perf_counter() - start,
        step_cpu_seconds=in_step_cpu,
    )


def _init_worker() -> None:
    # Before any GL context exists in the fresh (spawned) process: one llvmpipe thread per process.
    os.environ["LP_NUM_THREADS"] = "1"


def _worker(args: tuple[float, tuple[int, int], int]) -> SpeedResult:
    seconds, image_size, seed = args
    return measure_steps(seconds, image_size=image_size, seed=seed)


def measure_parallel(
    seconds: float, *, processes: int, image_size: tuple[int, int] = (96, 96)
) -> list[SpeedResult]:
    """Runs `measure_steps` in `processes` spawned processes at once (one software-GL thread each)."""
    if processes < 1:
        raise ValueError(f"processes must be >= 1, got {processes}")
    ctx = mp.get_context("spawn")
    with ctx.Pool(processes=processes, initializer=_init_worker) as pool:
        return pool.map(_worker, [(seconds, image_size, 1000 * i) for i in range(processes)])
