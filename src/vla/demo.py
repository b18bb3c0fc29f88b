"""`vla demo`: the whole path on the built-in suite — collect demos, train the default policy, evaluate.

Scope (a decision, measured on a 2-core CPU, see README): the demo uses the task families in
`DEMO_FAMILIES`, `DEMO_EPISODES` expert demonstrations each, and a training budget sized so that install +
collect + train + evaluate fit in 20 minutes on a fresh machine. Every step reuses its output when it is
already there, so a second `make demo` skips to what is missing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vla.envs.base import DEFAULT_SUITE

DEMO_FAMILIES = ("pick_up", "touch", "push")
# Measured (docs/measured.md, "Learning"): with the sub-goal loss, 700 demos per family (~33k steps,
# ~2 min to collect with 2 workers) and ~3,800 steps of batch 64 reached 86% on new seeds;
# 100 demos per family reached 17%. Demonstrations are cheap here, training time is not, so the demo
# spends its budget on data. The time budget is a safety net; the schedule is sized to finish first.
DEMO_EPISODES = 700
DEMO_STEPS = 4500
DEMO_TIME_BUDGET_S = 780.0
DEMO_EVAL_EPISODES = 30


@dataclass(frozen=True)
class DemoConfig:
    """What `vla demo` runs. Outputs go under `out`: data.h5, checkpoint/, results.json, report.html."""

    out: str = "runs/demo"
    families: tuple[str, ...] = DEMO_FAMILIES
    episodes_per_task: int = DEMO_EPISODES
    steps: int = DEMO_STEPS
    time_budget_s: float = DEMO_TIME_BUDGET_S
    eval_episodes: int = DEMO_EVAL_EPISODES
    workers: int = 2
    preset: str = "default"
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.families:
            raise ValueError("DemoConfig.families must name at least one task family")
        for name in ("episodes_per_task", "steps", "eval_episodes", "workers"):
            if getattr(self, name) <= 0:
                raise ValueError(f"DemoConfig.{name} must be positive, got {getattr(self, name)}")


def run_demo(cfg: DemoConfig, *, say: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    """Runs (or resumes) the demo; returns the evaluation results and writes them under `cfg.out`."""
    from vla.config import EvalConfig, TrainConfig
    from vla.data.collect import collect
    from vla.evaluate import evaluate
    from vla.train import train

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    data = out / "data.h5"
    if not data.exists():
        say(f"[1/3] collecting {cfg.episodes_per_task} expert demos x {len(cfg.families)} families -> {data}")
        summary = collect(
            DEFAULT_SUITE,
            out=data,
            families=cfg.families,
            episodes_per_task=cfg.episodes_per_task,
            workers=cfg.workers,
            seed=cfg.seed,
        )
        say(f"      {json.dumps(summary)}")
    else:
        say(f"[1/3] reusing demonstrations in {data}")
    run = out  # the checkpoint lands in <out>/checkpoint, beside results.json and report.html
    ckpt = run / "checkpoint"
    if not (ckpt / "model.safetensors").exists() or not (run / "train_done.json").exists():
        say(
            f"[2/3] training preset '{cfg.preset}' for up to {cfg.steps} steps / {cfg.time_budget_s:.0f} s -> {ckpt}"
        )
        tcfg = TrainConfig(
            dataset=str(data),
            out=str(run),
            preset=cfg.preset,
            steps=cfg.steps,
            time_budget_s=cfg.time_budget_s,
            seed=cfg.seed,
            families=cfg.families,
        )
        summary = train(tcfg, resume=(run / "train_state").exists())
        (run / "train_done.json").write_text(json.dumps(summary))
        say(
            f"      trained {summary['steps']} steps in {summary['elapsed_s']:.0f} s ({summary['stop_reason']})"
        )
    else:
        say(f"[2/3] reusing the trained checkpoint in {ckpt}")
    say(f"[3/3] evaluating {cfg.eval_episodes} episodes per family on unseen seeds")
    return evaluate(
        EvalConfig(
            checkpoint=str(ckpt),
            suite=DEFAULT_SUITE,
            split="train",
            families=cfg.families,
            episodes_per_task=cfg.eval_episodes,
            workers=cfg.workers,
            out=str(out),
        )
    )
