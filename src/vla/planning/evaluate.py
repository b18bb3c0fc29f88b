"""Long-horizon evaluation: plan, execute and judge requests of a suite's long-horizon split.

`vla eval --suite tabletop --split long_horizon [--checkpoint DIR | --executor expert] --planner NAME`.
Per kind and overall: success (the simulator's judgement of the final scene), steps completed (the
monitor's successes, and how many the simulator confirms), planner accuracy (the first plan equals the
reference plan), re-plans, retries, failures the executor recovered from, planner latency, and how often
the step monitor agreed with the simulator's step flag. The simulator's flags are read here only, never
by the executor. Episodes run one after another in this process (planner and model load once).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vla.planning.base import Planner
from vla.planning.executor import ExecutionResult, Executor, ExecutorConfig
from vla.planning.run import long_horizon_suite, policy_image_size, step_actor


@dataclass(frozen=True)
class LongHorizonEvalConfig:
    """What to evaluate.

    Attributes:
        suite: a suite with long-horizon splits (`long_horizon_splits`).
        split: e.g. "long_horizon" (train templates) or "long_horizon_paraphrase" (held-out templates).
        kinds: the kinds to run (empty: all of the suite's `long_horizon_kinds`).
        episodes_per_kind: requests per kind; episode i uses seed `seed + i`.
        seed: seed of episode 0.
        planner: planner backend name (`vla.planning.registry`).
        planner_opts: options for the backend (url, model, timeout_s, ...).
        checkpoint: policy checkpoint executing the skills; "" runs the suite's scripted expert.
        executor: the retries / re-plans of the executor.
        inject_drops: share of step attempts whose grasp is made to slip (suite's `inject_fault`).
        image_size: camera size when the scripted expert executes (a checkpoint uses its own).
        out: directory for results.json ("" writes nothing).
        detector_grounding, instruction_check: the step actor's (`vla.rollout.PolicyActorFactory`).
    """

    suite: str = "tabletop"
    split: str = "long_horizon"
    kinds: tuple[str, ...] = ()
    episodes_per_kind: int = 10
    seed: int = 200_000
    planner: str = "smollm2"
    planner_opts: dict[str, Any] = field(default_factory=dict)
    checkpoint: str = ""
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    inject_drops: float = 0.0
    image_size: tuple[int, int] = (32, 32)
    out: str = ""
    detector_grounding: bool = False
    instruction_check: bool = True

    def __post_init__(self) -> None:
        if self.episodes_per_kind < 1:
            raise ValueError(f"episodes_per_kind must be >= 1, got {self.episodes_per_kind}")
        if not 0.0 <= self.inject_drops <= 1.0:
            raise ValueError(f"inject_drops must be in [0, 1], got {self.inject_drops}")


def _episode_row(env: Any, res: ExecutionResult, reference: tuple) -> dict[str, Any]:
    failed = res.failures > 0
    success = bool(env.request_fulfilled())
    confirmed = sum(bool(a.success and a.info.get("step_success")) for a in res.attempts)
    agree = [bool(a.success) == bool(a.info.get("step_success")) for a in res.attempts]
    return {
        "kind": env.family,
        "seed": int(env.episode_meta["seed"]),
        "instruction": res.instruction,
        "success": success,
        "plan_correct": tuple(res.plan) == tuple(reference),
        "reference_steps": len(reference),
        "steps_done": res.steps_done,
        "steps_confirmed": confirmed,
        "replans": res.replans,
        "retries": sum(a.attempt > 0 for a in res.attempts),
        "had_failure": failed,
        "recovered": failed and success,
        "monitor_agreement": float(np.mean(agree)) if agree else 1.0,
        "plan_latency_s": res.plan_latency_s[0] if res.plan_latency_s else float("nan"),
        "stopped": res.stopped,
        "execution": res.to_json(),
    }


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    lat = np.asarray([r["plan_latency_s"] for r in rows], dtype=np.float64)
    failed = [r for r in rows if r["had_failure"]]
    replanned = [r for r in rows if r["replans"] > 0]
    return {
        "episodes": len(rows),
        "success_rate": float(np.mean([r["success"] for r in rows])),
        "plan_accuracy": float(np.mean([r["plan_correct"] for r in rows])),
        "steps_completed": float(
            np.mean([min(r["steps_done"], r["reference_steps"]) / r["reference_steps"] for r in rows])
        ),
        "steps_confirmed": float(np.mean([r["steps_confirmed"] for r in rows])),
        "replans": float(np.mean([r["replans"] for r in rows])),
        "retries": float(np.mean([r["retries"] for r in rows])),
        "episodes_with_failure": len(failed),
        "recovered_share": float(np.mean([r["recovered"] for r in failed])) if failed else float("nan"),
        "episodes_replanned": len(replanned),
        "replanned_success": float(np.mean([r["success"] for r in replanned])) if replanned else float("nan"),
        "monitor_agreement": float(np.mean([r["monitor_agreement"] for r in rows])),
        "planner_latency_s": {"median": float(np.nanmedian(lat)), "p95": float(np.nanpercentile(lat, 95))},
    }


def evaluate_long_horizon(
    cfg: LongHorizonEvalConfig, *, planner: Planner | None = None, progress: Any = None
) -> dict[str, Any]:
    """Runs the evaluation `cfg` asks for; returns the results dict (also `<out>/results.json`).

    Args:
        cfg: what to evaluate.
        planner: a planner to use instead of building `cfg.planner` (tests, benchmarks).
        progress: optional callable(done, total).
    """
    from vla.envs import get_suite
    from vla.planning.registry import build_planner

    suite = long_horizon_suite(get_suite(cfg.suite), cfg.suite)
    splits = suite.long_horizon_splits
    if cfg.split not in splits:
        raise ValueError(
            f"suite '{cfg.suite}' has no long-horizon split '{cfg.split}'; long-horizon splits: {list(splits)}"
        )
    kinds = list(cfg.kinds or suite.long_horizon_kinds)
    unknown = [k for k in kinds if k not in suite.long_horizon_kinds]
    if unknown:
        raise ValueError(f"unknown long-horizon kinds {unknown}; kinds: {list(suite.long_horizon_kinds)}")
    planner = planner or build_planner(cfg.planner, suite.skills, **cfg.planner_opts)
    image_size = policy_image_size(cfg.checkpoint) if cfg.checkpoint else cfg.image_size
    rephrase = getattr(suite, "paraphrase", None)
    rows: list[dict[str, Any]] = []
    total = len(kinds) * cfg.episodes_per_kind
    injected = 0
    t0 = time.perf_counter()
    for kind in kinds:
        env = suite.make_long_horizon(kind, split=cfg.split, image_size=image_size)
        actor = step_actor(
            suite,
            env,
            checkpoint=cfg.checkpoint,
            inject_drops=cfg.inject_drops,
            seed=cfg.seed,
            options={
                "detector_grounding": cfg.detector_grounding,
                "instruction_check": cfg.instruction_check,
            },
        )
        try:
            for i in range(cfg.episodes_per_kind):
                env.reset(seed=cfg.seed + i)
                executor = Executor(
                    planner, actor.actor, suite.step_monitor(), cfg.executor, rephrase=rephrase
                )
                res = executor.run(env, env.episode_meta["instruction"])
                rows.append(_episode_row(env, res, env.long.plan))
                if progress is not None:
                    progress(len(rows), total)
        finally:
            injected += int(getattr(actor.faults, "injected", 0))
            actor.close()
            env.close()
    results = {
        **_summary(rows),
        "per_kind": {k: _summary([r for r in rows if r["kind"] == k]) for k in kinds},
        "split": cfg.split,
        "suite": cfg.suite,
        "planner": getattr(planner, "name", cfg.planner),
        "executor": cfg.checkpoint or "scripted expert (an upper bound of the low-level skills)",
        "inject_drops": cfg.inject_drops,
        "faults_injected": injected,
        "wall_s": time.perf_counter() - t0,
        "rollouts": rows,
    }
    if cfg.out:
        out = Path(cfg.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    return results
