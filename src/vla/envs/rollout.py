"""Running episodes of any actor (scripted expert or policy) on any registered suite, in parallel.

The worker pattern is shared by `vla env expert`, the data collector and the evaluator: the parent
sends small picklable `EpisodeJob`s; each worker process builds (and caches) the env for a job and
calls a picklable factory to build the actor inside the worker, so nothing heavy (GL contexts, torch
modules) ever crosses a process boundary. Workers use `spawn` (a forked EGL/OpenMP state is unsafe)
and one software-rendering thread each (`LP_NUM_THREADS=1`): with one process per core, extra
llvmpipe threads only fight each other (../shared/FACTS.md).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing import util as mp_util
from typing import Any, Protocol

import numpy as np

from vla.envs.base import Env, Suite, get_suite


class Actor(Protocol):
    """Anything that acts in an env: a scripted expert or a policy wrapper."""

    def reset(self) -> None: ...

    def act(self, obs: dict[str, Any]) -> np.ndarray: ...


ActorFactory = Callable[[Env, Suite], Actor]


@dataclass(frozen=True)
class EpisodeJob:
    """One episode to run: which env (suite/family/split/options) and which seed."""

    suite: str
    family: str
    seed: int
    split: str = "train"
    image_size: tuple[int, int] = (96, 96)
    action_mode: str = "ee_delta"
    randomize: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int | np.integer):
            raise TypeError(f"EpisodeJob.seed must be an int, got {type(self.seed).__name__}")

    @property
    def env_key(self) -> tuple[Any, ...]:
        return (self.suite, self.family, self.split, tuple(self.image_size), self.action_mode, self.randomize)


@dataclass
class EpisodeResult:
    """What one episode produced.

    Attributes:
        job: the job that was run.
        success: whether the env reported success before the episode ended.
        steps: control steps taken.
        instruction: the episode's command.
        meta: the env's `episode_meta` (empty if the env has none).
        seconds: wall time of the episode (reset + steps), in its worker.
        frames: if requested, uint8 [N+1, Hi, V*Wi, 3]: all cameras side by side per observation.
        steps_data: if requested, the observations and actions:
            "images": camera -> uint8 [N, Hi, Wi, 3] (the observation before each action),
            "state": float32 [N, S], "action": float32 [N, A], "reward": float32 [N].
    """

    job: EpisodeJob
    success: bool
    steps: int
    instruction: str
    meta: dict[str, Any]
    seconds: float
    frames: np.ndarray | None = None
    steps_data: dict[str, Any] | None = field(default=None, repr=False)


def expert_actor(env: Env, suite: Suite) -> Actor:
    """The default actor factory: the suite's scripted expert (picklable, for worker processes)."""
    return suite.expert(env)


def run_episode(
    env: Env, actor: Actor, job: EpisodeJob, *, record_frames: bool = False, record_steps: bool = False
) -> EpisodeResult:
    """Runs one episode of `actor` in `env` with the job's seed until success or truncation.

    Args:
        env: the environment (already built for the job's family/split).
        actor: resets after `env.reset` and acts on each observation.
        job: the episode description (its seed is used).
        record_frames: keep side-by-side camera frames for a video.
        record_steps: keep observations and actions (for datasets).
    """
    start = time.perf_counter()
    obs, _ = env.reset(seed=int(job.seed))
    actor.reset()
    frames: list[np.ndarray] = []
    images: dict[str, list[np.ndarray]] = {cam: [] for cam in obs["images"]}
    states: list[np.ndarray] = []
    actions: list[np.ndarray] = []
    rewards: list[float] = []
    success, steps = False, 0
    for _ in range(env.max_steps):
        if record_frames:
            frames.append(np.concatenate(list(obs["images"].values()), axis=1))
        action = np.asarray(actor.act(obs), dtype=np.float32)
        if record_steps:
            for cam, img in obs["images"].items():
                images[cam].append(img)
            states.append(obs["state"])
            # A DART expert executes a perturbed action but labels the step with its clean intent.
            label = getattr(actor, "label", None)
            actions.append(action if label is None else np.asarray(label, dtype=np.float32))
        obs, reward, terminated, truncated, info = env.step(action)
        rewards.append(float(reward))
        steps += 1
        success = bool(info["success"])
        if terminated or truncated:
            break
    if record_frames:
        frames.append(np.concatenate(list(obs["images"].values()), axis=1))
    steps_data = None
    if record_steps:
        steps_data = {
            "images": {cam: np.stack(v) for cam, v in images.items()},
            "state": np.stack(states).astype(np.float32),
            "action": np.stack(actions).astype(np.float32),
            "reward": np.asarray(rewards, dtype=np.float32),
        }
    return EpisodeResult(
        job=job,
        success=success,
        steps=steps,
        instruction=str(obs["instruction"]),
        meta=dict(getattr(env, "episode_meta", {})),
        seconds=time.perf_counter() - start,
        frames=np.stack(frames) if record_frames else None,
        steps_data=steps_data,
    )


# ---------------------------------------------------------------------- worker side
_WORKER: dict[str, Any] = {}


def _close_worker_envs() -> None:
    for env, _ in _WORKER.get("pairs", {}).values():
        env.close()
    _WORKER.clear()


def _init_worker(make_actor: ActorFactory, record_frames: bool, record_steps: bool) -> None:
    os.environ["LP_NUM_THREADS"] = "1"
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
    os.environ["OMP_NUM_THREADS"] = "1"
    _WORKER.update(make_actor=make_actor, record_frames=record_frames, record_steps=record_steps, pairs={})
    # Pool workers exit through multiprocessing's finalizers, not atexit: close GL contexts there.
    mp_util.Finalize(None, _close_worker_envs, exitpriority=10)


def _env_for(
    job: EpisodeJob, cache: dict[tuple[Any, ...], tuple[Env, Actor]], make_actor: ActorFactory
) -> tuple[Env, Actor]:
    if job.env_key not in cache:
        suite = get_suite(job.suite)
        env = suite.make(
            job.family,
            split=job.split,
            image_size=tuple(job.image_size),
            action_mode=job.action_mode,
            randomize=job.randomize,
        )
        cache[job.env_key] = (env, make_actor(env, suite))
    return cache[job.env_key]


def _run_in_worker(item: tuple[int, EpisodeJob]) -> tuple[int, EpisodeResult]:
    index, job = item
    env, actor = _env_for(job, _WORKER["pairs"], _WORKER["make_actor"])
    result = run_episode(
        env, actor, job, record_frames=_WORKER["record_frames"], record_steps=_WORKER["record_steps"]
    )
    return index, result


def iter_episodes(
    jobs: Sequence[EpisodeJob],
    make_actor: ActorFactory = expert_actor,
    *,
    workers: int = 1,
    record_frames: bool = False,
    record_steps: bool = False,
) -> Iterator[tuple[int, EpisodeResult]]:
    """Runs `jobs` and yields (job index, result) as soon as each is done (completion order).

    Args:
        jobs: the episodes to run.
        make_actor: builds the actor for an env inside the worker; must be picklable (a module-level
            function or a `functools.partial` of one) when `workers > 1`.
        workers: processes to use; 1 runs in this process (no pickling, easy debugging).
        record_frames: keep camera frames per episode (for videos).
        record_steps: keep observations and actions per episode (for datasets).
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an int >= 1, got {workers!r}")
    if workers == 1:
        cache: dict[tuple[Any, ...], tuple[Env, Actor]] = {}
        try:
            for i, job in enumerate(jobs):
                env, actor = _env_for(job, cache, make_actor)
                yield i, run_episode(env, actor, job, record_frames=record_frames, record_steps=record_steps)
        finally:
            for env, _ in cache.values():
                env.close()
        return
    ctx = mp.get_context("spawn")
    with ctx.Pool(
        processes=min(workers, max(len(jobs), 1)),
        initializer=_init_worker,
        initargs=(make_actor, record_frames, record_steps),
    ) as pool:
        yield from pool.imap_unordered(_run_in_worker, list(enumerate(jobs)), chunksize=1)
        pool.close()
        pool.join()


def run_episodes(
    jobs: Sequence[EpisodeJob],
    make_actor: ActorFactory = expert_actor,
    *,
    workers: int = 1,
    record_frames: bool = False,
    record_steps: bool = False,
) -> list[EpisodeResult]:
    """Runs `jobs` (see `iter_episodes`) and returns the results in job order."""
    results = dict(
        iter_episodes(
            jobs, make_actor, workers=workers, record_frames=record_frames, record_steps=record_steps
        )
    )
    return [results[i] for i in range(len(jobs))]


def make_jobs(
    suite: str,
    families: Iterable[str],
    *,
    episodes_per_family: int,
    split: str = "train",
    first_seed: int = 0,
    image_size: tuple[int, int] = (96, 96),
    action_mode: str = "ee_delta",
    randomize: bool = False,
) -> list[EpisodeJob]:
    """Returns `episodes_per_family` jobs per family with seeds first_seed, first_seed+1, ..."""
    if episodes_per_family < 1:
        raise ValueError(f"episodes_per_family must be >= 1, got {episodes_per_family}")
    return [
        EpisodeJob(
            suite,
            fam,
            first_seed + i,
            split,
            (int(image_size[0]), int(image_size[1])),
            action_mode,
            randomize,
        )
        for fam in families
        for i in range(episodes_per_family)
    ]
