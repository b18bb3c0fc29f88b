"""The auxiliary sub-goal head (`PolicyConfig.goal_loss`): built only when asked and possible, learns
to locate what the image shows, and travels with the checkpoint."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from vla.models import Policy, build_policy
from vla.presets import get_preset

HI = 32


def _spot_data(kit, n: int = 48, seed: int = 0):
    """A white 6x6 spot at a random place in the scene image; the sub-goal is the spot's (x, y, 0.5)."""
    data = kit.make_toy(n=n, seed=seed)
    rng = np.random.default_rng(seed + 1)
    xy = rng.integers(0, HI - 6, (n, 2))
    data.images["scene"][:] = 20
    for i, (x, y) in enumerate(xy):
        data.images["scene"][i, :, y : y + 6, x : x + 6] = 255
    goal = np.concatenate([xy / (HI - 6), np.full((n, 1), 0.5)], axis=1).astype(np.float32)
    data.state[:, :, -3:] = goal[:, None]  # so the ee_pos statistics cover the goals' range
    return data, torch.from_numpy(goal)


def _build(kit, data, goal_loss: float) -> Policy:
    torch.manual_seed(0)
    cfg = kit.tiny(get_preset("default"), goal_loss=goal_loss)
    stats = data.stats()
    return build_policy(cfg, embodiment=kit.embodiment_with_ee(), stats=stats)


def test_models_goal_head_only_when_asked_and_possible(kit) -> None:
    data, _ = _spot_data(kit)
    assert _build(kit, data, 0.0).goal is None
    assert "goal" not in _build(kit, data, 0.0).param_groups_by_name()
    with_goal = _build(kit, data, 1.0)
    assert with_goal.goal is not None
    assert len(with_goal.param_groups_by_name()["goal"]) == 4  # two Linear layers: weights + biases
    # The toy embodiment has no ee_pos state field: no sub-goal can be defined, so no head.
    cfg = kit.tiny(get_preset("default"), goal_loss=1.0)
    assert build_policy(cfg, embodiment=kit.embodiment(), stats=data.stats()).goal is None


def test_models_goal_head_learns_where_the_spot_is(kit, tmp_path) -> None:
    data, goal = _spot_data(kit)
    policy = _build(kit, data, 1.0)
    assert policy.goal is not None
    batch = dataclasses.replace(data.batch(), features={"subgoal": goal})
    opt = torch.optim.AdamW(policy.parameters(), lr=3e-3, weight_decay=0.0)
    policy.train()
    first = None
    for _ in range(150):
        loss, metrics = policy.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = metrics["goal_cm"] if first is None else first
    policy.eval()
    with torch.no_grad():
        images, state, instr = policy._obs_tensors(data.obs())
        _, vis = policy._encode(images, state, instr)
        pred = policy.goal(vis.tokens) * policy.goal.std + policy.goal.mean
    err = float((pred - goal)[:, :2].abs().mean())
    baseline = float((goal[:, :2] - goal[:, :2].mean(0)).abs().mean())  # always guessing the mean
    assert err < 0.3 * baseline, f"sub-goal error {err:.3f} vs {baseline:.3f} for the mean guess"
    assert metrics["goal_cm"] < 0.5 * first
    # The head is checkpoint data: it is saved and loaded with the policy.
    loaded = Policy.from_pretrained(policy.save_pretrained(tmp_path / "ckpt"))
    assert loaded.goal is not None
    for name, tensor in policy.goal.state_dict().items():
        torch.testing.assert_close(loaded.goal.state_dict()[name], tensor)
    torch.testing.assert_close(loaded.goal.std, policy.goal.std)
