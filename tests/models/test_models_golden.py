"""Golden outputs: a refactor that changes any preset's numbers fails here.

Fixed seed, fixed input -> outputs compared to tests/models/golden/<preset>.json.
Regenerate deliberately with `UPDATE_GOLDEN=1 pytest tests/models/test_models_golden.py`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from vla.presets import get_preset, list_presets

GOLDEN = Path(__file__).parent / "golden"


# The grounded preset needs an end-effector state the toy robot lacks: tests/models/test_models_grounding.py.
@pytest.mark.parametrize("name", [n for n in list_presets() if get_preset(n).grounding_loss == 0])
def test_models_golden_output(kit, name: str) -> None:
    cfg = kit.tiny(get_preset(name))
    data = kit.make_toy(n=2, T=cfg.obs_horizon, H=cfg.action_horizon, seed=1)
    policy = kit.build(cfg, data, seed=0)
    chunk = policy.predict(data.obs(), generator=torch.Generator().manual_seed(0), with_confidence=True)
    got = {
        "actions": np.round(chunk.actions.astype(np.float64), 6).tolist(),
        "confidence": None
        if chunk.confidence is None
        else np.round(chunk.confidence.astype(np.float64), 6).tolist(),
        "num_params": policy.num_params(),
    }
    path = GOLDEN / f"{name}.json"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(json.dumps(got, indent=1) + "\n")
    assert path.is_file(), f"no golden file {path}; create it with UPDATE_GOLDEN=1"
    want = json.loads(path.read_text())
    assert got["num_params"] == want["num_params"]
    np.testing.assert_allclose(got["actions"], want["actions"], atol=1e-4)
    if want["confidence"] is None:
        assert got["confidence"] is None
    else:
        np.testing.assert_allclose(got["confidence"], want["confidence"], atol=1e-4)
