"""Speed of a policy family on this CPU: per-call `predict` latency and training throughput.

Measured on the default suite's robot (`vla.envs.base.DEFAULT_SUITE`: 22-D state, 7-D actions, two 96 x 96 cameras) with random inputs
and synthetic statistics, so no dataset is needed; speed does not depend on what the weights learned.
The thread count is set explicitly (and restored), because on a shared 2-core machine it decides the
figure more than the model does (docs/platform.md#threads); p95 is reported beside the median for the same reason.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vla.features import Feature
from vla.models.config import PolicyConfig, parse_overrides
from vla.models.policy import Policy, build_policy
from vla.spaces import Embodiment
from vla.types import Batch, DatasetStats, FeatureStats, Observation

INSTRUCTION = "put the red block in the blue bowl"


@dataclass(frozen=True)
class ModelBenchConfig:
    """What to time.

    Attributes:
        preset: preset name (see `vla.presets.list_presets`).
        overrides: "key=value" config overrides, e.g. ("head.kind=flow",).
        threads: torch intra-op threads during the measurement.
        calls: timed `predict` calls (after `warmup` untimed ones).
        batch_size: training batch size.
        train_steps: timed optimizer steps (after 2 untimed ones).
    """

    preset: str = "default"
    overrides: tuple[str, ...] = ()
    threads: int = 2
    calls: int = 200
    warmup: int = 20
    batch_size: int = 64
    train_steps: int = 20

    def __post_init__(self) -> None:
        if (
            self.threads < 1
            or self.calls < 1
            or self.batch_size < 1
            or self.train_steps < 0
            or self.warmup < 0
        ):
            raise ValueError(
                "threads, calls and batch_size must be >= 1 and train_steps, warmup >= 0, got "
                f"{self.threads}, {self.calls}, {self.batch_size}, {self.train_steps}, {self.warmup}"
            )


def suite_embodiment(image_size: tuple[int, int], suite: str = "") -> tuple[Embodiment, tuple[Feature, ...]]:
    """The robot of `suite` (the default suite when empty) at `image_size`, and the suite's features."""
    from vla.envs.base import DEFAULT_SUITE, get_suite, suite_features

    s = get_suite(suite or DEFAULT_SUITE)
    return s.embodiment(image_size), suite_features(s)


def synthetic_stats(embodiment: Embodiment) -> DatasetStats:
    """Statistics spanning the embodiment's action limits and a unit-variance state."""
    space = embodiment.action_space()
    lo, hi = space.low.astype(np.float64), space.high.astype(np.float64)
    s = embodiment.state_dim
    action = FeatureStats((lo + hi) / 2, (hi - lo) / 4, lo, hi, lo, hi, count=1000)
    state = FeatureStats(
        np.zeros(s), np.ones(s), -3 * np.ones(s), 3 * np.ones(s), -2 * np.ones(s), 2 * np.ones(s), 1000
    )
    return DatasetStats(state=state, action=action)


def random_observation(policy: Policy, *, batch: int, rng: np.random.Generator) -> Observation:
    """Random uint8 images and state shaped for `policy` ((B, T, ...) with B = batch)."""
    cfg = policy.config
    T, (h, w) = cfg.obs_horizon, cfg.image_size
    images = {c: rng.integers(0, 256, (batch, T, h, w, 3), dtype=np.uint8) for c in cfg.cameras}
    state = rng.normal(size=(batch, T, policy.state_dim)).astype(np.float32)
    return Observation(images=images, state=state, instruction=[INSTRUCTION] * batch)


def random_batch(policy: Policy, *, batch: int, rng: np.random.Generator) -> Batch:
    """A training batch of random inputs and in-limit actions."""
    obs = random_observation(policy, batch=batch, rng=rng)
    space = policy.embodiment.action_space()
    H = policy.config.action_horizon
    actions = rng.uniform(space.low, space.high, size=(batch, H, space.dim)).astype(np.float32)
    return Batch(
        images={k: torch.from_numpy(v) for k, v in obs.images.items()},
        state=torch.from_numpy(obs.state),
        obs_pad=torch.zeros(batch, policy.config.obs_horizon, dtype=torch.bool),
        instruction=list(obs.instruction),
        actions=torch.from_numpy(actions),
        action_pad=torch.zeros(batch, H, dtype=torch.bool),
    )


def time_predict(policy: Policy, *, calls: int, warmup: int, seed: int = 0) -> np.ndarray:
    """Seconds per `predict` call on one single-step observation (instruction already cached)."""
    rng = np.random.default_rng(seed)
    obs = random_observation(policy, batch=1, rng=rng)
    single = Observation({k: v[0, -1] for k, v in obs.images.items()}, obs.state[0, -1], INSTRUCTION)
    for _ in range(max(warmup, 1)):
        policy.predict(single)
    out = np.empty(calls)
    for i in range(calls):
        t0 = time.perf_counter()
        policy.predict(single)
        out[i] = time.perf_counter() - t0
    return out


def time_training(policy: Policy, *, batch_size: int, steps: int, seed: int = 0) -> np.ndarray:
    """Seconds per optimizer step (forward + backward + AdamW) on random batches."""
    rng = np.random.default_rng(seed)
    batch = random_batch(policy, batch=batch_size, rng=rng)
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-4)
    policy.train()
    out = np.empty(steps)
    for i in range(steps + 2):
        t0 = time.perf_counter()
        loss, _ = policy.loss(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= 2:
            out[i - 2] = time.perf_counter() - t0
    policy.eval()
    return out


def build_for_bench(cfg: PolicyConfig, *, seed: int = 0) -> Policy:
    """A freshly initialized policy on the default suite's robot with synthetic statistics."""
    torch.manual_seed(seed)
    emb, features = suite_embodiment(cfg.image_size)
    return build_policy(cfg, embodiment=emb, stats=synthetic_stats(emb), features=features)


def run_model_bench(cfg: ModelBenchConfig) -> dict[str, Any]:
    """Times one preset; returns forward_ms_median/p95/p99, train_samples_per_s, params and context."""
    from vla.presets import get_preset

    policy_cfg = get_preset(cfg.preset).override(parse_overrides(list(cfg.overrides)))
    before = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        policy = build_for_bench(policy_cfg)
        fwd = time_predict(policy, calls=cfg.calls, warmup=cfg.warmup) * 1e3
        train = (
            time_training(policy, batch_size=cfg.batch_size, steps=cfg.train_steps)
            if cfg.train_steps
            else None
        )
    finally:
        torch.set_num_threads(before)
    result: dict[str, Any] = {
        "preset": cfg.preset,
        "overrides": list(cfg.overrides),
        "params": policy.num_params(),
        "threads": cfg.threads,
        "forward_ms_median": round(float(np.median(fwd)), 3),
        "forward_ms_p95": round(float(np.percentile(fwd, 95)), 3),
        "forward_ms_p99": round(float(np.percentile(fwd, 99)), 3),
        "calls": cfg.calls,
        "action_horizon": policy_cfg.action_horizon,
        "batch_size": cfg.batch_size,
        "train_samples_per_s": None,
    }
    if train is not None:
        result["train_samples_per_s"] = round(cfg.batch_size / float(np.median(train)), 1)
        result["train_step_ms_median"] = round(float(np.median(train)) * 1e3, 1)
    return result


def format_table(rows: list[dict[str, Any]]) -> str:
    """A fixed-width table of `run_model_bench` results."""
    head = f"{'preset':<10} {'params':>8} {'H':>3} {'fwd median ms':>14} {'fwd p95 ms':>11} {'train samples/s':>16}"
    lines = [head, "-" * len(head)]
    for r in rows:
        sps = "-" if r["train_samples_per_s"] is None else f"{r['train_samples_per_s']:.0f}"
        lines.append(
            f"{r['preset']:<10} {r['params'] / 1e6:>7.2f}M {r['action_horizon']:>3} "
            f"{r['forward_ms_median']:>14.2f} {r['forward_ms_p95']:>11.2f} {sps:>16}"
        )
    return "\n".join(lines)
