"""Vision: a pretrained transformers backbone from a local directory, attention maps, random shift."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vla.models import Policy
from vla.models.cameras import random_shift
from vla.presets import get_preset


def _tiny_vit(path: Path) -> Path:
    from transformers import ViTConfig, ViTModel

    cfg = ViTConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=32,
        patch_size=8,
    )
    ViTModel(cfg).save_pretrained(str(path), safe_serialization=True)
    return path


def test_models_hf_vision_backbone_loads_from_local_path(kit, tmp_path: Path) -> None:
    backbone = _tiny_vit(tmp_path / "vit")
    data = kit.make_toy(n=8)
    cfg = kit.tiny(
        get_preset("openvla"),
        **{"vision.kind": "hf", "vision.pretrained_path": str(backbone), "vision.pool": "tokens"},
    )
    policy = kit.build(cfg, data)
    from safetensors.torch import load_file

    saved = load_file(str(backbone / "model.safetensors"))
    key = "embeddings.position_embeddings"  # transformers renames layer weights on load; not this one
    mine = dict(policy.named_parameters())
    assert any(torch.equal(v, saved[key]) for k, v in mine.items() if k.endswith(key)), "weights not loaded"
    kit.fit(policy, data, steps=2)
    chunk = policy.predict(data.obs())
    assert chunk.actions.shape == (8, 4, kit.A)
    # The checkpoint rebuilds the backbone from its saved config, without the original directory.
    ckpt = policy.save_pretrained(tmp_path / "ckpt")
    for f in backbone.iterdir():
        f.unlink()
    np.testing.assert_array_equal(Policy.from_pretrained(ckpt).predict(data.obs()).actions, chunk.actions)


def test_models_hf_vision_refuses_pickled_backbone(kit, tmp_path: Path) -> None:
    d = tmp_path / "bin_only"
    d.mkdir()
    torch.save({"w": torch.zeros(1)}, d / "pytorch_model.bin")
    (d / "config.json").write_text('{"model_type": "vit"}')
    cfg = kit.tiny(get_preset("openvla"), **{"vision.kind": "hf", "vision.pretrained_path": str(d)})
    with pytest.raises(ValueError, match="never unpickles"):
        kit.build(cfg, kit.make_toy(n=4))


@pytest.mark.parametrize("name", ["default", "rt1", "act", "openvla"])
def test_models_attention_map_per_camera(kit, name: str) -> None:
    data = kit.make_toy(n=2, T=get_preset(name).obs_horizon)
    policy = kit.build(kit.tiny(get_preset(name)), data)
    maps = policy.attention_map(data.obs())
    assert maps.ndim == 4 and maps.shape[:2] == (2, 2)
    np.testing.assert_allclose(maps.sum(axis=(2, 3)), 1.0, atol=1e-4)
    assert (maps >= 0).all()


def test_models_random_shift_moves_content_by_whole_pixels() -> None:
    torch.manual_seed(0)
    x = torch.zeros(64, 1, 16, 16)
    x[:, :, 8, 8] = 1.0
    y = random_shift(x, 2)
    assert y.shape == x.shape
    peaks = [divmod(int(img.argmax()), 16) for img in y[:, 0]]
    assert all(abs(r - 8) <= 2 and abs(c - 8) <= 2 for r, c in peaks)
    assert len(set(peaks)) > 5  # different offsets per image
    torch.testing.assert_close(y.sum(dim=(1, 2, 3)), torch.ones(64))  # exact integer shifts
