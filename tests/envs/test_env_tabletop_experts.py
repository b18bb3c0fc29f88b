"""Every family's scripted expert succeeds (a few seeds per family; the 100-episode measurement is
`vla env expert tabletop --episodes-per-task 100`)."""

from __future__ import annotations

import numpy as np
import pytest

from vla.envs import get_suite
from vla.envs.tabletop import tasks
from vla.envs.tabletop.expert import TabletopExpert

from .conftest import run_expert


@pytest.mark.parametrize("family", tasks.FAMILIES)
def test_env_expert_succeeds_on_train_seeds(make_env, family) -> None:
    # 3 of 4 seeds: the experts succeed in 98-100% of 100 episodes per family (move_next_to 98%: a
    # ball lifted right after closing can roll out of the fingers; seed 1 is one such episode).
    env = make_env(family)
    failed = []
    for seed in range(4):
        success, steps = run_expert(env, seed)
        if not success:
            failed.append((seed, env.task.instruction))
        assert steps <= env.max_steps
    assert len(failed) <= 1, f"{family} expert failed on {failed}"


@pytest.mark.parametrize(
    ("family", "split"), [("stack", "unseen"), ("put_in", "randomized"), ("push", "paraphrase")]
)
def test_env_expert_succeeds_on_other_splits(make_env, family, split) -> None:
    env = make_env(family, split=split)
    assert run_expert(env, 11)[0]


def test_env_expert_drives_joint_pos_mode(make_env) -> None:
    env = make_env("pick_up", action_mode="joint_pos")
    expert = TabletopExpert(env)
    obs, _ = env.reset(seed=0)
    expert.reset()
    action = expert.act(obs)
    assert action.shape == (8,)
    assert np.all(action[:7] >= env.action_space.low[:7])
    assert run_expert(env, 3)[0]


def test_env_expert_is_deterministic(make_env) -> None:
    env = make_env("move_next_to")
    expert = get_suite("tabletop").expert(env)
    traces = []
    for _ in range(2):
        obs, _ = env.reset(seed=21)
        expert.reset()
        actions = []
        for _ in range(8):
            a = expert.act(obs)
            actions.append(a)
            obs, *_ = env.step(a)
        traces.append(np.stack(actions))
    np.testing.assert_array_equal(traces[0], traces[1])


def test_env_expert_rejects_foreign_env() -> None:
    with pytest.raises(TypeError, match="needs a TabletopEnv"):
        TabletopExpert(object())  # type: ignore[arg-type]


def test_env_expert_regrasps_after_a_drop(make_env) -> None:
    env = make_env("put_in")
    expert = TabletopExpert(env)
    obs, _ = env.reset(seed=0)
    expert.reset()
    dropped = False
    info: dict = {"success": False}
    phases = []
    for _ in range(env.max_steps):
        action = expert.act(obs)
        phases.append(expert.phase)
        if expert.phase == "carry" and not dropped:
            action[6] = 0.0  # open the gripper mid-carry: the object falls
            dropped = True
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    assert dropped
    first_carry = phases.index("carry")
    assert "descend" in phases[first_carry:], "expert did not go back for the object"
    assert info["success"]


@pytest.mark.parametrize("family", ["pick_up", "stack"])
def test_env_expert_grasps_from_straight_above_and_lifts_at_once(make_env, family) -> None:
    # A pixel-free policy reads only the hand's offset to the object and the finger opening, so the
    # demonstration must not show two actions for one such state: it closes over the object's centre
    # (not on a diagonal descent) and lifts on the first frame whose fingers have closed (not after
    # frames of waiting in the same pose, which taught a policy to wait forever: docs/measured.md).
    # The grasp point itself is jittered by 2 mm (std per axis) on purpose, hence the 1 cm bound.
    env = make_env(family)
    expert = TabletopExpert(env)
    grip = env.embodiment.state_slice("gripper")
    for seed in (0, 1, 2):
        obs, _ = env.reset(seed=seed)
        expert.reset()
        closed_at: np.ndarray | None = None
        for _ in range(env.max_steps):
            action = expert.act(obs)
            width = float(obs["state"][grip][0])
            if action[6] > 0.5 and width > 0.075 and closed_at is None:
                closed_at = env.tcp_pose()[0] - env.object_position(env.task.target)
            elif closed_at is not None and width < 0.075:
                assert action[2] > 0.01, f"seed {seed}: first closed frame does not lift ({action[2]:.4f} m)"
                break
            obs, *_ = env.step(action)
        assert closed_at is not None, f"seed {seed}: the expert never closed the gripper"
        assert np.linalg.norm(closed_at[:2]) < 0.01, f"seed {seed}: closed {closed_at[:2]} m off-centre"


def _wander_then_label(env, expert: TabletopExpert, seed: int, *, wander: int) -> bool:
    """Another actor moves the arm at random for `wander` steps (closing the gripper half-way), while
    the expert is asked on every state, as DAgger asks it; then the expert's actions drive."""
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    expert.reset()
    info = {"success": False}
    for t in range(env.max_steps):
        action = expert.act(obs)
        if t < wander:
            action = np.zeros(7, np.float32)
            action[:3] = rng.uniform(-0.03, 0.03, 3)
            action[6] = float(t > wander // 2)
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    return bool(info["success"])


@pytest.mark.parametrize(("family", "seed"), [("touch", 705), ("stack", 703), ("push", 700)])
def test_relabelling_expert_acts_from_states_another_actor_reached(make_env, family, seed) -> None:
    # touch 705 and stack 703 are episodes the scheduled script fails after the wander (its phase
    # budgets ran out while the other actor drove). Over seeds 700-705 of all six families (32x32
    # images): relabelling 36/36, the scheduled script 34/36.
    env = make_env(family)
    assert _wander_then_label(env, TabletopExpert(env, relabel=True), seed, wander=30)
    assert get_suite("tabletop").labeller(env).relabel


def test_relabelling_expert_keeps_asking_to_close_until_the_object_is_held(make_env) -> None:
    # An actor that closes the gripper two steps after the labels say so (as a policy may): the
    # scheduled script asks to open again after its one closing step and restarts the grasp; the
    # relabelling one asks to close until the fingers hold the object, and opens only to release.
    env = make_env("put_in")
    expert = TabletopExpert(env, relabel=True)
    obs, _ = env.reset(seed=700)
    expert.reset()
    late, grips, info = [0.0, 0.0], [], {"success": False}
    for _ in range(env.max_steps):
        action = expert.act(obs).copy()
        grips.append(float(expert.label[6]))
        action[6] = late[-2]
        late.append(grips[-1])
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    g = np.asarray(grips)
    assert info["success"]
    assert int(np.sum((g[1:] < 0.5) & (g[:-1] > 0.5))) == 1, "one opening: the release"
