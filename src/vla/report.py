"""Evaluation outputs: `results.json`, rollout videos, an attention overlay and a self-contained `report.html`.

The HTML needs no JavaScript or network: tables, an inline SVG bar chart of success per family with its
95% interval, the videos (relative links) and a PNG showing where the policy attends on the first frame.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vla.types import Observation


def write_report(summary: dict[str, Any], results: list[Any], *, policy: Any, out: Path) -> Path:
    """Writes results.json, videos/, attention.png and report.html under `out`; returns the report path."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(summary, indent=1))
    videos = _write_videos(results, out / "videos", fps=policy.embodiment.control_hz)
    overlay = _write_attention(results, policy, out / "attention.png")
    page = _html(
        summary, videos=[v.relative_to(out) for v in videos], overlay=overlay.name if overlay else None
    )
    path = out / "report.html"
    path.write_text(page)
    return path


def _write_videos(results: list[Any], folder: Path, *, fps: float) -> list[Path]:
    import imageio.v2 as imageio

    paths = []
    for r in results:
        if r.frames is None or len(r.frames) == 0:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{r.family}_seed{r.seed}_{'success' if r.success else 'failure'}.mp4"
        frames: list[Any] = [_upscale(f, 2) for f in r.frames]
        imageio.mimsave(path, frames, fps=fps, codec="libx264", quality=7, macro_block_size=1)
        paths.append(path)
    return paths


def _upscale(frame: np.ndarray, k: int) -> np.ndarray:
    return np.repeat(np.repeat(frame, k, axis=0), k, axis=1)


def _write_attention(results: list[Any], policy: Any, path: Path) -> Path | None:
    """Overlays the policy's attention map on the first recorded frame of each camera."""
    first = next((r.first_obs for r in results if r.first_obs is not None), None)
    if first is None or not hasattr(policy, "attention_map"):
        return None
    obs = Observation(images=first["images"], state=first["state"], instruction=first["instruction"])
    maps = policy.attention_map(obs)[0]  # (V, h, w)
    tiles = []
    for cam, m in zip(policy.config.cameras, maps, strict=True):
        img = first["images"][cam]
        heat = (
            np.asarray(
                Image.fromarray((m / max(m.max(), 1e-12) * 255).astype(np.uint8)).resize(
                    (img.shape[1], img.shape[0]), Image.Resampling.BILINEAR
                ),
                dtype=np.float32,
            )[..., None]
            / 255.0
        )  # (Hi, Wi, 1)
        red = np.zeros_like(img, dtype=np.float32)
        red[..., 0] = 255.0
        blend = img.astype(np.float32) * (1 - 0.6 * heat) + red * 0.6 * heat
        tiles.append(np.concatenate([img, blend.clip(0, 255).astype(np.uint8)], axis=0))
    Image.fromarray(_upscale(np.concatenate(tiles, axis=1), 3)).save(path)
    return path


def _bar_chart(per_family: dict[str, dict[str, Any]]) -> str:
    """Inline SVG: one bar per family with its 95% interval as a whisker."""
    w_bar, gap, height, top = 60, 20, 200, 20
    width = len(per_family) * (w_bar + gap) + gap
    parts = [f'<svg width="{width}" height="{height + 60}" xmlns="http://www.w3.org/2000/svg">']
    parts.append(f'<line x1="0" y1="{top + height}" x2="{width}" y2="{top + height}" stroke="#333"/>')
    for i, (fam, v) in enumerate(per_family.items()):
        x = gap + i * (w_bar + gap)
        h = v["success_rate"] * height
        lo, hi = v["ci95"]
        parts.append(
            f'<rect x="{x}" y="{top + height - h:.1f}" width="{w_bar}" height="{h:.1f}" fill="#4a7bd0"/>'
        )
        cx = x + w_bar / 2
        parts.append(
            f'<line x1="{cx}" x2="{cx}" y1="{top + height - hi * height:.1f}" y2="{top + height - lo * height:.1f}" '
            'stroke="#111" stroke-width="2"/>'
        )
        parts.append(
            f'<text x="{cx}" y="{top + height - h - 4:.1f}" font-size="11" text-anchor="middle">'
            f"{100 * v['success_rate']:.0f}%</text>"
        )
        parts.append(
            f'<text x="{cx}" y="{top + height + 16}" font-size="10" text-anchor="middle">{html.escape(fam)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _html(summary: dict[str, Any], *, videos: list[Path], overlay: str | None) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(f)}</td><td>{100 * v['success_rate']:.1f}%</td>"
        f"<td>{100 * v['ci95'][0]:.0f}–{100 * v['ci95'][1]:.0f}%</td><td>{v['episodes']}</td>"
        f"<td>{v['episode_length']:.1f}</td><td>{v['jerk']:.2f}</td><td>{v['interventions']}</td></tr>"
        for f, v in summary["per_family"].items()
    )
    lat = summary["latency_ms"]
    by_reason = summary.get("safety_interventions_by_reason", {})
    reasons = f" ({', '.join(f'{html.escape(k)} {n}' for k, n in by_reason.items())})" if by_reason else ""
    physical = summary.get("safety_interventions_physical_by_reason", {})
    if "safety_interventions_physical" in summary:
        detail = ", ".join(f"{html.escape(k)} {n}" for k, n in physical.items())
        reasons += (
            f"; {summary['safety_interventions_physical']} of them changed the robot's command beyond "
            f"what its driver does by itself{f' ({detail})' if detail else ''}"
        )
    vids = "".join(
        f'<figure><video src="{html.escape(str(v))}" controls loop muted width="384"></video>'
        f"<figcaption>{html.escape(v.stem)}</figcaption></figure>"
        for v in videos[:8]
    )
    attn = (
        f"<h2>Where the policy looks</h2><p>Top: camera images; bottom: attention on the first frame.</p>"
        f'<img src="{overlay}" alt="attention overlay">'
        if overlay
        else ""
    )
    perturb = summary.get("perturb") or []
    perturbed = f", perturbed: {html.escape(', '.join(perturb))}" if perturb else ""
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>vla evaluation</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:70em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}td:first-child{{text-align:left}}
figure{{display:inline-block;margin:0 1em 1em 0}}</style></head><body>
<h1>Evaluation: {html.escape(summary["suite"])} / {html.escape(summary["split"])}{perturbed}</h1>
<p>Checkpoint <code>{html.escape(summary["checkpoint"])}</code>. Overall success
<b>{100 * summary["success_rate"]:.1f}%</b> (mean over families; pooled 95% interval
{100 * summary["ci95"][0]:.0f}–{100 * summary["ci95"][1]:.0f}%) over {summary["episodes"]} episodes.
Policy latency per model call: median {lat["median"]:.2f} ms, p95 {lat["p95"]:.2f} ms ({lat["calls"]} calls).
Safety interventions: {summary["safety_interventions"]}{reasons}.
Wall time {summary["wall_s"]:.0f} s.</p>
{_bar_chart(summary["per_family"])}
<table><tr><th>family</th><th>success</th><th>95% CI</th><th>episodes</th><th>mean length</th>
<th>jerk (m/s³)</th><th>interventions</th></tr>{rows}</table>
<h2>Rollouts</h2>{vids}
{attn}
</body></html>
"""
