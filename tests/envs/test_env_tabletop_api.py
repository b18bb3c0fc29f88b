"""The gymnasium API of the tabletop env: spaces, determinism, metadata, splits, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from vla.envs import get_suite, list_suites
from vla.envs.tabletop import language
from vla.envs.tabletop import objects as obj
from vla.envs.tabletop.env import TabletopEnv

from .conftest import hold_action


def test_env_registered_suite_has_families_and_splits() -> None:
    assert "tabletop" in list_suites()
    suite = get_suite("tabletop")
    assert suite.families == ("pick_up", "put_in", "push", "stack", "touch", "move_next_to")
    assert suite.splits == (
        "train",
        "unseen",
        "paraphrase",
        "randomized",
        "ungroundable",
        "long_horizon_steps",
    )


def test_env_observation_layout(make_env) -> None:
    env = make_env("pick_up", image_size=(24, 40))
    obs, info = env.reset(seed=0)
    assert set(obs["images"]) == {"scene", "wrist"}
    for img in obs["images"].values():
        assert img.dtype == np.uint8
        assert img.shape == (24, 40, 3)
        assert img.std() > 5  # a real picture, not a blank buffer
    assert obs["state"].dtype == np.float32
    assert obs["state"].shape == (22,)
    assert env.observation_space.contains(obs)
    assert isinstance(obs["instruction"], str)
    assert info["family"] == "pick_up"
    assert info["success"] is False
    state = obs["state"]
    emb = env.embodiment
    assert np.linalg.norm(state[emb.state_slice("ee_quat")]) == pytest.approx(1.0, abs=1e-5)
    assert state[emb.state_slice("gripper")][0] == pytest.approx(0.08, abs=2e-3)  # starts open
    # The gripper points down: the TCP z axis is world -z.
    assert state[emb.state_slice("ee_pos")][2] > 0.15


def test_env_same_seed_same_episode_and_observations(make_env) -> None:
    env = make_env("stack")
    actions = np.random.default_rng(0).uniform(-1, 1, size=(5, 7)).astype(np.float32) * env.action_space.high
    runs = []
    for _ in range(2):
        obs, _ = env.reset(seed=123)
        trace = [obs]
        for a in actions:
            trace.append(env.step(a)[0])
        runs.append((dict(env.episode_meta), trace))
    (meta_a, trace_a), (meta_b, trace_b) = runs
    assert meta_a == meta_b
    for oa, ob in zip(trace_a, trace_b, strict=True):
        assert oa["instruction"] == ob["instruction"]
        np.testing.assert_array_equal(oa["state"], ob["state"])
        for cam in ("scene", "wrist"):
            np.testing.assert_array_equal(oa["images"][cam], ob["images"][cam])
    env.reset(seed=124)
    assert env.episode_meta != meta_a


def test_env_unseeded_resets_are_reproducible_from_meta(make_env) -> None:
    env = make_env("push")
    env.reset(seed=5)
    env.reset()
    meta = dict(env.episode_meta)
    env.reset(seed=meta["seed"])
    assert env.episode_meta == meta


def test_env_episode_meta_names_target(make_env) -> None:
    env = make_env("put_in")
    obs, _ = env.reset(seed=3)
    meta = env.episode_meta
    assert meta["family"] == "put_in"
    assert meta["instruction"] == obs["instruction"]
    assert meta["target"] in meta["objects"]
    assert meta["container"] in meta["containers"]
    assert f"{meta['target_colour']} {meta['target_shape']}" in obs["instruction"]
    assert 3 <= len(meta["objects"]) + len(meta["containers"]) <= 7


def test_env_distractors_force_colour_and_shape_grounding(make_env) -> None:
    env = make_env("pick_up")
    for seed in range(20):
        env.reset(seed=seed)
        task = env.task
        colour, shape = task.target
        others = [k for k in task.objects if k != task.target]
        assert any(c == colour for c, _ in others), "no same-colour distractor"
        assert any(s == shape for _, s in others), "no same-shape distractor"


def test_env_splits_use_their_pairs_and_templates(make_env) -> None:
    train = make_env("move_next_to", split="train")
    unseen = make_env("move_next_to", split="unseen")
    para = make_env("move_next_to", split="paraphrase")
    held_out = {
        language.fill(t, {"obj": "X", "ref": "Y"}) for t in language.HELD_OUT_TEMPLATES["move_next_to"]
    }
    for seed in range(15):
        train.reset(seed=seed)
        assert not (set(train.task.objects) & obj.HELD_OUT), "held-out pair shown in train"
        unseen.reset(seed=seed)
        assert unseen.task.target in obj.HELD_OUT
        para.reset(seed=seed)
        slots = {"obj": "X", "ref": "Y"}
        template_text = para.task.instruction.replace(obj.describe(*para.task.target), "X")
        template_text = template_text.replace(obj.describe(*para.task.other), "Y")
        assert template_text in held_out, para.task.instruction
        assert language.fill("move the {obj} next to the {ref}", slots) not in held_out


def test_env_randomized_changes_pixels_not_scene(make_env) -> None:
    plain = make_env("touch")
    rand = make_env("touch", randomize=True)
    obs_p, _ = plain.reset(seed=9)
    obs_r, _ = rand.reset(seed=9)
    assert plain.task == rand.task
    assert not np.array_equal(obs_p["images"]["scene"], obs_r["images"]["scene"])
    assert rand.episode_meta["randomized"] is True
    # Randomization never leaks into the next plain episode (nominal appearance restored).
    obs_p2, _ = plain.reset(seed=9)
    np.testing.assert_array_equal(obs_p["images"]["scene"], obs_p2["images"]["scene"])


def test_env_joint_pos_mode_holds_a_pose(make_env) -> None:
    env = make_env("pick_up", action_mode="joint_pos")
    assert env.action_space.shape == (8,)
    obs, _ = env.reset(seed=0)
    q = obs["state"][:7].copy()
    for _ in range(3):
        obs, *_ = env.step(np.concatenate([q, [0.0]]))
    np.testing.assert_allclose(obs["state"][:7], q, atol=5e-3)


@pytest.mark.parametrize(
    ("action", "match"),
    [
        (np.zeros(6), r"shape \(7,\)"),
        (np.zeros((1, 7)), r"shape \(7,\)"),
        (np.array([0, 0, np.nan, 0, 0, 0, 0]), "NaN/inf at indices \\[2\\]"),
        (np.array([0, 0, 0, np.inf, 0, 0, 0]), "NaN/inf"),
        ("go left", "numeric"),
    ],
)
def test_env_bad_actions_raise(make_env, action, match) -> None:
    env = make_env("pick_up")
    env.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        env.step(action)


def test_env_bad_construction_and_seed_raise(make_env) -> None:
    with pytest.raises(KeyError, match="Did you mean 'pick_up'"):
        TabletopEnv("pickup")
    with pytest.raises(KeyError, match="Did you mean 'unseen'"):
        TabletopEnv("pick_up", split="unsen")
    with pytest.raises(KeyError, match="action mode"):
        TabletopEnv("pick_up", action_mode="torque")
    with pytest.raises(ValueError, match="image_size"):
        TabletopEnv("pick_up", image_size=(0, 96))
    with pytest.raises(KeyError, match="Did you mean 'push'"):
        get_suite("tabletop").make("psh")
    env = make_env("pick_up")
    for bad in ("7", 1.5, True):
        with pytest.raises(TypeError, match="seed must be an int"):
            env.reset(seed=bad)
    with pytest.raises(ValueError, match="seed must be in"):
        env.reset(seed=-1)
    fresh = TabletopEnv("touch", image_size=(16, 16))
    with pytest.raises(RuntimeError, match="before reset"):
        fresh.step(hold_action(fresh))
    fresh.close()


def test_env_embodiment_declares_both_action_modes() -> None:
    from vla.envs.tabletop import make_embodiment

    emb = make_embodiment((64, 80))
    assert [s.name for s in emb.action_spaces] == ["ee_delta", "joint_pos"]
    assert emb.action_space().dim == 7
    assert emb.action_space("joint_pos").dim == 8
    assert emb.state_dim == 22
    assert emb.cameras == ("scene", "wrist")
    assert emb.image_size == (64, 80)
    assert emb.control_hz == 10.0
    assert type(emb).from_dict(emb.to_dict()) == emb


def test_env_fresh_and_reused_envs_agree(make_env) -> None:
    used = make_env("put_in")
    for seed in (1, 2):  # leave some history behind (contacts, warm starts, moved containers)
        used.reset(seed=seed)
        used.step(hold_action(used, gripper=1.0))
    fresh = TabletopEnv("put_in", image_size=used.image_size)
    try:
        a = np.array([0.02, -0.01, -0.03, 0.0, 0.0, 0.1, 0.5], dtype=np.float32)
        obs_u, _ = used.reset(seed=40)
        obs_f, _ = fresh.reset(seed=40)
        for _ in range(3):
            obs_u = used.step(a)[0]
            obs_f = fresh.step(a)[0]
        np.testing.assert_array_equal(obs_u["state"], obs_f["state"])
        np.testing.assert_array_equal(obs_u["images"]["scene"], obs_f["images"]["scene"])
    finally:
        fresh.close()


def test_env_passes_gymnasium_env_checker() -> None:
    import warnings

    from gymnasium.utils.env_checker import check_env

    env = TabletopEnv("touch", image_size=(16, 16))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # unbounded state Box; no registered spec
            check_env(env)
    finally:
        env.close()
