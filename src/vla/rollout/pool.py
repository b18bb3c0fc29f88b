"""The worker pool of the rollout engine: `iter_episodes` / `run_episodes` over any actor, in parallel.

The parent puts small picklable `EpisodeJob`s on a queue. Each worker process runs `envs_per_worker`
lanes (threads); a lane takes the next job, builds (and caches) the env for it and calls the picklable
actor factory inside the worker, so nothing heavy (GL contexts, torch modules) ever crosses a process
boundary, runs `run_episode` and sends the result back. Lanes of one process that drive a policy share
its model and gather their calls into one batch (`vla.rollout.gather`); with one lane per worker every
call is a batch of one. Workers use `spawn` (a forked EGL/OpenMP state is unsafe), one
software-rendering thread each (`LP_NUM_THREADS=1`: with one process per core extra llvmpipe threads
only fight each other) and `threads` OpenMP/torch threads.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import sys
import threading
import traceback
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from vla.envs.base import Env, get_suite, register_suite, runtime_suites
from vla.rollout.episode import EpisodeJob, EpisodeResult
from vla.rollout.loop import Actor, ActorFactory, expert_actor, run_episode
from vla.rollout.takeover import Takeover

# Envs a lane keeps between jobs, least recently used evicted first. A suite with many tasks (Meta-World
# MT50: 50 envs of ~200 MB each per lane) would otherwise hold every task's MuJoCo model and GL context
# at once; jobs come grouped by task, so a small cache still builds each env about once.
LANE_CACHE_SIZE = 4

# How often the parent checks that its workers are alive while it waits for a result (seconds).
_POLL_S = 1.0


@dataclass(frozen=True)
class LaneSpec:
    """What every lane runs (picklable, sent once to each worker).

    Attributes:
        make_actor: builds the actor for an env inside the worker.
        make_labeller: optionally builds a labeller for an env (see `run_episode`).
        beta: probability per step of executing the labeller's action.
        takeover: instead of beta, when the labeller takes over (HG-DAgger, see `run_episode`).
    """

    make_actor: ActorFactory = expert_actor
    make_labeller: ActorFactory | None = None
    beta: float = 0.0
    takeover: Takeover | None = None

    def __post_init__(self) -> None:
        if not callable(self.make_actor):
            raise TypeError(f"make_actor must be callable (env, suite) -> actor, got {self.make_actor!r}")
        if not 0.0 <= self.beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {self.beta}")
        if self.beta > 0 and self.make_labeller is None:
            raise ValueError(f"beta={self.beta} mixes in a labeller's actions, but no labeller was given")
        if self.takeover is not None and (self.make_labeller is None or self.beta > 0):
            raise ValueError("a takeover needs a labeller and beta 0 (it decides who drives instead of beta)")


@dataclass(frozen=True)
class _Failure:
    """An episode that raised, sent back instead of its result."""

    job: EpisodeJob
    error: str

    def raise_(self) -> None:
        raise RuntimeError(f"rollout of {self.job} failed:\n{self.error}")


class _Lane:
    """One env-stepping thread: its own envs (a GL context belongs to the thread that made it) and actors."""

    def __init__(self, spec: LaneSpec, cache_size: int = LANE_CACHE_SIZE) -> None:
        _check_count("cache_size", cache_size)
        self.spec = spec
        self.cache_size = cache_size
        self.cache: OrderedDict[tuple[Any, ...], tuple[Env, Actor, Actor | None]] = OrderedDict()

    def run(self, job: EpisodeJob) -> EpisodeResult:
        if job.env_key in self.cache:
            self.cache.move_to_end(job.env_key)
        else:
            while len(self.cache) >= self.cache_size:
                _, (old, _, _) = self.cache.popitem(last=False)
                old.close()
            suite = get_suite(job.suite)
            env = suite.make(
                job.family,
                split=job.split,
                image_size=tuple(job.image_size),
                action_mode=job.action_mode,
                randomize=job.randomize,
                **dict(job.env_options),
            )
            labeller = self.spec.make_labeller(env, suite) if self.spec.make_labeller is not None else None
            self.cache[job.env_key] = (env, self.spec.make_actor(env, suite), labeller)
        env, actor, labeller = self.cache[job.env_key]
        return run_episode(
            env, actor, job, labeller=labeller, beta=self.spec.beta, takeover=self.spec.takeover
        )

    def close(self) -> None:
        for env, _, _ in self.cache.values():
            env.close()
        self.cache.clear()


def _lane_loop(spec: LaneSpec, jobs: Any, results: Any) -> None:
    """Runs jobs (index, job) from `jobs` until a None, putting (index, result or _Failure) on `results`."""
    lane = _Lane(spec)
    try:
        while (item := jobs.get()) is not None:
            index, job = item
            try:
                results.put((index, lane.run(job)))
            except Exception:
                results.put((index, _Failure(job, traceback.format_exc())))
    finally:
        lane.close()


def _run_lanes(spec: LaneSpec, lanes: int, jobs: Any, results: Any) -> None:
    threads = [
        threading.Thread(target=_lane_loop, args=(spec, jobs, results), daemon=True) for _ in range(lanes)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _worker_main(
    spec: LaneSpec, lanes: int, threads: int, jobs: Any, results: Any, suites: dict[str, Any]
) -> None:
    # Suites registered at run time in the parent (not discoverable by package scan or entry point).
    for name, factory in suites.items():
        register_suite(name, factory)
    os.environ["LP_NUM_THREADS"] = "1"
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
    os.environ["OMP_NUM_THREADS"] = str(threads)  # read by torch when a policy factory imports it
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    if lanes == 1:
        _lane_loop(spec, jobs, results)
    else:
        _run_lanes(spec, lanes, jobs, results)


def _check_count(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")


def iter_episodes(
    jobs: Sequence[EpisodeJob],
    make_actor: ActorFactory = expert_actor,
    *,
    workers: int = 1,
    envs_per_worker: int = 1,
    threads: int = 1,
    labeller: ActorFactory | None = None,
    beta: float = 0.0,
    takeover: Takeover | None = None,
    record_frames: bool = False,
    record_steps: bool = False,
    isolate: bool = False,
) -> Iterator[tuple[int, EpisodeResult]]:
    """Runs `jobs` and yields (job index, result) as soon as each is done (completion order).

    Args:
        jobs: the episodes to run.
        make_actor: builds the actor for an env inside the worker; must be picklable (a module-level
            function, a `functools.partial` of one, or e.g. `PolicyActorFactory`) when `workers > 1`.
        workers: processes to use; 1 runs in this process (no pickling, easy debugging) unless
            `isolate`.
        envs_per_worker: episodes each process runs side by side (one thread and env each); a policy's
            calls of one process are then gathered into one batched model call.
        threads: OpenMP/torch threads of each worker process (not changed in this process).
        labeller: optional factory of a second actor queried on every visited state (DAgger).
        beta: probability per step of executing the labeller's action instead of the actor's.
        takeover: instead of beta, the labeller drives where the actor strays (HG-DAgger).
        record_frames: keep camera frames of every episode (else per job, `EpisodeJob.record_frames`).
        record_steps: keep observations and actions of every episode (else per job).
        isolate: run in spawned worker processes even with `workers=1`, so that this process's GL
            contexts, torch threads and environment never affect the episodes.
    """
    _check_count("workers", workers)
    _check_count("envs_per_worker", envs_per_worker)
    _check_count("threads", threads)
    spec = LaneSpec(make_actor, labeller, beta, takeover)
    todo = [
        replace(
            j, record_frames=j.record_frames or record_frames, record_steps=j.record_steps or record_steps
        )
        for j in jobs
    ]
    if not todo:
        return
    if isolate or workers > 1:
        yield from _in_processes(spec, todo, workers, envs_per_worker, threads)
    elif envs_per_worker == 1:
        lane = _Lane(spec)
        try:
            for i, job in enumerate(todo):
                yield i, lane.run(job)
        finally:
            lane.close()
    else:
        yield from _in_threads(spec, todo, envs_per_worker)


def _receive(results: Any, n: int, alive: Callable[[], str | None]) -> Iterator[tuple[int, EpisodeResult]]:
    """Yields `n` results from `results`, raising on a failed episode or a dead worker."""
    for _ in range(n):
        while True:
            try:
                index, res = results.get(timeout=_POLL_S)
                break
            except queue.Empty:
                problem = alive()
                if problem:
                    raise RuntimeError(problem) from None
        if isinstance(res, _Failure):
            res.raise_()
        yield index, res


def _in_threads(spec: LaneSpec, jobs: list[EpisodeJob], lanes: int) -> Iterator[tuple[int, EpisodeResult]]:
    lanes = min(lanes, len(jobs))
    todo: queue.Queue[Any] = queue.Queue()
    done: queue.Queue[Any] = queue.Queue()
    for item in enumerate(jobs):
        todo.put(item)
    for _ in range(lanes):
        todo.put(None)
    runner = threading.Thread(target=_run_lanes, args=(spec, lanes, todo, done), daemon=True)
    runner.start()

    def alive() -> str | None:
        return None if runner.is_alive() else "rollout lanes stopped before every episode finished"

    try:
        yield from _receive(done, len(jobs), alive)
    finally:
        while True:  # after an early stop or a failure: drop the jobs left, then let every lane end
            try:
                todo.get_nowait()
            except queue.Empty:
                break
        for _ in range(lanes):
            todo.put(None)
        runner.join()


def _in_processes(
    spec: LaneSpec, jobs: list[EpisodeJob], workers: int, lanes: int, threads: int
) -> Iterator[tuple[int, EpisodeResult]]:
    ctx = mp.get_context("spawn")  # fresh interpreters: no forked torch threads or GL contexts
    workers = min(workers, -(-len(jobs) // lanes))
    lanes = min(lanes, -(-len(jobs) // workers))
    todo = ctx.Queue()
    done = ctx.Queue()
    procs = [
        ctx.Process(
            target=_worker_main, args=(spec, lanes, threads, todo, done, runtime_suites()), daemon=True
        )
        for _ in range(workers)
    ]
    for p in procs:
        p.start()
    for item in enumerate(jobs):
        todo.put(item)
    for _ in range(workers * lanes):
        todo.put(None)

    def alive() -> str | None:
        dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
        if dead:
            return f"a rollout worker died (exit code {dead[0]}) before every episode finished"
        if all(p.exitcode == 0 for p in procs):
            return "the rollout workers exited before every episode finished"
        return None

    finished = False
    try:
        yield from _receive(done, len(jobs), alive)
        finished = True
    finally:
        for p in procs:
            if finished:
                p.join(timeout=30)
            if p.is_alive():
                p.terminate()
                p.join()
        todo.cancel_join_thread()
        todo.close()
        done.close()


def run_episodes(
    jobs: Sequence[EpisodeJob], make_actor: ActorFactory = expert_actor, **options: Any
) -> list[EpisodeResult]:
    """Runs `jobs` and returns the results in job order (`options`: those of `iter_episodes`)."""
    results = dict(iter_episodes(jobs, make_actor, **options))
    return [results[i] for i in range(len(jobs))]
