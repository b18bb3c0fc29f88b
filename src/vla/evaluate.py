"""Evaluate any policy checkpoint in any registered suite: rollouts in parallel workers -> metrics.

Metrics per task family and overall: success rate with a 95% Wilson interval, episode length, trajectory
jerk of the end effector (m/s^3, lower is smoother), policy latency per model call (median / p95) and
safety-filter interventions. The policy runs exactly as deployed: chunk broker or temporal ensembler from
`vla.runtime.chunking`, then the safety filter from `vla.runtime.safety` (on unless turned off).
Deterministic given the seeds: episode i of every family uses seed `cfg.seed + i`.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from vla.config import EvalConfig
from vla.types import ActionChunk, Observation

_WORKER: dict[str, Any] = {}


@dataclass
class EpisodeResult:
    """What one rollout produced (frames only for episodes recorded as video)."""

    family: str
    seed: int
    instruction: str
    success: bool
    length: int
    jerk: float
    latencies_ms: list[float]
    interventions: int
    frames: list[np.ndarray] = field(default_factory=list)
    first_obs: dict[str, Any] | None = None
    estimate_cm: dict[str, float] | None = None


class _TimedPolicy:
    """Records the wall time of every model call made through it."""

    def __init__(self, policy: Any) -> None:
        self.policy = policy
        self.config = policy.config
        self.embodiment = policy.embodiment
        self.estimates = tuple(getattr(policy, "estimates", ()))
        self.latencies_ms: list[float] = []
        self.estimated: list[dict[str, np.ndarray]] = []

    def predict(self, obs: Observation) -> ActionChunk:
        t0 = time.perf_counter()
        out = self.policy.predict(obs)
        self.latencies_ms.append((time.perf_counter() - t0) * 1e3)
        return out

    def estimate(self, obs: Observation) -> dict[str, np.ndarray]:
        """The policy's feature estimates (held per episode by the controller; once per episode)."""
        out = self.policy.estimate(obs)
        self.estimated.append(out)
        return out


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a success rate (well-behaved at 0 and 1, unlike the normal one)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def trajectory_jerk(positions: np.ndarray, hz: float) -> float:
    """Mean norm of the third finite difference of positions float [N, 3], in m/s^3 (0 if N < 4)."""
    if len(positions) < 4:
        return 0.0
    d3 = np.diff(positions, n=3, axis=0) * hz**3  # (N-3, 3)
    return float(np.linalg.norm(d3, axis=1).mean())


# ------------------------------------------------------------------------------------------ workers
def _init_worker(checkpoint: str, threads: int) -> None:
    import torch

    from vla.models import Policy

    torch.set_num_threads(threads)
    _WORKER["policy"] = Policy.from_pretrained(checkpoint)
    _WORKER["envs"] = {}


def _env(suite_name: str, family: str, split: str, image_size: tuple[int, int]) -> Any:
    key = (suite_name, family, split)
    if key not in _WORKER["envs"]:
        from vla.envs import get_suite

        _WORKER["envs"][key] = get_suite(suite_name).make(family, split=split, image_size=image_size)
    return _WORKER["envs"][key]


def _rollout(job: tuple[EvalConfig, str, int, bool]) -> EpisodeResult:
    from vla.runtime.recovery import make_safe_controller

    cfg, family, seed, record = job
    policy = _WORKER["policy"]
    env = _env(cfg.suite, family, cfg.split, tuple(policy.embodiment.image_size))
    timed = _TimedPolicy(policy)
    execute = cfg.execute_steps or policy.config.steps_per_chunk
    # Exactly the deployed stack: chunk broker / ensembler -> safety filter with recovery.
    controller = make_safe_controller(
        timed,
        embodiment=policy.embodiment,
        mode=cfg.controller,
        execute_steps=execute,
        unsafe_no_filter=not cfg.safety,
    )
    ee = policy.embodiment.state_slice("ee_pos")
    obs, info = env.reset(seed=seed)
    info_reset = dict(info)
    first = {
        "images": {k: v.copy() for k, v in obs["images"].items()},
        "state": obs["state"].copy(),
        "instruction": obs["instruction"],
    }
    # Diagnostic only (EvalConfig.oracle_features): the env's true episode features instead of the
    # policy's estimates.
    given = {f: np.asarray(info[f], np.float32) for f in policy.estimates} if cfg.oracle_features else {}
    positions, frames = [obs["state"][ee]], []
    success, steps = False, 0
    for steps in range(1, env.max_steps + 1):  # noqa: B007 (steps is the episode length after the loop)
        if record:
            frames.append(np.concatenate([obs["images"][c] for c in sorted(obs["images"])], axis=1))
        o = Observation(
            images=obs["images"], state=obs["state"], instruction=obs["instruction"], features=given
        )
        action = controller.act(o)
        obs, _, terminated, truncated, info = env.step(action)
        positions.append(obs["state"][ee])
        success = bool(info["success"])
        if terminated or truncated:
            break
    if record:
        frames.append(np.concatenate([obs["images"][c] for c in sorted(obs["images"])], axis=1))
    return EpisodeResult(
        estimate_cm=estimate_error_cm(policy, timed.estimated, info_reset),
        family=family,
        seed=seed,
        instruction=first["instruction"],
        success=success,
        length=steps,
        jerk=trajectory_jerk(np.asarray(positions), policy.embodiment.control_hz),
        latencies_ms=timed.latencies_ms,
        interventions=controller.safety.interventions if controller.safety is not None else 0,
        frames=frames,
        first_obs=first if record else None,
    )


def estimate_error_cm(
    policy: Any, estimated: list[dict[str, np.ndarray]], truth: dict[str, Any]
) -> dict[str, float] | None:
    """Distance in cm between the episode's first held estimate and the env's true value, per
    position part of each estimated feature ("scene.target": 1.3, ...); None when the policy
    estimated nothing or the env does not report the feature."""
    if not estimated:
        return None
    out: dict[str, float] = {}
    for feat in policy.features:
        if feat.name not in estimated[0] or feat.name not in truth:
            continue
        est = np.asarray(estimated[0][feat.name], np.float64).reshape(-1)
        true = np.asarray(truth[feat.name], np.float64).reshape(-1)
        for part in feat.parts:
            if part.kind == "position":
                sl = feat.slice(part.name)
                out[f"{feat.name}.{part.name}"] = float(np.linalg.norm(est[sl] - true[sl]) * 100.0)
    return out or None


# ------------------------------------------------------------------------------------------- driver
def check_compatible(cfg: EvalConfig) -> tuple[Any, list[str]]:
    """Loads the checkpoint and checks it can drive the suite, before any rollout; returns (policy, families)."""
    from vla.envs import get_suite
    from vla.envs.base import suite_features
    from vla.models import Policy

    policy = Policy.from_pretrained(cfg.checkpoint)
    suite = get_suite(cfg.suite)
    declared = {f.name for f in suite_features(suite)}
    if cfg.oracle_features and (not policy.estimates or not set(policy.estimates) <= declared):
        raise ValueError(
            "oracle_features needs a policy that estimates episode features (grounding_loss > 0) and a "
            f"suite that declares them; checkpoint {cfg.checkpoint} estimates {list(policy.estimates)}, "
            f"suite '{cfg.suite}' declares {sorted(declared)}"
        )
    if cfg.split not in suite.splits:
        raise ValueError(f"suite '{cfg.suite}' has no split '{cfg.split}'; splits: {list(suite.splits)}")
    unknown = [f for f in cfg.families if f not in suite.families]
    if unknown:
        raise ValueError(f"suite '{cfg.suite}' has no families {unknown}; families: {list(suite.families)}")
    env = suite.make(cfg.families[0] if cfg.families else suite.families[0], split=cfg.split)
    try:
        problems = policy.embodiment.compatible_with(env.embodiment)
    finally:
        env.close()
    if problems:
        raise ValueError(
            f"checkpoint {cfg.checkpoint} was trained for embodiment '{policy.embodiment.name}', which cannot "
            f"drive suite '{cfg.suite}' ({env.embodiment.name}): {'; '.join(problems)}"
        )
    return policy, list(cfg.families or _trained_families(cfg.checkpoint, suite.families))


def _trained_families(checkpoint: str, suite_families: tuple[str, ...] | list[str]) -> list[str]:
    """The suite's families the checkpoint was trained on (metadata "train.families"), else all of them."""
    from vla.models.checkpoint import read_metadata

    trained = read_metadata(checkpoint).get("train", {}).get("families") or []
    return [f for f in suite_families if f in trained] or list(suite_families)


def evaluate(cfg: EvalConfig, *, progress: Any = None) -> dict[str, Any]:
    """Runs the rollouts `cfg` asks for and returns the results dict (also written to `<out>/results.json`,
    with videos and `report.html`).

    Args:
        cfg: what to evaluate.
        progress: optional callable(done, total) called after every episode.
    """
    from vla.report import write_report

    policy, families = check_compatible(cfg)
    # 0 means "the policy's own" (config.steps_per_chunk); results.json records the value used.
    cfg = replace(cfg, execute_steps=cfg.execute_steps or policy.config.steps_per_chunk)
    jobs = [
        (cfg, fam, cfg.seed + i, i < cfg.videos_per_family)
        for fam in families
        for i in range(cfg.episodes_per_task)
    ]
    results: list[EpisodeResult] = []
    t0 = time.perf_counter()
    ctx = get_context("spawn")  # fresh interpreters: no forked torch threads or GL contexts
    with ProcessPoolExecutor(
        max_workers=min(cfg.workers, len(jobs)),
        mp_context=ctx,
        initializer=_init_worker,
        initargs=(cfg.checkpoint, cfg.threads_per_worker),
    ) as pool:
        for res in pool.map(_rollout, jobs):
            results.append(res)
            if progress is not None:
                progress(len(results), len(jobs))
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
            "episode_length": float(np.mean([r.length for r in rs])),
            "jerk": float(np.mean([r.jerk for r in rs])),
            "interventions": int(sum(r.interventions for r in rs)),
        }
        errs = [r.estimate_cm for r in rs if r.estimate_cm is not None]
        if errs:
            # Median first-frame error of the held estimates, per position part (not oracle runs).
            per_family[fam]["estimate_cm"] = {
                f"{k}_median": float(np.median([e[k] for e in errs if k in e])) for k in errs[0]
            }
    n, k = len(results), sum(r.success for r in results)
    lat = np.asarray([x for r in results for x in r.latencies_ms] or [float("nan")])
    return {
        "success_rate": float(np.mean([f["success_rate"] for f in per_family.values()])),
        "ci95": list(wilson_interval(k, n)),
        "success_rate_per_family": {f: v["success_rate"] for f, v in per_family.items()},
        "per_family": per_family,
        "episodes": n,
        "episode_length": float(np.mean([r.length for r in results])),
        "jerk": float(np.mean([r.jerk for r in results])),
        "latency_ms": {
            "median": float(np.median(lat)),
            "p95": float(np.percentile(lat, 95)),
            "calls": int(lat.size),
        },
        "safety_interventions": int(sum(r.interventions for r in results)),
        "wall_s": wall_s,
        "split": cfg.split,
        "suite": cfg.suite,
        "checkpoint": cfg.checkpoint,
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.__dict__.items()},
        "rollouts": [
            {
                "family": r.family,
                "seed": r.seed,
                "instruction": r.instruction,
                "success": r.success,
                "length": r.length,
                **({} if r.estimate_cm is None else {"estimate_cm": r.estimate_cm}),
            }
            for r in results
        ],
    }
