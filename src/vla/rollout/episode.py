"""What the rollout engine runs and what it hands back: `EpisodeJob` in, `EpisodeResult` out.

Both are plain data. A job names an env (suite, family, split, options), a seed and what to record; it
is small and picklable, so it crosses process boundaries. A result carries everything the engine's users
read: `vla env expert` (success, steps), the collector (recorded steps), the evaluator (success, length,
jerk, model-call latencies, safety interventions by reason, videos) and DAgger (labels of a second actor).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class EpisodeJob:
    """One episode to run: which env (suite/family/split/options), which seed, and what to keep.

    Attributes:
        suite: a registered suite name.
        family: the suite's task family.
        seed: the episode seed (`env.reset(seed=...)`).
        split: the suite split.
        image_size: (height, width) of the camera images.
        action_mode: the env's action mode.
        randomize: domain randomization in the env.
        record_frames: keep the camera frames (for a video) and the first observation.
        record_steps: keep observations, actions and rewards of every step (for datasets).
        perturb: sensor perturbations of what the actor observes ("kind=value",
            `vla.rollout.perturb`); recorded steps and frames are the perturbed ones it saw.
        env_options: further keyword options of the suite's `make` as (name, value) pairs, e.g.
            (("robot", "humanoid"),) for the tabletop suite; empty for the suite's defaults.
    """

    suite: str
    family: str
    seed: int
    split: str = "train"
    image_size: tuple[int, int] = (96, 96)
    action_mode: str = "ee_delta"
    randomize: bool = False
    record_frames: bool = False
    record_steps: bool = False
    perturb: tuple[str, ...] = ()
    env_options: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int | np.integer):
            raise TypeError(f"EpisodeJob.seed must be an int, got {type(self.seed).__name__}")
        if len(self.image_size) != 2 or min(int(v) for v in self.image_size) < 1:
            raise ValueError(f"EpisodeJob.image_size must be (height, width) >= 1, got {self.image_size}")

    @property
    def env_key(self) -> tuple[Any, ...]:
        """What identifies the env this job runs in (jobs with the same key share a cached env)."""
        return (
            self.suite,
            self.family,
            self.split,
            tuple(self.image_size),
            self.action_mode,
            self.randomize,
            self.env_options,
        )


@dataclass(frozen=True)
class ActorStats:
    """What an instrumented actor (a policy) reports about the episode it just finished.

    Attributes:
        latencies_ms: wall time of every model call the episode's steps waited for (a batched call
            counts once for each episode in the batch, with the batch's duration).
        interventions_by_reason: safety-filter interventions per reason (`vla.runtime.safety`).
        physical_by_reason: those of them that changed what the robot did (`physical_stats`).
        extras: per-episode diagnostics of the actor's episode hook (e.g. grounding error), JSON-able.
    """

    latencies_ms: list[float] = field(default_factory=list)
    interventions_by_reason: dict[str, int] = field(default_factory=dict)
    physical_by_reason: dict[str, int] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class EpisodeResult:
    """What one episode produced.

    Attributes:
        job: the job that was run.
        success: whether the env reported success when the episode ended.
        steps: control steps taken (the episode length).
        instruction: the episode's command.
        meta: the env's `episode_meta` (empty if the env has none).
        seconds: wall time of the episode (reset + steps), in its worker.
        jerk: mean end-effector jerk in m/s^3 (`trajectory_jerk`; 0 when the state has no "ee_pos").
        latencies_ms: the actor's model-call latencies (empty for scripted actors).
        interventions_by_reason: safety-filter interventions per reason (empty without a filter).
        physical_by_reason: the interventions that changed what the robot did, per reason.
        extras: diagnostics from the actor's episode hook.
        failure: the env's reason for ending the episode as a failure (its last `info["failure"]`,
            e.g. "fall"), or "" when it gave none.
        frames: with `job.record_frames`, uint8 [N+1, Hi, V*Wi, 3]: all cameras side by side per
            observation (cameras in sorted name order).
        first_obs: with `job.record_frames`, the first observation {"images", "state", "instruction"}.
        steps_data: with `job.record_steps`, the observations and actions:
            "images": camera -> uint8 [N, Hi, Wi, 3] (the observation before each action),
            "state": float32 [N, S], "action": float32 [N, A] (the actor's action, or its clean
            intent `actor.label` when it has one), "reward": float32 [N]; with a labeller also
            "label": float32 [N, A] (the labeller's action for every visited state) and
            "labeller_acted": bool [N] (True where the labeller's action was executed).
    """

    job: EpisodeJob
    success: bool
    steps: int
    instruction: str
    meta: dict[str, Any]
    seconds: float
    jerk: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    interventions_by_reason: dict[str, int] = field(default_factory=dict)
    physical_by_reason: dict[str, int] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    failure: str = ""
    frames: np.ndarray | None = field(default=None, repr=False)
    first_obs: dict[str, Any] | None = field(default=None, repr=False)
    steps_data: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def family(self) -> str:
        return self.job.family

    @property
    def seed(self) -> int:
        return int(self.job.seed)

    @property
    def interventions(self) -> int:
        """Safety-filter interventions of the episode, all reasons together."""
        return int(sum(self.interventions_by_reason.values()))


def trajectory_jerk(positions: np.ndarray, hz: float) -> float:
    """Mean norm of the third finite difference of positions float [N, 3], in m/s^3 (0 if N < 4)."""
    if len(positions) < 4:
        return 0.0
    d3 = np.diff(positions, n=3, axis=0) * hz**3  # (N-3, 3)
    return float(np.linalg.norm(d3, axis=1).mean())


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
    env_options: tuple[tuple[str, Any], ...] = (),
) -> list[EpisodeJob]:
    """Returns `episodes_per_family` jobs per family with seeds first_seed, first_seed+1, ...

    `env_options` are passed to the suite's `make` (see `EpisodeJob.env_options`)."""
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
            env_options=tuple(env_options),
        )
        for fam in families
        for i in range(episodes_per_family)
    ]
