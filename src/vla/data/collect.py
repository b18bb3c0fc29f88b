"""Collects scripted-expert demonstrations of a suite into a dataset, in parallel worker processes.

Workers (from `vla.rollout`, one process per core) run episodes and send finished ones to this
process, the only writer, which appends each at once (atomically): a crash loses only episodes still
running. Failed episodes are dropped unless `keep_failed`; to still reach N successes per family the
missing ones are re-run with fresh seeds, for a bounded number of rounds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vla.data.episode import Episode
from vla.data.reader import EpisodeDataset
from vla.data.stats import compute_and_store
from vla.data.writer import DatasetWriter
from vla.envs.base import DEFAULT_SUITE, get_suite, option_families, suite_features
from vla.rollout import EpisodeResult, iter_episodes, make_jobs
from vla.types import DatasetStats


@dataclass(frozen=True)
class CollectConfig:
    """What to collect.

    Attributes:
        suite: a registered suite name (`vla env list`).
        episodes_per_task: episodes to record per task family (successful ones, unless keep_failed).
        families: the families to record (empty: all of the suite's).
        split: the suite split to draw episodes from.
        workers: worker processes (one per core is the sweet spot for software rendering).
        keep_failed: also record episodes where the expert failed (and do not re-run them).
        image_size: camera image side in pixels.
        seed: first seed; episode seeds are seed, seed+1, ... per family (appending to a file continues
            after the largest seed it already holds for that family and split, so no episode repeats).
        max_rounds: rounds of re-runs allowed to replace failed episodes.
        randomize: domain randomization in the env (lighting, colours, camera jitter).
        env_options: further options of the suite's `make` as (name, value) pairs, e.g.
            (("robot", "humanoid"),) for tabletop (`EpisodeJob.env_options`).
    """

    suite: str = DEFAULT_SUITE
    episodes_per_task: int = 50
    families: tuple[str, ...] = ()
    split: str = "train"
    workers: int = 2
    keep_failed: bool = False
    image_size: int = 96
    seed: int = 0
    max_rounds: int = 3
    randomize: bool = False
    env_options: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if self.episodes_per_task < 1:
            raise ValueError(f"episodes_per_task must be >= 1, got {self.episodes_per_task}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.image_size < 8:
            raise ValueError(f"image_size must be >= 8 pixels, got {self.image_size}")
        if self.max_rounds < 1:
            raise ValueError(f"max_rounds must be >= 1, got {self.max_rounds}")


@dataclass
class CollectReport:
    """What a collection produced (the CLI prints it)."""

    path: Path
    episodes: int = 0
    steps: int = 0
    attempts: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    recorded: dict[str, int] = field(default_factory=dict)
    wall_seconds: float = 0.0
    stats: DatasetStats | None = None

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable summary (without the statistics)."""
        return {
            "path": str(self.path),
            "episodes": self.episodes,
            "steps": self.steps,
            "attempts": self.attempts,
            "recorded": dict(self.recorded),
            "failures": dict(self.failures),
            "wall_seconds": round(self.wall_seconds, 3),
            "steps_per_second": round(self.steps_per_second, 2),
        }


def result_to_episode(result: EpisodeResult, *, control_hz: float) -> Episode:
    """Turns a rollout result recorded with `record_steps=True` into an Episode."""
    data = result.steps_data
    if data is None:
        raise ValueError("rollout result has no recorded steps (run it with record_steps=True)")
    n = int(data["state"].shape[0])
    meta: dict[str, Any] = {"family": result.job.family, "split": result.job.split, "seed": result.job.seed}
    meta.update(result.meta)
    meta.pop("instruction", None)  # stored once, as the episode's instruction
    return Episode(
        images=dict(data["images"]),
        state=np.asarray(data["state"], dtype=np.float32),
        actions=np.asarray(data["action"], dtype=np.float32),
        timestamps=np.arange(n, dtype=np.float64) / control_hz,
        instruction=result.instruction,
        success=result.success,
        meta=meta,
    )


def _next_seeds(path: Path, families: tuple[str, ...], *, split: str, first: int) -> dict[str, int]:
    """First unused seed per family: `first`, or one past the largest seed `path` holds for it."""
    seeds = dict.fromkeys(families, first)
    if not path.exists() or path.stat().st_size == 0:
        return seeds
    with EpisodeDataset(path) as ds:
        for info in ds.infos:
            fam, seed = info.family, info.meta.get("seed")
            if fam in seeds and info.meta.get("split") == split and isinstance(seed, int):
                seeds[fam] = max(seeds[fam], seed + 1)
    return seeds


def collect(
    suite: str,
    *,
    out: str | Path,
    families: tuple[str, ...] | list[str] = (),
    episodes_per_task: int = 50,
    workers: int = 2,
    split: str = "train",
    keep_failed: bool = False,
    image_size: int = 96,
    seed: int = 0,
    randomize: bool = False,
) -> dict[str, Any]:
    """Collects demonstrations (see `CollectConfig` for the arguments); returns `CollectReport.to_dict()`."""
    cfg = CollectConfig(
        suite=suite,
        episodes_per_task=episodes_per_task,
        families=tuple(families),
        split=split,
        workers=workers,
        keep_failed=keep_failed,
        image_size=image_size,
        seed=seed,
        randomize=randomize,
    )
    return run_collection(cfg, out).to_dict()


def run_collection(
    cfg: CollectConfig, out: str | Path, *, progress: Callable[[CollectReport], None] | None = None
) -> CollectReport:
    """Runs the suite's experts and appends the episodes to the dataset `out` (created if missing).

    Args:
        cfg: what to collect.
        out: the .h5 dataset.
        progress: called after every finished episode with the running report (e.g. to move a bar).

    Returns:
        The report, with the statistics computed over the whole file after collecting.
    """
    suite = get_suite(cfg.suite)
    known = option_families(suite, cfg.env_options)
    families = cfg.families or known
    unknown = [f for f in families if f not in known]
    if unknown:
        raise ValueError(f"unknown families {unknown} for suite '{cfg.suite}'; known: {list(known)}")
    if cfg.split not in suite.splits:
        raise ValueError(f"unknown split '{cfg.split}' for suite '{cfg.suite}'; known: {list(suite.splits)}")
    size = (cfg.image_size, cfg.image_size)
    opts = dict(cfg.env_options)
    probe = suite.make(families[0], split=cfg.split, image_size=size, **opts)
    embodiment = probe.embodiment
    probe.close()
    env_args = {
        "image_size": list(size),
        "split": cfg.split,
        "families": list(families),
        "randomize": cfg.randomize,
        "control_hz": embodiment.control_hz,
        **({"env_options": opts} if opts else {}),
    }
    next_seed = _next_seeds(Path(out), families, split=cfg.split, first=cfg.seed)
    writer = DatasetWriter(
        out, embodiment=embodiment, suite=cfg.suite, env_args=env_args, features=suite_features(suite)
    )
    report = CollectReport(
        path=Path(out), recorded=dict.fromkeys(families, 0), failures=dict.fromkeys(families, 0)
    )
    start = time.perf_counter()
    wanted = dict.fromkeys(families, cfg.episodes_per_task)
    for _round in range(cfg.max_rounds):
        jobs = []
        for fam, n in wanted.items():
            if n > 0:
                jobs += make_jobs(
                    cfg.suite,
                    [fam],
                    episodes_per_family=n,
                    split=cfg.split,
                    first_seed=next_seed[fam],
                    image_size=size,
                    randomize=cfg.randomize,
                    env_options=cfg.env_options,
                )
                next_seed[fam] += n  # a re-run round draws fresh episodes
        if not jobs:
            break
        for _, result in iter_episodes(jobs, workers=cfg.workers, record_steps=True):
            fam = result.job.family
            report.attempts += 1
            if result.success or cfg.keep_failed:
                writer.append(result_to_episode(result, control_hz=embodiment.control_hz))
                report.episodes += 1
                report.steps += result.steps
                report.recorded[fam] += 1
                wanted[fam] -= 1
            if not result.success:
                report.failures[fam] += 1
            report.wall_seconds = time.perf_counter() - start
            if progress is not None:
                progress(report)
        if cfg.keep_failed:
            break
    if report.episodes:
        report.stats = compute_and_store(out)
    report.wall_seconds = time.perf_counter() - start
    return report
