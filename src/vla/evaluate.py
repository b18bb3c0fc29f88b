"""Evaluate any policy checkpoint in any registered suite: rollouts by the rollout engine -> metrics.

Metrics per task family and overall: success rate with a 95% Wilson interval, episode length, trajectory
jerk of the end effector (m/s^3, lower is smoother), policy latency per model call (median / p95) and
safety-filter interventions (total and by reason). The policy runs exactly as deployed: chunk broker or
temporal ensembler from `vla.runtime.chunking`, then the safety filter from `vla.runtime.safety` (on
unless turned off); the episodes run in `vla.rollout` (`PolicyActorFactory`), `envs_per_worker` of them
side by side per worker process with their model calls batched.
Deterministic given the seeds: episode i of every family uses seed `cfg.seed + i`.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from vla.config import EvalConfig
from vla.rollout import EpisodeJob, EpisodeResult, iter_episodes
from vla.rollout.episode import trajectory_jerk
from vla.rollout.extras import FeatureHook, check_hook, summarize_family
from vla.rollout.holds import summarize_holds
from vla.rollout.policy_actor import PolicyActorFactory, detector_grounding_default

__all__ = ["check_compatible", "evaluate", "summarize", "trajectory_jerk", "wilson_interval"]


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a success rate (well-behaved at 0 and 1, unlike the normal one)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


# ------------------------------------------------------------------------------------------- driver
def check_compatible(cfg: EvalConfig) -> tuple[Any, list[str], tuple[tuple[str, Any], ...]]:
    """Loads the checkpoint and checks it can drive the suite, before any rollout.

    Returns (policy, families, env_options): the `make` options of the suite's robot that the
    checkpoint's embodiment names (`embodiment_options`; e.g. tabletop's humanoid), so a G1
    checkpoint is evaluated on the G1's envs without a flag.
    """
    from vla.envs import get_suite
    from vla.envs.base import embodiment_options, option_families
    from vla.models import Policy

    policy = Policy.from_pretrained(cfg.checkpoint)
    suite = get_suite(cfg.suite)
    check_hook(_hook(cfg), policy, suite, checkpoint=cfg.checkpoint, suite_name=cfg.suite)
    if cfg.split not in suite.splits:
        raise ValueError(f"suite '{cfg.suite}' has no split '{cfg.split}'; splits: {list(suite.splits)}")
    env_options = embodiment_options(suite, policy.embodiment.name)
    known = option_families(suite, env_options)
    unknown = [f for f in cfg.families if f not in known]
    if unknown:
        raise ValueError(f"suite '{cfg.suite}' has no families {unknown}; families: {list(known)}")
    env = suite.make(cfg.families[0] if cfg.families else known[0], split=cfg.split, **dict(env_options))
    try:
        problems = policy.embodiment.compatible_with(env.embodiment)
    finally:
        env.close()
    if problems:
        raise ValueError(
            f"checkpoint {cfg.checkpoint} was trained for embodiment '{policy.embodiment.name}', which cannot "
            f"drive suite '{cfg.suite}' ({env.embodiment.name}): {'; '.join(problems)}"
        )
    return policy, list(cfg.families or _trained_families(cfg.checkpoint, known)), env_options


def _trained_families(checkpoint: str, suite_families: tuple[str, ...] | list[str]) -> list[str]:
    """The suite's families the checkpoint was trained on (metadata "train.families"), else all of them."""
    from vla.models.checkpoint import read_metadata

    trained = read_metadata(checkpoint).get("train", {}).get("families") or []
    return [f for f in suite_families if f in trained] or list(suite_families)


def _hook(cfg: EvalConfig) -> FeatureHook:
    """The episode hook of this evaluation (declared episode features and their estimates)."""
    return FeatureHook(oracle=cfg.oracle_features)


def evaluate(cfg: EvalConfig, *, progress: Any = None) -> dict[str, Any]:
    """Runs the rollouts `cfg` asks for and returns the results dict (also written to `<out>/results.json`,
    with videos and `report.html`).

    Args:
        cfg: what to evaluate.
        progress: optional callable(done, total) called after every episode.
    """
    from vla.report import write_report

    policy, families, env_options = check_compatible(cfg)
    # 0 means "the policy's own" (config.steps_per_chunk); results.json records the value used.
    cfg = replace(
        cfg,
        execute_steps=cfg.execute_steps or policy.config.steps_per_chunk,
        detector_grounding=detector_grounding_default(
            cfg.detector_grounding, cfg.checkpoint, cfg.suite, policy
        ),
    )
    size = (int(policy.embodiment.image_size[0]), int(policy.embodiment.image_size[1]))
    jobs = [
        EpisodeJob(
            cfg.suite,
            fam,
            cfg.seed + i,
            cfg.split,
            size,
            record_frames=i < cfg.videos_per_family,
            perturb=cfg.perturb,
            env_options=env_options,
        )
        for fam in families
        for i in range(cfg.episodes_per_task)
    ]
    actor = PolicyActorFactory(
        cfg.checkpoint,
        controller=cfg.controller,
        execute_steps=cfg.execute_steps,
        safety=cfg.safety,
        hook=_hook(cfg),
        instruction_check=cfg.instruction_check,
        detector_grounding=bool(cfg.detector_grounding),
    )
    done: dict[int, EpisodeResult] = {}
    t0 = time.perf_counter()
    for i, res in iter_episodes(
        jobs,
        actor,
        workers=cfg.workers,
        envs_per_worker=cfg.envs_per_worker,
        threads=cfg.threads_per_worker,
        isolate=True,  # worker processes even for one: the caller's torch threads never matter
    ):
        done[i] = res
        if progress is not None:
            progress(len(done), len(jobs))
    results = [done[i] for i in range(len(jobs))]
    summary = summarize(results, cfg=cfg, wall_s=time.perf_counter() - t0)
    write_report(summary, results, policy=policy, out=Path(cfg.out))
    return summary


def summarize(results: list[EpisodeResult], *, cfg: EvalConfig, wall_s: float) -> dict[str, Any]:
    """Aggregates episodes into the results dict (per family and overall)."""
    per_family: dict[str, dict[str, Any]] = {}
    for fam in dict.fromkeys(r.family for r in results):
        rs = [r for r in results if r.family == fam]
        k = sum(r.success for r in rs)
        lo, hi = wilson_interval(k, len(rs))
        per_family[fam] = {
            "success_rate": k / len(rs),
            "ci95": [lo, hi],
            "episodes": len(rs),
            "successes": k,
            "episode_length": float(np.mean([r.steps for r in rs])),
            "jerk": float(np.mean([r.jerk for r in rs])),
            "interventions": int(sum(r.interventions for r in rs)),
            "interventions_by_reason": _by_reason(rs),
            "interventions_physical": int(sum(sum(r.physical_by_reason.values()) for r in rs)),
            "failures_by_reason": _failures(rs),
            **summarize_family([r.extras for r in rs]),
        }
    n, k = len(results), sum(r.success for r in results)
    groups = _per_group(cfg.suite, {f: v["success_rate"] for f, v in per_family.items()})
    group_mean = _mean_of_groups(cfg.suite, per_family) if groups else {}
    lat = np.asarray([x for r in results for x in r.latencies_ms] or [float("nan")])
    return {
        "success_rate": float(np.mean([f["success_rate"] for f in per_family.values()])),
        "ci95": list(wilson_interval(k, n)),
        "success_rate_per_family": {f: v["success_rate"] for f, v in per_family.items()},
        **({"success_rate_per_group": groups} if groups else {}),
        **group_mean,
        "per_family": per_family,
        "episodes": n,
        "episode_length": float(np.mean([r.steps for r in results])),
        "jerk": float(np.mean([r.jerk for r in results])),
        "latency_ms": {
            "median": float(np.median(lat)),
            "p95": float(np.percentile(lat, 95)),
            "calls": int(lat.size),
        },
        "safety_interventions": int(sum(r.interventions for r in results)),
        "safety_interventions_by_reason": _by_reason(results),
        # The interventions that changed the robot's command beyond what its driver does by itself.
        "safety_interventions_physical": int(sum(sum(r.physical_by_reason.values()) for r in results)),
        "safety_interventions_physical_by_reason": _by_reason(results, physical=True),
        # Episodes the env ended as failures for a reason of its own (e.g. the humanoid's "fall").
        "failures_by_reason": _failures(results),
        "wall_s": wall_s,
        "episodes_per_s": n / wall_s if wall_s > 0 else 0.0,
        "split": cfg.split,
        **summarize_holds(results),
        "perturb": list(cfg.perturb),
        "suite": cfg.suite,
        "checkpoint": cfg.checkpoint,
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.__dict__.items()},
        "rollouts": [
            {
                "family": r.family,
                "seed": r.seed,
                "instruction": r.instruction,
                "success": r.success,
                "length": r.steps,
                **({"failure": r.failure} if r.failure else {}),
                **r.extras,
            }
            for r in results
        ],
    }


def _failures(results: list[EpisodeResult]) -> dict[str, int]:
    """Episodes per env-reported failure reason (`info["failure"]`), most frequent first."""
    return dict(Counter(r.failure for r in results if r.failure).most_common())


def _per_group(suite_name: str, rates: dict[str, float]) -> dict[str, float]:
    """Mean success per group of the suite's declared `family_groups` (each family weighs the same, as
    in the published per-group tables); empty when the suite declares none."""
    from vla.envs.base import family_groups, get_suite

    try:
        groups = family_groups(get_suite(suite_name))
    except KeyError:
        return {}
    by: dict[str, list[float]] = {}
    for fam, rate in rates.items():
        if fam in groups:
            by.setdefault(groups[fam], []).append(rate)
    order = list(dict.fromkeys(groups.values()))
    return {g: float(np.mean(by[g])) for g in order if g in by}


def _mean_of_groups(suite_name: str, per_family: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The mean of the per-group means and its 95% interval: the "average" of the published tables that
    declare groups (Meta-World's MT50 rows average the four group means, not the 50 tasks).

    The interval is the normal one of that weighted mean, with each family's rate taken as
    (k + 2) / (n + 4) (Agresti-Coull) so that families at 0% or 100% still add variance.
    """
    from vla.envs.base import family_groups, get_suite

    groups = family_groups(get_suite(suite_name))
    members: dict[str, list[dict[str, Any]]] = {}
    for fam, v in per_family.items():
        if fam in groups:
            members.setdefault(groups[fam], []).append(v)
    G = len(members)
    mean, var = 0.0, 0.0
    for fams in members.values():
        w = 1.0 / (G * len(fams))  # each group weighs 1/G, each family 1/G of its group
        for v in fams:
            n, k = v["episodes"], v["successes"]
            p = (k + 2) / (n + 4)
            mean += w * v["success_rate"]
            var += w * w * p * (1 - p) / n
    half = 1.96 * math.sqrt(var)
    return {
        "success_rate_mean_of_groups": mean,
        "ci95_mean_of_groups": [max(0.0, mean - half), min(1.0, mean + half)],
    }


def _by_reason(results: list[EpisodeResult], *, physical: bool = False) -> dict[str, int]:
    """Safety-filter interventions of `results` per reason (only physical ones), most frequent first."""
    total: Counter[str] = Counter()
    for r in results:
        total.update(r.physical_by_reason if physical else r.interventions_by_reason)
    return dict(total.most_common())
