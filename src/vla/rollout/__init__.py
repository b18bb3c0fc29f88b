"""The rollout engine: one episode loop, one job and result type, one worker pool, for every actor.

`vla env expert`, the data collector, `vla eval` and DAgger-style runs all go through it:

* `EpisodeJob` / `EpisodeResult` (`vla.rollout.episode`): what to run and what came out;
* `run_episode` (`vla.rollout.loop`): the loop, with an optional labeller and beta-mixing;
* `iter_episodes` / `run_episodes` (`vla.rollout.pool`): spawn workers, several envs per worker;
* `PolicyActorFactory` (`vla.rollout.policy_actor`): a checkpoint as an actor, whose calls are
  gathered across the envs of a worker into one batched model call (`vla.rollout.gather`).
"""

from vla.rollout.episode import ActorStats, EpisodeJob, EpisodeResult, make_jobs, trajectory_jerk
from vla.rollout.loop import Actor, ActorFactory, Instrumented, expert_actor, run_episode
from vla.rollout.pool import LaneSpec, iter_episodes, run_episodes

__all__ = [
    "Actor",
    "ActorFactory",
    "ActorStats",
    "EpisodeJob",
    "EpisodeResult",
    "Instrumented",
    "LaneSpec",
    "expert_actor",
    "iter_episodes",
    "make_jobs",
    "run_episode",
    "run_episodes",
    "trajectory_jerk",
]
