"""Train-time augmentation of image windows and instructions (torch only; torchvision fails to import here).

Every random parameter is drawn once per (batch element, camera) and applied to all T frames of the
window, so motion between frames stays real (as DrQ / Diffusion Policy do for frame stacks); batch
elements and cameras are augmented independently. Images go in and out as uint8 [B, T, Hi, Wi, 3].

Order: integer shift (edge-replicated, exactly DrQ's pad-and-crop, done on uint8 by slicing), small
rotation (nearest-neighbour, edge-replicated, a uint8 gather), colour jitter (brightness, contrast, saturation) and gaussian
noise, cutout. Float work is done only on the windows drawn for it, so cheap settings stay cheap.
"""

from __future__ import annotations


import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch

from vla.types import Batch


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and magnitudes of each augmentation (p_* = chance per batch element and camera).

    Attributes:
        p_shift: chance of a random shift.
        shift_pad: maximum shift in pixels (DrQ's pad of 4 at 84 px).
        p_rotate: chance of a small rotation.
        max_degrees: rotation drawn uniformly in [-max_degrees, max_degrees].
        p_color: chance of colour jitter.
        brightness, contrast, saturation: factors drawn in [1 - x, 1 + x].
        p_noise: chance of additive gaussian noise.
        noise_std: its standard deviation in pixel units (0..255).
        p_cutout: chance of blanking one rectangle with a random colour.
        cutout_min, cutout_max: rectangle side as a fraction of the image side.
        p_paraphrase: chance of replacing an instruction by a paraphrase.
    """

    p_shift: float = 1.0
    shift_pad: int = 4
    p_rotate: float = 0.0
    max_degrees: float = 5.0
    p_color: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    p_noise: float = 0.0
    noise_std: float = 4.0
    p_cutout: float = 0.0
    cutout_min: float = 0.1
    cutout_max: float = 0.3
    p_paraphrase: float = 0.0

    def __post_init__(self) -> None:
        for name in ("p_shift", "p_rotate", "p_color", "p_noise", "p_cutout", "p_paraphrase"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"AugmentConfig.{name} must be a probability in [0, 1], got {p}")
        for name in ("shift_pad", "max_degrees", "noise_std"):
            if getattr(self, name) < 0:
                raise ValueError(f"AugmentConfig.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("brightness", "contrast", "saturation"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"AugmentConfig.{name} must be in [0, 1), got {getattr(self, name)}")
        if not 0.0 < self.cutout_min <= self.cutout_max <= 1.0:
            raise ValueError(
                f"AugmentConfig needs 0 < cutout_min <= cutout_max <= 1, got {self.cutout_min}, {self.cutout_max}"
            )

    @classmethod
    def none(cls) -> AugmentConfig:
        """A config that leaves everything unchanged (for validation batches)."""
        return cls(p_shift=0.0, p_rotate=0.0, p_color=0.0, p_noise=0.0, p_cutout=0.0, p_paraphrase=0.0)

    def with_all(self, p: float) -> AugmentConfig:
        """Returns a copy with every image augmentation's probability set to `p`."""
        return replace(self, p_shift=p, p_rotate=p, p_color=p, p_noise=p, p_cutout=p)


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def _chance(n: int, p: float, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=gen) < p


def _shift(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Integer shift with edge replication (= DrQ's replicate-pad + random crop), on uint8 directly.

    x: uint8 [B, T, Hi, Wi, 3]; one offset per batch element, shared by its T frames.
    """
    B, _, Hi, Wi, _ = x.shape
    on = _chance(B, cfg.p_shift, gen)
    p = cfg.shift_pad
    dy = (torch.randint(-p, p + 1, (B,), generator=gen) * on).tolist()
    dx = (torch.randint(-p, p + 1, (B,), generator=gen) * on).tolist()
    if not any(dy) and not any(dx):
        return x
    top, bottom = x[:, :, :1].expand(-1, -1, p, -1, -1), x[:, :, -1:].expand(-1, -1, p, -1, -1)
    xp = torch.cat([top, x, bottom], dim=2)  # (B, T, Hi+2p, Wi, 3)
    left, right = xp[:, :, :, :1].expand(-1, -1, -1, p, -1), xp[:, :, :, -1:].expand(-1, -1, -1, p, -1)
    xp = torch.cat([left, xp, right], dim=3)  # (B, T, Hi+2p, Wi+2p, 3)
    out = torch.empty_like(x)
    # A loop over B slices (one memcpy each) beats one advanced-indexing gather by ~10x on a CPU.
    for b in range(B):
        out[b] = xp[b, :, p + dy[b] : p + dy[b] + Hi, p + dx[b] : p + dx[b] + Wi]
    return out


def _rotate(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Small rotation about the image centre for a random subset of windows, edge-replicated.

    Nearest-neighbour through one precomputed source index per pixel (a uint8 gather shared by the T
    frames and 3 channels): several times cheaper than bilinear `grid_sample` in float on a CPU, and
    for a few degrees the difference is a one-pixel staircase on edges.
    """
    B, T, Hi, Wi, C = x.shape
    on = _chance(B, cfg.p_rotate, gen)
    angle = _uniform(B, -cfg.max_degrees, cfg.max_degrees, gen) * math.pi / 180.0
    sel = on.nonzero().flatten()
    if sel.numel() == 0:
        return x
    n = sel.numel()
    cos, sin = torch.cos(angle[sel]).view(n, 1, 1), torch.sin(angle[sel]).view(n, 1, 1)
    yy = torch.arange(Hi, dtype=torch.float32).view(1, Hi, 1) - (Hi - 1) / 2  # pixel centres
    xx = torch.arange(Wi, dtype=torch.float32).view(1, 1, Wi) - (Wi - 1) / 2
    src_x = (cos * xx - sin * yy + (Wi - 1) / 2).round().clamp(0, Wi - 1).long()  # (n, Hi, Wi)
    src_y = (sin * xx + cos * yy + (Hi - 1) / 2).round().clamp(0, Hi - 1).long()
    index = (src_y * Wi + src_x).view(n, 1, Hi * Wi, 1).expand(n, T, Hi * Wi, C)
    rotated = torch.gather(x[sel].reshape(n, T, Hi * Wi, C), 2, index).view(n, T, Hi, Wi, C)
    out = x.clone()
    out[sel] = rotated
    return out


_LUMA = torch.tensor([0.299, 0.587, 0.114])  # ITU-R 601, as torchvision's grayscale


def _photometric(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Colour jitter (brightness, contrast, saturation) and gaussian noise on the windows drawn for them.

    Brightness b, contrast c and saturation s compose into one affine map per window (torchvision's three
    ops without their intermediate clamps, which only differ where pixels saturate). With luma L(x):
        out = c*b*s * x + c*b*(1-s) * L(x) + (1-c)*b * mean(L(x))     (mean per frame)
    so each pixel costs one multiply-add. Only the drawn subset is converted to float.
    """
    B, _, Hi, Wi, C = x.shape
    none = torch.zeros(B, dtype=torch.bool)
    colour = _chance(B, cfg.p_color, gen) if cfg.p_color > 0 else none
    noise = _chance(B, cfg.p_noise, gen) if cfg.p_noise > 0 and cfg.noise_std > 0 else none
    fb = 1 + _uniform(B, -cfg.brightness, cfg.brightness, gen)
    fc = 1 + _uniform(B, -cfg.contrast, cfg.contrast, gen)
    fs = 1 + _uniform(B, -cfg.saturation, cfg.saturation, gen)
    sel = (colour | noise).nonzero().flatten()
    if sel.numel() == 0:
        return x
    n = sel.numel()
    c_on = colour[sel]
    shape = (n, 1, 1, 1, 1)
    b = torch.where(c_on, fb[sel], 1.0).view(shape)
    c = torch.where(c_on, fc[sel], 1.0).view(shape)
    s = torch.where(c_on, fs[sel], 1.0).view(shape)
    y = x[sel].float()  # (n, T, Hi, Wi, 3)
    luma = (y @ _LUMA)[..., None]  # (n, T, Hi, Wi, 1)
    mean = luma.mean(dim=(2, 3), keepdim=True)  # (n, T, 1, 1, 1): per frame, as torchvision
    y.mul_(c * b * s).add_(luma.mul_(c * b * (1 - s)).add_(mean * ((1 - c) * b)))
    if noise.any():
        # One noise field per window, shared by its T frames (same random parameters across time).
        field = torch.randn(n, 1, Hi, Wi, C, generator=gen) * cfg.noise_std
        y.add_(field * noise[sel].view(shape))
    out = x.clone()
    out[sel] = y.clamp_(0, 255).round_().to(torch.uint8)
    return out


def _cutout(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Blanks one rectangle per drawn window (same place in all T frames) with a random colour."""
    B, _, Hi, Wi, _ = x.shape
    on = _chance(B, cfg.p_cutout, gen).tolist()
    h = (_uniform(B, cfg.cutout_min, cfg.cutout_max, gen) * Hi).round().long().clamp(min=1)
    w = (_uniform(B, cfg.cutout_min, cfg.cutout_max, gen) * Wi).round().long().clamp(min=1)
    top = (torch.rand(B, generator=gen) * (Hi - h + 1)).long().tolist()
    left = (torch.rand(B, generator=gen) * (Wi - w + 1)).long().tolist()
    colour = (torch.rand(B, 3, generator=gen) * 255).to(torch.uint8)
    if not any(on):
        return x
    out = x.clone()
    hs, ws = h.tolist(), w.tolist()
    for b in range(B):  # one small slice fill per window: cheaper than a full-size masked select
        if on[b]:
            out[b, :, top[b] : top[b] + hs[b], left[b] : left[b] + ws[b]] = colour[b]
    return out


def augment_images(images: torch.Tensor, cfg: AugmentConfig, *, generator: torch.Generator) -> torch.Tensor:
    """Augments one camera's windows.

    Args:
        images: uint8 [B, T, Hi, Wi, 3].
        cfg: what to apply.
        generator: the source of randomness (seed it for reproducible augmentation).

    Returns:
        uint8 [B, T, Hi, Wi, 3].
    """
    if images.dtype != torch.uint8 or images.ndim != 5 or images.shape[-1] != 3:
        raise ValueError(
            f"augment_images expects uint8 [B, T, Hi, Wi, 3], got {images.dtype} {tuple(images.shape)}"
        )
    x = images
    if cfg.p_shift > 0 and cfg.shift_pad > 0:
        x = _shift(x, cfg, generator)
    if cfg.p_rotate > 0 and cfg.max_degrees > 0:
        x = _rotate(x, cfg, generator)
    if cfg.p_color > 0 or cfg.p_noise > 0:
        x = _photometric(x, cfg, generator)
    if cfg.p_cutout > 0:
        x = _cutout(x, cfg, generator)
    return x.contiguous()


def paraphrase_instructions(
    instructions: list[str],
    *,
    p: float,
    paraphrase: Callable[[str, np.random.Generator], str],
    rng: np.random.Generator,
) -> list[str]:
    """Replaces each instruction by `paraphrase(instruction, rng)` with probability `p`.

    Training passes the dataset's suite's `paraphrase` (`vla.envs.base.suite_paraphraser`).
    """
    return [paraphrase(s, rng) if rng.random() < p else s for s in instructions]


def augment_batch(
    batch: Batch,
    cfg: AugmentConfig,
    *,
    generator: torch.Generator,
    paraphrase: Callable[[str, np.random.Generator], str] | None = None,
    rng: np.random.Generator | None = None,
) -> Batch:
    """Returns `batch` with every camera augmented independently and, if `paraphrase` is given,
    instructions paraphrased with probability `cfg.p_paraphrase` (drawn from `rng`)."""
    instructions = batch.instruction
    if paraphrase is not None and cfg.p_paraphrase > 0:
        if rng is None:
            raise ValueError("augment_batch: paraphrasing needs an `rng` (numpy Generator)")
        instructions = paraphrase_instructions(
            instructions, p=cfg.p_paraphrase, paraphrase=paraphrase, rng=rng
        )
    # replace(), not a new Batch: fields added later (e.g. the sub-goal) must survive augmentation.
    return replace(
        batch,
        images={cam: augment_images(v, cfg, generator=generator) for cam, v in batch.images.items()},
        instruction=instructions,
    )
