"""Moved: the rollout engine lives in `vla.rollout`; these names stay importable from here."""

from vla.rollout import (
    Actor,
    ActorFactory,
    EpisodeJob,
    EpisodeResult,
    expert_actor,
    iter_episodes,
    make_jobs,
    run_episode,
    run_episodes,
)

__all__ = [
    "Actor",
    "ActorFactory",
    "EpisodeJob",
    "EpisodeResult",
    "expert_actor",
    "iter_episodes",
    "make_jobs",
    "run_episode",
    "run_episodes",
]
