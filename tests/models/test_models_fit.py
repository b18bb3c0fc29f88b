"""Every preset fits the synthetic task (state + image colour + instruction -> chunk).

The presets cover every head kind: regression (default, act), binned tokens (rt1, openvla),
diffusion (diffusion, octo) and flow matching (pi0); the MSE variant of regression and the vocabulary
language encoder are covered by the extra test below.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vla.models import PolicyConfig
from vla.presets import get_preset, list_presets

# head kind -> (training steps, loss threshold, tolerance on the mean |action error| in robot units).
# Targets span about [-0.6, 0.6]; always predicting zero would err by about 0.47.
BUDGET = {
    "regression": (70, 0.06, 0.08),
    "binned": (100, 1.0, 0.08),
    "diffusion": (150, 0.05, 0.08),
    "flow": (200, 0.25, 0.1),
}


def _check_fit(kit, cfg: PolicyConfig, steps: int, loss_max: float, tol: float) -> None:
    data = kit.make_toy(T=cfg.obs_horizon, H=cfg.action_horizon)
    policy = kit.build(cfg, data)
    losses = kit.fit(policy, data, steps=steps)
    final = float(np.mean(losses[-10:]))
    assert final < loss_max, f"loss {final:.3f} (start {losses[0]:.3f}) did not fall below {loss_max}"
    chunk = policy.predict(data.obs(), generator=torch.Generator().manual_seed(0))
    err = float(np.abs(chunk.actions - data.actions).mean())
    assert err < tol, f"mean |action error| {err:.3f} >= {tol}"


# The grounded preset needs an end-effector state the toy robot lacks: tests/models/test_models_grounding.py.
@pytest.mark.parametrize("name", [n for n in list_presets() if get_preset(n).grounding_loss == 0])
def test_models_preset_fits_synthetic_task(kit, name: str) -> None:
    cfg = kit.tiny(get_preset(name))
    _check_fit(kit, cfg, *BUDGET[cfg.head.kind])


def test_models_mse_head_with_vocab_language_fits(kit) -> None:
    over = {
        "head.loss": "mse",
        "head.ensemble": 1,
        "language.kind": "vocab",
        "language.vocab": ["go", "left", "right"],
        "language.embed_dim": 16,
    }
    _check_fit(kit, kit.tiny(get_preset("default"), **over), 100, 0.01, 0.08)


def test_models_gripper_bce_decodes_to_the_ends(kit) -> None:
    """head.gripper='bce': the gripper dimension is classified, and always decoded to q01 or q99."""
    cfg = kit.tiny(get_preset("default"), **{"head.gripper": "bce"})
    data = kit.make_toy(H=cfg.action_horizon)
    policy = kit.build(cfg, data)
    losses = kit.fit(policy, data, steps=70)
    assert float(np.mean(losses[-10:])) < 0.1
    out = policy.predict(data.obs()).actions[..., 2]  # the toy embodiment's gripper dimension
    stats = policy.stats.action
    ends = np.array([stats.q01[2], stats.q99[2]], dtype=np.float32)
    assert np.isin(np.round(out, 5), np.round(ends, 5)).all()
    np.testing.assert_array_equal(out > ends.mean(), data.actions[..., 2] > 0)
    with pytest.raises(ValueError, match=r"needs head\.kind='regression'"):
        get_preset("pi0").override({"head.gripper": "bce"})
