"""Augmentation: shapes/dtypes, consistency across T, independence across batch and cameras."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vla.data.augment import AugmentConfig, augment_batch, augment_images, paraphrase_instructions
from vla.types import Batch

torch.set_num_threads(1)


def windows(
    B: int = 6, T: int = 3, Hi: int = 20, Wi: int = 24, *, same_across_batch: bool = False
) -> torch.Tensor:
    """uint8 [B, T, Hi, Wi, 3] with all T frames of a window equal (so consistency is testable)."""
    gen = torch.Generator().manual_seed(0)
    n = 1 if same_across_batch else B
    frame = torch.randint(0, 256, (n, 1, Hi, Wi, 3), generator=gen, dtype=torch.uint8)
    return frame.expand(B, T, Hi, Wi, 3).contiguous()


def test_data_augment_shape_dtype_and_identity() -> None:
    x = windows()
    out = augment_images(x, AugmentConfig().with_all(1.0), generator=torch.Generator().manual_seed(1))
    assert out.shape == x.shape
    assert out.dtype == torch.uint8
    same = augment_images(x, AugmentConfig.none(), generator=torch.Generator().manual_seed(1))
    assert torch.equal(same, x)
    with pytest.raises(ValueError, match=r"uint8 \[B, T, Hi, Wi, 3\]"):
        augment_images(x.float(), AugmentConfig(), generator=torch.Generator())


@pytest.mark.parametrize("kind", ["p_shift", "p_rotate", "p_color", "p_noise", "p_cutout"])
def test_data_augment_consistent_across_time_independent_across_batch(kind: str) -> None:
    x = windows(B=8, same_across_batch=True)
    cfg = replace(AugmentConfig.none(), **{kind: 1.0, "max_degrees": 15.0})
    out = augment_images(x, cfg, generator=torch.Generator().manual_seed(2))
    for t in range(1, x.shape[1]):
        assert torch.equal(out[:, t], out[:, 0]), f"{kind}: frame {t} was augmented differently"
    assert not torch.equal(out, x), f"{kind} changed nothing"
    distinct = {out[b].numpy().tobytes() for b in range(out.shape[0])}
    assert len(distinct) >= 4, f"{kind}: batch elements share random parameters"


def test_data_augment_shift_is_an_exact_replicate_padded_crop() -> None:
    x = windows(B=5, T=2)
    cfg = AugmentConfig(p_shift=1.0, shift_pad=3, p_color=0.0)
    out = augment_images(x, cfg, generator=torch.Generator().manual_seed(3))
    for b in range(x.shape[0]):
        src = x[b, 0].permute(2, 0, 1)[None].float()  # (1, 3, Hi, Wi)
        padded = F.pad(src, (3, 3, 3, 3), mode="replicate")[0].permute(1, 2, 0).to(torch.uint8)
        crops = [padded[dy : dy + 20, dx : dx + 24] for dy in range(7) for dx in range(7)]
        assert any(torch.equal(out[b, 0], c) for c in crops)


def test_data_augment_cameras_independent() -> None:
    x = windows(B=4)
    batch = Batch(
        images={"scene": x, "wrist": x.clone()},
        state=torch.zeros(4, 3, 2),
        obs_pad=torch.zeros(4, 3, dtype=torch.bool),
        instruction=["pick up the red cube"] * 4,
        actions=torch.zeros(4, 2, 1),
        action_pad=torch.zeros(4, 2, dtype=torch.bool),
    )
    calls: list[str] = []

    def para(s: str, rng: np.random.Generator) -> str:
        calls.append(s)
        return f"please {s}"

    out = augment_batch(
        batch,
        AugmentConfig(p_paraphrase=1.0),
        generator=torch.Generator().manual_seed(4),
        paraphrase=para,
        rng=np.random.default_rng(0),
    )
    assert not torch.equal(out.images["scene"], out.images["wrist"])
    assert out.instruction == ["please pick up the red cube"] * 4
    assert len(calls) == 4
    assert out.state is batch.state


def test_data_paraphrase_probability() -> None:
    rng = np.random.default_rng(0)
    out = paraphrase_instructions(["a"] * 1000, p=0.3, paraphrase=lambda s, r: "b", rng=rng)
    assert 230 < out.count("b") < 370
    assert paraphrase_instructions(["a"] * 10, p=0.0, paraphrase=lambda s, r: "b", rng=rng) == ["a"] * 10


def test_data_augment_config_validation() -> None:
    with pytest.raises(ValueError, match="p_color must be a probability"):
        AugmentConfig(p_color=1.5)
    with pytest.raises(ValueError, match="cutout_min"):
        AugmentConfig(cutout_min=0.5, cutout_max=0.2)
