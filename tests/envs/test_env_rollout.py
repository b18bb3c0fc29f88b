"""The rollout engine with scripted actors: recording, worker processes, the labeller hook, failures."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from vla.rollout import EpisodeJob, expert_actor, make_jobs, run_episodes


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
    with pytest.raises(ValueError, match="envs_per_worker"):
        run_episodes([], envs_per_worker=0)
    with pytest.raises(TypeError, match="seed must be an int"):
        EpisodeJob("tabletop", "touch", "3")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="episodes_per_family"):
        make_jobs("tabletop", ["touch"], episodes_per_family=0)


def _expert_steps(jobs: list[EpisodeJob], **kwargs) -> list:
    return run_episodes(jobs, record_steps=True, **kwargs)


def test_env_rollout_labeller_is_asked_on_every_visited_state() -> None:
    # The scripted expert as both actor and labeller: same state, same seed -> the same clean intent.
    jobs = make_jobs("tabletop", ["pick_up"], episodes_per_family=2, image_size=(16, 16), first_seed=3)
    plain = _expert_steps(jobs)
    both = _expert_steps(jobs, labeller=expert_actor)
    for p, b in zip(plain, both, strict=True):
        assert b.success == p.success and b.steps == p.steps
        data = b.steps_data
        assert data is not None
        np.testing.assert_array_equal(data["label"], data["action"])
        np.testing.assert_array_equal(data["action"], p.steps_data["action"])
        assert data["label"].shape == (b.steps, 7) and not data["labeller_acted"].any()


def test_env_rollout_beta_mixing_executes_the_labeller() -> None:
    jobs = make_jobs("tabletop", ["touch"], episodes_per_family=1, image_size=(16, 16), first_seed=1)
    frozen = functools.partial(_frozen_actor, dim=7)
    # beta=1: the frozen actor is only asked; the expert's actions move the arm and it succeeds.
    led = _expert_steps(jobs, make_actor=frozen, labeller=expert_actor, beta=1.0)[0]
    assert led.success and led.steps_data["labeller_acted"].all()
    assert not led.steps_data["action"].any()  # the actor's own (frozen) actions are what it records
    # beta=0: the actor drives (and fails); the expert still labels every state it visits.
    alone = _expert_steps(jobs, make_actor=frozen, labeller=expert_actor, beta=0.0)[0]
    assert not alone.success and alone.steps == 60
    assert np.abs(alone.steps_data["label"][:, :3]).sum() > 0
    # Mixing draws come from the episode seed: the same job mixes the same way, in any worker.
    mixed = [
        _expert_steps(jobs, make_actor=frozen, labeller=expert_actor, beta=0.5, workers=w)[0] for w in (1, 2)
    ]
    flags = [m.steps_data["labeller_acted"] for m in mixed]
    np.testing.assert_array_equal(flags[0], flags[1])
    assert 0 < flags[0].mean() < 1
    with pytest.raises(ValueError, match="no labeller"):
        run_episodes(jobs, beta=0.5)


class _Broken(_Frozen):
    def act(self, obs: dict) -> np.ndarray:
        raise RuntimeError("actuator on fire")


def _broken_actor(env, suite) -> _Broken:
    return _Broken(7)


@pytest.mark.parametrize(("workers", "lanes"), [(1, 2), (2, 1)])
def test_env_rollout_failures_reach_the_caller(workers: int, lanes: int) -> None:
    jobs = make_jobs("tabletop", ["touch"], episodes_per_family=2, image_size=(16, 16))
    with pytest.raises(RuntimeError, match="actuator on fire"):
        run_episodes(jobs, _broken_actor, workers=workers, envs_per_worker=lanes)


def test_env_rollout_lane_keeps_at_most_cache_size_envs_and_closes_the_evicted() -> None:
    # A lane used to keep one env per task forever: 50 Meta-World tasks per lane ran a worker out of
    # memory. The cache is LRU-bounded and an evicted env's renderer is freed.
    from vla.rollout.pool import LaneSpec, _Lane

    lane = _Lane(LaneSpec(), cache_size=2)
    try:
        first = None
        for family in ("touch", "push", "touch", "pick_up"):
            job = EpisodeJob("tabletop", family, seed=0, image_size=(16, 16))
            assert lane.run(job).steps > 0
            if first is None:
                first = lane.cache[job.env_key][0]
            assert len(lane.cache) <= 2
        # "touch" was used after "push", so "push" was the least recent and went first.
        assert [key[1] for key in lane.cache] == ["touch", "pick_up"]
        assert first is lane.cache[next(iter(lane.cache))][0]  # touch's env was reused, not rebuilt
        lane.run(EpisodeJob("tabletop", "push", seed=1, image_size=(16, 16)))
        assert first._renderer is None  # evicted and closed
    finally:
        lane.close()
    with pytest.raises(ValueError, match="cache_size"):
        _Lane(LaneSpec(), cache_size=0)
