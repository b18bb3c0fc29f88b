"""Data-layer benchmark: collection speed, image compression (size, write and read speed), sampler
throughput, and h264 round-trip error of the LeRobot export, on real tabletop renders.

    python benchmarks/bench_data.py --episodes-per-task 5 --workers 2
    python benchmarks/bench_data.py --path data/tabletop.h5      # reuse a collected dataset

Prints tables and ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import torch

from vla.data.bench import read_speed, sampler_throughput
from vla.data.collect import CollectConfig, run_collection
from vla.data.lerobot_export import VideoConfig, export_lerobot
from vla.data.lerobot_import import import_lerobot
from vla.data.reader import EpisodeDataset
from vla.data.writer import DatasetWriter


def recompress(src: Path, dst: Path, compression: str) -> float:
    """Copies `src` into `dst` with another image compression; returns the write seconds."""
    with EpisodeDataset(src) as ds:
        episodes = [ds.episode(i) for i in range(len(ds))]
        emb = ds.embodiment
    start = time.perf_counter()
    w = DatasetWriter(dst, embodiment=emb, suite="tabletop", compression=compression)
    for ep in episodes:
        w.append(ep)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--path", type=Path, default=None, help="existing dataset (skips collection)")
    ap.add_argument("--episodes-per-task", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--image-size", type=int, default=96)
    ap.add_argument("--batches", type=int, default=30)
    args = ap.parse_args()
    torch.set_num_threads(1)
    out: dict[str, Any] = {"bench": "data"}
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        path = args.path
        if path is None:
            path = tmp / "tabletop.h5"
            cfg = CollectConfig(
                episodes_per_task=args.episodes_per_task, workers=args.workers, image_size=args.image_size
            )
            report = run_collection(cfg, path)
            out["collect"] = report.to_dict()
            print(
                f"collect: {report.episodes} episodes, {report.steps} steps in {report.wall_seconds:.1f} s "
                f"= {report.steps_per_second:.1f} steps/s with {args.workers} workers"
            )

        print(f"\n{'compression':12s} {'MiB':>8s} {'write s':>8s} {'read frames/s':>14s}")
        out["compression"] = {}
        for comp in ("lzf", "gzip", "none"):
            dst = tmp / f"copy_{comp}.h5"
            write_s = recompress(path, dst, comp)
            read_speed(dst)  # warm the page cache: we compare decode cost, not the disk
            r = read_speed(dst)
            out["compression"][comp] = {"write_s": write_s, **r}
            print(f"{comp:12s} {r['file_mb']:8.1f} {write_s:8.2f} {r['frames_per_s']:14.0f}")

        print(f"\n{'batch':>6s} {'T':>3s} {'H':>3s} {'augment':>8s} {'windows/s':>10s} {'ms/batch':>9s}")
        out["sampler"] = []
        for T, H, aug in ((1, 8, False), (2, 16, False), (2, 16, True)):
            r = sampler_throughput(
                path, batch_size=64, obs_horizon=T, action_horizon=H, batches=args.batches, augment=aug
            )
            out["sampler"].append(r)
            print(f"{64:6d} {T:3d} {H:3d} {aug!s:>8s} {r['windows_per_s']:10.0f} {r['ms_per_batch']:9.2f}")

        lr_dir = tmp / "lerobot"
        start = time.perf_counter()
        export_lerobot(path, lr_dir, video=VideoConfig(crf=18))
        export_s = time.perf_counter() - start
        start = time.perf_counter()
        back = import_lerobot(lr_dir, tmp / "back.h5")
        import_s = time.perf_counter() - start
        errors = []
        with EpisodeDataset(path) as a, EpisodeDataset(back) as b:
            for i in range(len(a)):
                for cam in a.cameras:
                    diff = np.abs(a.read_frames(i, cam).astype(np.float64) - b.read_frames(i, cam))
                    errors.append(diff.mean())
            exact = all(
                np.array_equal(x, y)
                for i in range(len(a))
                for x, y in zip(a.read_low_dim(i), b.read_low_dim(i), strict=True)
            )
        video_mb = sum(f.stat().st_size for f in (lr_dir / "videos").rglob("*.mp4")) / 2**20
        out["lerobot"] = {
            "export_s": export_s,
            "import_s": import_s,
            "crf": 18,
            "video_mb": video_mb,
            "mean_abs_error_255": float(np.mean(errors)),
            "max_episode_mean_abs_error_255": float(np.max(errors)),
            "low_dim_exact": exact,
        }
        print(
            f"\nlerobot export {export_s:.1f} s, import {import_s:.1f} s, videos {video_mb:.2f} MiB (h264 crf 18); "
            f"image error mean {np.mean(errors):.2f}/255 (worst episode {np.max(errors):.2f}); "
            f"state/action exact: {exact}"
        )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
