"""Shifted copies of a batch of images, for averaging a prediction over them (test-time augmentation).

The grounding head was trained on randomly shifted views (`vla.data.augment`, DrQ's pad-and-crop), so
its estimate of one frame moves by a few millimetres with the crop. Averaging it over a 3 x 3 grid of
shifts cancels part of that error (docs/measured.md, "Averaged first-frame estimate").
"""

from __future__ import annotations

import torch


def shift_grid(radius: int) -> list[tuple[int, int]]:
    """The (dy, dx) pixel offsets of a 3 x 3 grid of spacing `radius`, the unshifted view first;
    [(0, 0)] alone for radius 0."""
    if radius < 0:
        raise ValueError(f"shift radius must be >= 0 pixels, got {radius}")
    if radius == 0:
        return [(0, 0)]
    steps = (0, radius, -radius)
    return [(dy, dx) for dy in steps for dx in steps]


def shifted_copies(images: torch.Tensor, offsets: list[tuple[int, int]]) -> torch.Tensor:
    """images [B, T, H, W, C] -> [K * B, T, H, W, C], copy k shifted by offsets[k] with the edge
    pixels replicated (the same operation as the training augmentation's shift)."""
    if images.ndim != 5:
        raise ValueError(f"images must be [B, T, H, W, C], got shape {tuple(images.shape)}")
    H, W = images.shape[2], images.shape[3]
    rows, cols = torch.arange(H, device=images.device), torch.arange(W, device=images.device)
    copies = []
    for dy, dx in offsets:
        r = (rows + dy).clamp(0, H - 1)
        c = (cols + dx).clamp(0, W - 1)
        copies.append(images.index_select(2, r).index_select(3, c))
    return torch.cat(copies, dim=0)
