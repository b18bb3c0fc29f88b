"""Shifted views (`vla.models.shift_views`) and the grounding estimate averaged over them
(`PolicyConfig.grounding_shift`)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from vla.envs.tabletop.labels import SCENE
from vla.models import build_policy
from vla.models.shift_views import shift_grid, shifted_copies
from vla.presets import get_preset


def test_models_shift_grid_and_copies_replicate_edges() -> None:
    assert shift_grid(0) == [(0, 0)]
    grid = shift_grid(2)
    assert grid[0] == (0, 0) and len(set(grid)) == 9 and {dy for dy, _ in grid} == {-2, 0, 2}
    with pytest.raises(ValueError, match="radius must be >= 0"):
        shift_grid(-1)
    img = torch.arange(2 * 1 * 4 * 5 * 3, dtype=torch.int64).reshape(2, 1, 4, 5, 3).to(torch.uint8)
    out = shifted_copies(img, [(0, 0), (1, 0), (0, -2)])
    assert out.shape == (6, 1, 4, 5, 3) and out.dtype == torch.uint8
    torch.testing.assert_close(out[:2], img)
    # (dy=1): row r reads row r+1, the last row repeats the edge.
    torch.testing.assert_close(out[2:4, :, :3], img[:, :, 1:])
    torch.testing.assert_close(out[2:4, :, 3], img[:, :, 3])
    # (dx=-2): column c reads column c-2, the first two repeat column 0.
    torch.testing.assert_close(out[4:6, :, :, 2:], img[:, :, :, :3])
    torch.testing.assert_close(out[4:6, :, :, 1], img[:, :, :, 0])
    with pytest.raises(ValueError, match=r"\[B, T, H, W, C\]"):
        shifted_copies(img[0], [(0, 0)])


def test_models_ground_averages_over_shifted_views(kit) -> None:
    data = kit.make_toy(n=3, seed=0)
    torch.manual_seed(0)
    cfg = kit.tiny(get_preset("default"), grounding_loss=1.0, goal_loss=0.0)
    plain = build_policy(
        cfg, embodiment=kit.embodiment_with_ee(), stats=data.stats(), features=(SCENE,)
    ).eval()
    shifted = build_policy(
        dataclasses.replace(cfg, grounding_shift=2),
        embodiment=plain.embodiment,
        stats=data.stats(),
        features=(SCENE,),
    ).eval()
    shifted.load_state_dict(plain.state_dict())
    obs = data.obs()
    one, avg = plain.estimate(obs)["scene"], shifted.estimate(obs)["scene"]
    assert avg.shape == one.shape == (3, 8) and np.isfinite(avg).all()
    assert not np.allclose(avg, one, atol=1e-6)  # the other eight views count
    # Each row is the mean of that row's nine views: a batch of one gives the same row.
    np.testing.assert_allclose(shifted.estimate(data.obs(np.array([1])))["scene"][0], avg[1], atol=1e-5)
    with pytest.raises(ValueError, match="grounding_shift must be >= 0"):
        dataclasses.replace(cfg, grounding_shift=-1)
