"""Planner accuracy and latency on a suite's long-horizon requests, without a simulator.

`vla bench planner --split long_horizon_paraphrase --planner smollm2`: for every kind and seed the
suite's request, its initial scene description and reference plan (`long_horizon_request`), one
`plan` call, and whether the plan equals the reference. Latency is the wall time of each call, the
first included (the few-shot prompt's key/value cache is built then); the model's load time is
reported apart. Results: docs/measured.md, "Planner".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from vla.planning.plan import PlanError
from vla.planning.run import LongHorizonSuite


def benchmark_planner(
    suite: LongHorizonSuite,
    planner: Any,
    *,
    split: str,
    episodes_per_kind: int = 20,
    seed: int = 200_000,
    kinds: tuple[str, ...] = (),
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Plans every request of `split` once; returns accuracy (overall, per kind) and latency.

    Args:
        suite: a suite with long-horizon requests.
        planner: any `Planner`.
        split: one of the suite's `long_horizon_splits`.
        episodes_per_kind: requests per kind; request i uses seed `seed + i` (as `vla eval` does).
        seed: seed of request 0.
        kinds: kinds to run (empty: all).
        progress: optional callable(done, total).
    """
    if split not in suite.long_horizon_splits:
        raise ValueError(f"no long-horizon split '{split}'; splits: {list(suite.long_horizon_splits)}")
    kinds = kinds or suite.long_horizon_kinds
    rows: list[dict[str, Any]] = []
    total = len(kinds) * episodes_per_kind
    for kind in kinds:
        for i in range(episodes_per_kind):
            instruction, scene, reference = suite.long_horizon_request(kind, split=split, seed=seed + i)
            t0 = time.perf_counter()
            try:
                plan, error = planner.plan(instruction, scene), ""
            except PlanError as e:
                plan, error = (), str(e)
            latency = time.perf_counter() - t0
            rows.append(
                {
                    "kind": kind,
                    "seed": seed + i,
                    "instruction": instruction,
                    "correct": tuple(plan) == tuple(reference),
                    "plan": [suite.skills.text(s) for s in plan],
                    "reference": [suite.skills.text(s) for s in reference],
                    "error": error,
                    "latency_s": latency,
                }
            )
            if progress is not None:
                progress(len(rows), total)
    lat = np.asarray([r["latency_s"] for r in rows])
    return {
        "split": split,
        "planner": getattr(planner, "name", type(planner).__name__),
        "requests": len(rows),
        "plan_accuracy": float(np.mean([r["correct"] for r in rows])),
        "per_kind": {k: float(np.mean([r["correct"] for r in rows if r["kind"] == k])) for k in kinds},
        "latency_ms": {
            "median": float(np.median(lat) * 1e3),
            "p95": float(np.percentile(lat, 95) * 1e3),
            "max": float(lat.max() * 1e3),
            "first": float(lat[0] * 1e3),
        },
        "refused": sum(bool(r["error"]) for r in rows),
        "wrong": [r for r in rows if not r["correct"]],
    }
