"""The parallel episode runner shared by the expert command, the collector and the evaluator."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from vla.envs.rollout import EpisodeJob, expert_actor, make_jobs, run_episodes


class _Frozen:
    """An actor that never moves (a policy that does nothing must never succeed)."""

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def reset(self) -> None:
        return None

    def act(self, obs: dict) -> np.ndarray:
        return np.zeros(self.dim, dtype=np.float32)


def _frozen_actor(env, suite, *, dim: int) -> _Frozen:
    return _Frozen(dim)


def test_env_rollout_in_process_records_steps_and_frames() -> None:
    jobs = make_jobs("tabletop", ["touch"], episodes_per_family=2, image_size=(16, 24))
    results = run_episodes(jobs, record_frames=True, record_steps=True)
    assert [r.job.seed for r in results] == [0, 1]
    for r in results:
        assert r.success
        assert r.frames is not None
        assert r.frames.shape == (r.steps + 1, 16, 48, 3)
        data = r.steps_data
        assert data is not None
        assert data["images"]["wrist"].shape == (r.steps, 16, 24, 3)
        assert data["state"].shape == (r.steps, 22)
        assert data["action"].shape == (r.steps, 7)
        assert data["reward"][-1] == 1.0
        assert r.meta["seed"] == r.job.seed


def test_env_rollout_workers_keep_job_order_and_custom_actors() -> None:
    jobs = [EpisodeJob("tabletop", "pick_up", s, image_size=(16, 16)) for s in (5, 3)]
    jobs.append(EpisodeJob("tabletop", "touch", 1, image_size=(16, 16)))
    results = run_episodes(jobs, expert_actor, workers=2, record_steps=True)
    assert [(r.job.family, r.job.seed) for r in results] == [("pick_up", 5), ("pick_up", 3), ("touch", 1)]
    assert all(r.success for r in results)
    # Worker processes (one llvmpipe thread) reproduce this process bit for bit.
    here = run_episodes(jobs[2:], record_steps=True)[0].steps_data
    there = results[2].steps_data
    assert here is not None and there is not None
    np.testing.assert_array_equal(here["state"], there["state"])
    np.testing.assert_array_equal(here["images"]["scene"], there["images"]["scene"])
    frozen = run_episodes(jobs[2:], functools.partial(_frozen_actor, dim=7), workers=2)
    assert not frozen[0].success
    assert frozen[0].steps == 60  # ran to the time limit


def test_env_rollout_bad_arguments() -> None:
    with pytest.raises(ValueError, match="workers"):
        run_episodes([], workers=0)
    with pytest.raises(TypeError, match="seed must be an int"):
        EpisodeJob("tabletop", "touch", "3")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="episodes_per_family"):
        make_jobs("tabletop", ["touch"], episodes_per_family=0)
