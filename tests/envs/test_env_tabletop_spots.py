"""Where move_next_to puts its object (`vla.envs.tabletop.spots`): beside the reference, on the side
facing the target unless another object or a container is in the way."""

from __future__ import annotations

import numpy as np
import pytest

from vla.envs.tabletop import objects as obj
from vla.envs.tabletop import tasks
from vla.envs.tabletop.env import TabletopEnv
from vla.envs.tabletop.expert import TabletopExpert
from vla.envs.tabletop.spots import MIN_CLEARANCE, SIDE_GAP, free_spot_next_to


def _clearance(env: TabletopEnv, spec: tasks.EpisodeSpec, xy: np.ndarray) -> float:
    others = [
        (env.object_position(k)[:2], obj.SHAPE_SPECS[k[1]].radius)
        for k in spec.objects
        if k not in (spec.target, spec.other)
    ] + [(np.asarray(c), obj.CONTAINERS[n].radius) for n, c in spec.containers.items()]
    return (
        min([float(np.linalg.norm(xy - p)) - r for p, r in others] + [1.0])
        - obj.SHAPE_SPECS[spec.target[1]].radius
    )


def test_env_spot_faces_the_target_unless_blocked() -> None:
    env = TabletopEnv("move_next_to")
    near_side = blocked = 0
    try:
        for seed in range(24):
            env.reset(seed=seed)
            spec = env.task
            assert spec is not None
            ref, me = env.object_position(spec.other)[:2], env.object_position(spec.target)[:2]
            spot = free_spot_next_to(env, spec)
            radii = obj.SHAPE_SPECS[spec.target[1]].radius + obj.SHAPE_SPECS[spec.other[1]].radius
            assert np.linalg.norm(spot - ref) == pytest.approx(radii + SIDE_GAP, abs=1e-9)
            toward = ref + (radii + SIDE_GAP) * (me - ref) / np.linalg.norm(me - ref)
            inside = bool(np.all(toward > np.asarray(tasks.REGION_LOW) - 0.03)) and bool(
                np.all(toward < np.asarray(tasks.REGION_HIGH) + 0.03)
            )
            if inside and _clearance(env, spec, toward) >= MIN_CLEARANCE:
                np.testing.assert_allclose(spot, toward, atol=1e-9)  # the near side, exactly
                near_side += 1
            else:  # blocked: another side, and a clear one
                assert np.linalg.norm(spot - toward) > 1e-3
                assert _clearance(env, spec, spot) >= MIN_CLEARANCE
                blocked += 1
            # The expert carries the object to this spot.
            np.testing.assert_allclose(TabletopExpert(env)._free_spot_next_to(spec), spot, atol=1e-12)
    finally:
        env.close()
    assert near_side >= 12 and blocked >= 2, (near_side, blocked)  # both branches ran
    touch = TabletopEnv("touch")
    try:
        touch.reset(seed=0)
        assert touch.task is not None
        with pytest.raises(ValueError, match="needs a reference object"):
            free_spot_next_to(touch, touch.task)
    finally:
        touch.close()
