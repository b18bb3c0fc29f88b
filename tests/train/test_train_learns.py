"""Learning really works: demonstrations -> training -> closed-loop success on new seeds, in CI.

The whole path with real parts (MuJoCo experts, HDF5, MiniLM, the training loop, the evaluator with the
safety filter): the `default` preset (sub-goal loss on) trained for a few minutes on one family must
succeed on episodes it has never seen. A policy that ignores the instruction reaches the right object
in about one episode of four (3-5 objects, distractors share colour or shape); chance of touching
anything at all by accident is near zero. Figures: docs/measured.md, "Learning".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FAMILY = "touch"
DEMOS = 800
# 1,500 steps and 20 episodes gave 65% once and 40% in another run of the same code (thread timing
# makes training non-deterministic), too close to the bar; more training and twice the episodes give
# the bar a margin of several standard errors instead of lowering it (docs/measured.md, "Learning").
STEPS = 2500
# Batch 32, not the preset's 64: the same 2,500 updates at half the compute. On 2026-12-07 it reached
# 72.5% (40 episodes) where batch 64 had 80% and 65% in two runs, so the bar keeps its margin while the
# test takes about half of what it did (it was 650-780 s of a 1,262 s suite; docs/measured.md).
BATCH = 32
EPISODES = 40
MIN_SUCCESS = 0.5


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_default_preset_learns_touch_from_demonstrations(tmp_path: Path) -> None:
    import torch

    from vla.config import EvalConfig
    from vla.data.collect import collect
    from vla.evaluate import evaluate

    torch.set_num_threads(2)
    data = tmp_path / "touch.h5"
    report = collect("tabletop", out=data, families=(FAMILY,), episodes_per_task=DEMOS, workers=2, seed=0)
    assert report["recorded"] == {FAMILY: DEMOS}
    # Trained through the command line, as a user would; alone on the machine, so with the spinning
    # OpenMP threads `vla train` picks for itself (the test run's own PASSIVE setting is not inherited).
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "vla.cli.main", "train", str(data), "--out", str(run), "--steps", str(STEPS)]
    # The timeout guards against a hang, not speed (benchmarks measure that): on a slow day
    # (2026-12-07, training at half its usual samples/s) the 2,500 steps took over 600 s alone.
    subprocess.run(
        [*cmd, "--set", "val_every=0", "--set", f"batch_size={BATCH}"], check=True, env=env, timeout=1500
    )
    summary = json.loads((run / "checkpoint" / "metadata.json").read_text())["train"]
    assert summary["step"] == STEPS and summary["families"] == [FAMILY]
    results = evaluate(
        EvalConfig(
            checkpoint=str(run / "checkpoint"),
            episodes_per_task=EPISODES,
            workers=2,
            videos_per_family=0,
            out=str(tmp_path / "eval"),
        )
    )
    # Evaluated on the family it was trained on (checkpoint metadata), on seeds far from the demos'.
    assert list(results["success_rate_per_family"]) == [FAMILY]
    print(
        f"\n{FAMILY}: {json.dumps(results['success_rate_per_family'])} after {STEPS} steps on {DEMOS} demos"
    )
    assert results["success_rate"] >= MIN_SUCCESS, results["success_rate_per_family"]
