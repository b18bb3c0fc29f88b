"""`vla models presence`: render a suite's scenes, train its presence check, save it in a checkpoint.

Scenes are first frames of the checkpoint's families on the suite's `train` split, at the checkpoint's
image size. Training scenes and validation scenes (where the threshold is read) come from seed ranges of
their own, far from the seeds of demonstrations (0...), evaluations (100000...) and grounding views
(50,000,000...), so no evaluated layout is ever trained or tuned on.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vla.models.presence import PresenceCheck, PresenceSpec, train_presence

TRAIN_SEEDS = 60_000_000
VAL_SEEDS = 61_000_000
CHUNK = 100  # scenes per worker task


def _render(job: tuple[str, list[int], list[str], tuple[int, int]]) -> dict[str, Any]:
    from vla.envs import get_suite

    suite_name, seeds, families, size = job
    suite: Any = get_suite(suite_name)
    return dict(suite.presence_views(seeds, family_of=families, split="train", image_size=size))


def render_views(
    suite_name: str, first_seed: int, n: int, families: list[str], size: tuple[int, int], workers: int
) -> dict[str, Any]:
    """`n` views (families in turn) rendered by `workers` spawned processes, in seed order."""
    seeds = list(range(first_seed, first_seed + n))
    fams = [families[i % len(families)] for i in range(n)]
    jobs = [(suite_name, seeds[i : i + CHUNK], fams[i : i + CHUNK], size) for i in range(0, n, CHUNK)]
    if workers <= 1:
        parts = [_render(j) for j in jobs]
    else:
        with mp.get_context("spawn").Pool(workers) as pool:
            parts = pool.map(_render, jobs)
    return {
        "images": np.concatenate([p["images"] for p in parts]),
        "maps": np.concatenate([p["maps"] for p in parts]),
        "objects": [o for p in parts for o in p["objects"]],
    }


def fit_presence(
    checkpoint: str | Path,
    *,
    suite_name: str,
    scenes: int = 4000,
    val_scenes: int = 600,
    epochs: int = 8,
    workers: int = 2,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> tuple[PresenceCheck, dict[str, Any]]:
    """Fits the presence check for the checkpoint's families and saves it into the checkpoint.

    Raises:
        ValueError: the suite cannot label presence, or the checkpoint lacks the suite's camera.
    """
    from vla.envs import get_suite
    from vla.envs.base import PresenceSuite

    suite = get_suite(suite_name)
    if not isinstance(suite, PresenceSuite):
        raise ValueError(f"suite '{suite_name}' cannot label object presence (it has no presence_views)")
    meta = json.loads((Path(checkpoint) / "metadata.json").read_text())
    decl = suite.presence_declaration()
    if decl["camera"] not in meta["cameras"]:
        raise ValueError(
            f"the presence check reads camera '{decl['camera']}', which checkpoint {checkpoint} does not "
            f"take (cameras: {meta['cameras']})"
        )
    size = (int(meta["image_size"][0]), int(meta["image_size"][1]))
    families = [f for f in suite.families if f in (meta.get("train", {}).get("families") or suite.families)]
    spec = PresenceSpec(decl["groups"], decl["objects"], decl["camera"], size, tuple(decl["local"]))
    t0 = time.time()
    train = render_views(suite_name, TRAIN_SEEDS, scenes, families, size, workers)
    val = render_views(suite_name, VAL_SEEDS, val_scenes, families, size, workers)
    render_s = time.time() - t0
    log(f"rendered {scenes} + {val_scenes} scenes of {families} in {render_s:.0f} s")
    t1 = time.time()
    net, fit = train_presence(
        spec, train, val, candidates=list(decl["absent_candidates"]), epochs=epochs, seed=seed, log=log
    )
    check = PresenceCheck(net, spec, fit["threshold"])
    summary = {
        **fit,
        "scenes": scenes,
        "val_scenes": val_scenes,
        "epochs": epochs,
        "render_s": round(render_s, 1),
        "train_s": round(time.time() - t1, 1),
    }
    check.save(checkpoint, fit=summary)
    return check, summary
