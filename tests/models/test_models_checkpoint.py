"""Checkpoints: identical outputs after save -> load, and refusal of unsafe or incomplete directories."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from vla.models import Policy
from vla.presets import get_preset


@pytest.fixture
def saved(kit, tmp_path: Path) -> tuple[Policy, Path, object]:
    data = kit.make_toy(n=8)
    policy = kit.build(kit.tiny(get_preset("default")), data)
    kit.fit(policy, data, steps=3)
    out = policy.save_pretrained(tmp_path / "ckpt", metadata={"run": "unit-test"})
    return policy, out, data


def test_models_checkpoint_roundtrip_identical(saved) -> None:
    policy, path, data = saved
    assert sorted(p.name for p in path.iterdir()) == [
        "config.json",
        "metadata.json",
        "model.safetensors",
        "stats.json",
    ]
    loaded = Policy.from_pretrained(path)
    a, b = policy.predict(data.obs()), loaded.predict(data.obs())
    np.testing.assert_array_equal(a.actions, b.actions)
    np.testing.assert_array_equal(a.confidence, b.confidence)
    assert loaded.config == policy.config
    assert loaded.stats.to_dict() == policy.stats.to_dict()
    meta = json.loads((path / "metadata.json").read_text())
    assert meta["run"] == "unit-test"
    assert meta["cameras"] == ["scene", "wrist"]
    assert "MiniLM" in meta["instruction_encoder"]
    assert meta["embodiment"]["name"] == "toy"


def test_models_checkpoint_excludes_frozen_text_encoder(saved) -> None:
    _, path, _ = saved
    from safetensors import safe_open

    with safe_open(str(path / "model.safetensors"), framework="pt") as f:
        keys = list(f.keys())
    assert keys and not any(k.startswith("language.") for k in keys)


def test_models_checkpoint_without_stats_is_refused(saved) -> None:
    _, path, _ = saved
    (path / "stats.json").unlink()
    with pytest.raises(ValueError, match=r"no stats\.json"):
        Policy.from_pretrained(path)


def test_models_checkpoint_with_only_pickle_is_refused(saved, tmp_path: Path) -> None:
    _, path, _ = saved
    bad = tmp_path / "pickled"
    shutil.copytree(path, bad)
    (bad / "model.safetensors").unlink()
    # A real pickle that would run code if anyone unpickled it.
    torch.save({"w": torch.zeros(1)}, bad / "pytorch_model.bin")
    with pytest.raises(ValueError, match="will not unpickle"):
        Policy.from_pretrained(bad)


def test_models_checkpoint_bad_config_and_weights_are_refused(saved, tmp_path: Path) -> None:
    _, path, _ = saved
    cfg = json.loads((path / "config.json").read_text())
    cfg["head"]["kind"] = "banana"
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"head\.kind"):
        Policy.from_pretrained(path)
    cfg["head"]["kind"] = "binned"  # valid, but the saved weights belong to a regression head
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="do not match"):
        Policy.from_pretrained(path)
    with pytest.raises(FileNotFoundError):
        Policy.from_pretrained(tmp_path / "nowhere")


def test_models_checkpoint_metadata_cannot_override_reserved_keys(saved, tmp_path: Path) -> None:
    policy, _, _ = saved
    with pytest.raises(ValueError, match="embodiment"):
        policy.save_pretrained(tmp_path / "x", metadata={"embodiment": "other"})
