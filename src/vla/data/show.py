"""Renders an episode for a person: cameras side by side, the instruction, and the actions over time.

A frame (uint8 [Hf, Wf, 3]) is: a text banner (instruction, step, family), the cameras scaled up side by
side, and a plot of every action dimension over the whole episode with a cursor at the current step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import imageio.v2 as imageio
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vla.data.episode import Episode

_COLOURS = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
]
_BANNER = 34
_PLOT = 140


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without the bundled scalable font
        return ImageFont.load_default()


def _scale(episode: Episode) -> int:
    """Integer upscale so small camera images stay readable (at least ~192 px tall)."""
    hi = next(iter(episode.images.values())).shape[1]
    return max(1, 192 // hi)


def _plot(actions: np.ndarray, width: int, names: list[str]) -> tuple[Image.Image, np.ndarray]:
    """Draws every action dimension over time, each scaled to its own range (small arm deltas stay
    visible next to a 0..1 gripper); returns the image and the x pixel of each step."""
    n, a = actions.shape
    img = Image.new("RGB", (width, _PLOT), (250, 250, 250))
    draw = ImageDraw.Draw(img)
    font = _font(11)
    left, right, bottom = 8, width - 8, _PLOT - 6
    # Legend first (wrapping to more lines when narrow), then the curves below it.
    x, y = float(left), 2
    for d, label in enumerate(
        ["actions (per-dim scale):"] + [names[d] if d < len(names) else f"a{d}" for d in range(a)]
    ):
        w = draw.textlength(label, font=font)
        if x + w > right and x > left:
            x, y = float(left), y + 12
        draw.text(
            (x, y), label, fill=(60, 60, 60) if d == 0 else _COLOURS[(d - 1) % len(_COLOURS)], font=font
        )
        x += w + 6
    top = y + 16
    lo, hi = actions.min(axis=0), actions.max(axis=0)  # (A,)
    span = np.where(hi > lo, hi - lo, 1.0)
    xs = left + (np.arange(n) / max(n - 1, 1)) * (right - left)
    draw.line([(left, bottom), (right, bottom)], fill=(180, 180, 180))
    for d in range(a):
        colour = _COLOURS[d % len(_COLOURS)]
        ys = bottom - (actions[:, d] - lo[d]) / span[d] * (bottom - top)
        if n > 1:
            draw.line(list(zip(xs.tolist(), ys.tolist(), strict=True)), fill=colour, width=2)
        else:
            draw.ellipse([xs[0] - 2, ys[0] - 2, xs[0] + 2, ys[0] + 2], fill=colour)
    return img, xs


def episode_frames(episode: Episode, *, action_names: list[str] | None = None) -> np.ndarray:
    """Renders every step of `episode`.

    Args:
        episode: the episode (all cameras must share one image size).
        action_names: labels of the action dimensions (default a0, a1, ...).

    Returns:
        uint8 [N, Hf, Wf, 3].
    """
    s = _scale(episode)
    cams = list(episode.images)
    hi, wi = episode.images[cams[0]].shape[1:3]
    width = wi * s * len(cams)
    names = action_names or [f"a{d}" for d in range(episode.actions.shape[1])]
    plot, xs = _plot(episode.actions, width, names)
    font = _font(13)
    family = episode.family
    frames = np.empty((len(episode), _BANNER + hi * s + _PLOT, width, 3), dtype=np.uint8)
    for t in range(len(episode)):
        canvas = Image.new("RGB", (width, frames.shape[1]), (255, 255, 255))
        draw = ImageDraw.Draw(canvas)
        draw.text((6, 2), episode.instruction, fill=(0, 0, 0), font=font)
        status = f"step {t + 1}/{len(episode)}  {family}  {'success' if episode.success else 'failure'}"
        draw.text((6, 18), status, fill=(90, 90, 90), font=_font(11))
        row = np.concatenate(
            [np.kron(episode.images[c][t], np.ones((s, s, 1), dtype=np.uint8)) for c in cams], axis=1
        )  # (hi*s, wi*s*V, 3): nearest-neighbour upscale keeps pixels honest
        canvas.paste(Image.fromarray(row), (0, _BANNER))
        for v, c in enumerate(cams):
            draw.text((v * wi * s + 4, _BANNER + 2), c, fill=(255, 255, 0), font=_font(11))
        canvas.paste(plot, (0, _BANNER + hi * s))
        x = float(xs[t])
        draw.line([(x, _BANNER + hi * s + 30), (x, frames.shape[1] - 4)], fill=(0, 0, 0), width=1)
        frames[t] = np.asarray(canvas)
    return frames


def contact_sheet(frames: np.ndarray, *, columns: int = 4, count: int = 8) -> np.ndarray:
    """Tiles `count` evenly spaced frames of uint8 [N, Hf, Wf, 3] into one uint8 image."""
    idx = np.unique(np.linspace(0, len(frames) - 1, num=min(count, len(frames))).round().astype(int))
    tiles = [frames[i] for i in idx]
    rows = -(-len(tiles) // columns)
    blank = np.full_like(tiles[0], 255)
    tiles += [blank] * (rows * columns - len(tiles))
    return np.concatenate(
        [np.concatenate(tiles[r * columns : (r + 1) * columns], axis=1) for r in range(rows)], axis=0
    )


def write_episode_media(
    episode: Episode, out: str | Path, *, fps: float, action_names: list[str] | None = None
) -> Path:
    """Writes `episode` as an .mp4/.gif video or a .png contact sheet (chosen by the suffix)."""
    out = Path(out)
    frames = episode_frames(episode, action_names=action_names)
    out.parent.mkdir(parents=True, exist_ok=True)
    suffix = out.suffix.lower()
    if suffix in (".png", ".jpg", ".jpeg"):
        imageio.imwrite(out, contact_sheet(frames))
    elif suffix == ".mp4":
        # Even sizes for yuv420p; macro_block_size=1 stops imageio from resizing.
        h, w = frames.shape[1] - frames.shape[1] % 2, frames.shape[2] - frames.shape[2] % 2
        writer: Any = imageio.get_writer(
            out,
            format="FFMPEG",
            fps=fps,
            codec="libx264",
            pixelformat="yuv420p",
            macro_block_size=1,
            ffmpeg_log_level="error",
        )
        with writer:
            for f in frames:
                writer.append_data(f[:h, :w])
    elif suffix == ".gif":
        imageio.mimsave(out, list(frames), duration=1.0 / fps)
    else:
        raise ValueError(f"{out}: unsupported output type '{suffix}'; use .mp4, .gif or .png")
    return out
