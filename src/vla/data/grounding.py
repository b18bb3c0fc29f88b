"""Grounding sets: rendered views labelled with one declared feature (images + instruction -> its value).

Made by `vla collect-grounding` from a suite that can label its scenes (`GroundingSuite`: the suite's
`grounding_feature` and `grounding_scenes`), read by `vla train --grounding FILE`, which co-trains the
policy's grounding head (the head that estimates that feature) on them.

Layout: `images/<camera>` uint8 [N, Hi, Wi, 3]; `state` float32 [N, S] (the robot state of each view,
so the head can turn what the wrist camera sees into table coordinates); `instruction` and `family`
UTF-8 strings [N];
`labels` and `mask` float32 [N, D]; attributes `format`, `suite`, `feature` (the declaration, JSON),
`cameras` (JSON).
Scene seeds start at `SEED_OFFSET`, far from the seeds demonstrations (0...) and evaluations (100000...)
use, so no evaluated layout is ever a grounding scene.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from vla.envs.base import GroundingSuite, get_suite
from vla.features import Feature
from vla.types import GroundingBatch

FORMAT = "vla-grounding-2"  # 2: the labels' feature declaration replaces a list of label names
SEED_OFFSET = 50_000_000
CHUNK_SCENES = 50  # scenes per worker task: big enough to amortize env start-up, small for progress


class GroundingSet:
    """A grounding file held in memory (`len(g)` views; `g.get_batch(idx)`).

    Raises:
        FileNotFoundError / ValueError: a missing file, or one that is not a grounding set, naming the field.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: no such grounding file (make one with `vla collect-grounding`)")
        with h5py.File(self.path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise ValueError(f"{self.path}: not a grounding set (format {f.attrs.get('format')!r}, expected {FORMAT!r})")
            self.suite = str(f.attrs["suite"])
            self.feature = Feature.from_dict(json.loads(f.attrs["feature"]))
            self.cameras = tuple(json.loads(f.attrs["cameras"]))
            self.images = {c: f[f"images/{c}"][()] for c in self.cameras}
            self.instruction = [s.decode() if isinstance(s, bytes) else str(s) for s in f["instruction"][()]]
            self.family = [s.decode() if isinstance(s, bytes) else str(s) for s in f["family"][()]]
            self.state = f["state"][()].astype(np.float32)
            self.labels = f["labels"][()].astype(np.float32)
            self.mask = f["mask"][()].astype(np.float32)
        n = len(self.instruction)
        for c, im in self.images.items():
            if im.dtype != np.uint8 or im.ndim != 4 or im.shape[0] != n or im.shape[-1] != 3:
                raise ValueError(f"{self.path}: images/{c} must be uint8 [{n}, Hi, Wi, 3], got {im.dtype} {im.shape}")
        if self.state.ndim != 2 or self.state.shape[0] != n:
            raise ValueError(f"{self.path}: state must be float32 [{n}, S], got {self.state.shape}")
        want = (n, self.feature.size)
        if self.labels.shape != want or self.mask.shape != want:
            raise ValueError(
                f"{self.path}: labels and mask must be [{want[0]}, {want[1]}], got {self.labels.shape} and {self.mask.shape}"
            )
        if not np.all(np.isfinite(self.labels)):
            raise ValueError(f"{self.path}: labels hold NaN/inf")

    def __len__(self) -> int:
        return len(self.instruction)

    def get_batch(self, idx: np.ndarray) -> GroundingBatch:
        idx = np.asarray(idx, dtype=np.int64)
        return GroundingBatch(
            images={c: torch.from_numpy(im[idx])[:, None] for c, im in self.images.items()},
            state=torch.from_numpy(self.state[idx]),
            instruction=[self.instruction[i] for i in idx],
            labels=torch.from_numpy(self.labels[idx]),
            mask=torch.from_numpy(self.mask[idx]),
        )


def _render_chunk(job: tuple[str, list[int], list[str], int, str, int]) -> dict[str, Any]:
    suite_name, seeds, fams, views, split, size = job
    suite = get_suite(suite_name)
    assert isinstance(suite, GroundingSuite)
    return suite.grounding_scenes(
        seeds, family_of=fams, views=views, split=split, image_size=(size, size)
    )


def _init_worker() -> None:
    os.environ["LP_NUM_THREADS"] = "1"  # one software-GL thread per process
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
    os.environ["OMP_NUM_THREADS"] = "1"


def collect_grounding(
    suite: str,
    *,
    out: str | Path,
    scenes: int,
    views: int = 4,
    families: tuple[str, ...] | list[str] = (),
    split: str = "train",
    workers: int = 2,
    image_size: int = 96,
    seed: int = 0,
    progress: Any = None,
) -> dict[str, Any]:
    """Renders `scenes` episode scenes x `views` arm poses into a new grounding file `out`.

    Families take turns (scene i is of family i mod F). Returns a summary (views, seconds, path).

    Raises:
        ValueError: a suite without scene labels, unknown families/split, bad counts, or an existing `out`.
    """
    s = get_suite(suite)
    if not isinstance(s, GroundingSuite):
        raise ValueError(f"suite '{suite}' cannot label its scenes, so it has no grounding sets")
    fams = tuple(families) or tuple(s.families)
    unknown = [f for f in fams if f not in s.families]
    if unknown:
        raise ValueError(f"unknown families {unknown} for suite '{suite}'; known: {list(s.families)}")
    if split not in s.splits:
        raise ValueError(f"unknown split '{split}' for suite '{suite}'; known: {list(s.splits)}")
    for name, v in (("scenes", scenes), ("views", views), ("workers", workers)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out} exists; grounding files are written whole, choose another --out")
    first = SEED_OFFSET + seed * 1_000_000
    jobs = []
    for a in range(0, scenes, CHUNK_SCENES):
        ids = list(range(a, min(scenes, a + CHUNK_SCENES)))
        jobs.append((suite, [first + i for i in ids], [fams[i % len(fams)] for i in ids], views, split, image_size))
    start = time.perf_counter()
    tmp = out.with_suffix(out.suffix + ".tmp")
    try:
        with h5py.File(tmp, "w") as f:
            written = 0
            ctx = mp.get_context("spawn")
            with ctx.Pool(processes=min(workers, len(jobs)), initializer=_init_worker) as pool:
                for part in pool.imap(_render_chunk, jobs):  # in order: the file is deterministic
                    written = _append(f, part, written)
                    if progress is not None:
                        progress(len(part["instruction"]))
            f.attrs["format"] = FORMAT
            f.attrs["suite"] = suite
            f.attrs["split"] = split
            f.attrs["feature"] = json.dumps(s.grounding_feature.to_dict())
            f.attrs["cameras"] = json.dumps(sorted(part["images"]))
        os.replace(tmp, out)  # a crash leaves no half-written file under the final name
    finally:
        tmp.unlink(missing_ok=True)
    return {"path": str(out), "views": written, "scenes": scenes, "seconds": time.perf_counter() - start}


def _append(f: h5py.File, part: dict[str, Any], n: int) -> int:
    k = len(part["instruction"])
    arrays: dict[str, np.ndarray] = {f"images/{c}": v for c, v in part["images"].items()}
    arrays["state"] = part["state"]
    arrays["labels"] = part["labels"]
    arrays["mask"] = part["mask"]
    arrays["instruction"] = np.array(part["instruction"], dtype=object)
    arrays["family"] = np.array(part["family"], dtype=object)
    for key, arr in arrays.items():
        if key not in f:
            dtype = h5py.string_dtype() if arr.dtype == object else arr.dtype
            chunks = (min(256, max(1, k)), *arr.shape[1:])
            f.create_dataset(key, shape=(0, *arr.shape[1:]), maxshape=(None, *arr.shape[1:]), dtype=dtype, chunks=chunks)
        ds = f[key]
        ds.resize(n + k, axis=0)
        ds[n : n + k] = arr
    return n + k
