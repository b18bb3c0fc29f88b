"""`vla run`, the long-horizon splits of `vla eval` and `vla bench planner`, end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from typer.testing import CliRunner

from vla.cli.main import app

runner = CliRunner()
REQUEST = "put the red block in the bowl and then push the blue ball to the left"


def _text(output: str) -> str:
    """The output without the usage-error box and its line wrapping."""
    return " ".join(output.translate(str.maketrans("", "", "│╭╮╰╯─")).split())


def test_vla_run_with_the_expert_and_the_default_planner() -> None:
    """The real command in its own process: the default (SmolLM2) planner plans, the expert executes."""
    env = {**os.environ, "MUJOCO_GL": "egl", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "vla.cli.main", "run", "--executor", "expert", REQUEST]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    assert "  1. put the red block in the bowl" in lines and "  2. push the blue ball to the left" in lines
    assert any(line.startswith("plan (smollm2-transformers") for line in lines)
    assert "final scene (simulator): every planned goal holds" in lines[-2]
    result = json.loads(lines[-1])
    assert result["finished"] and result["final_scene_success"]
    assert [a["step"]["skill"] for a in result["attempts"]] == ["put_in", "push"]
    assert result["sim_step_success"] == [True, True]


def test_vla_run_recovers_from_injected_drops() -> None:
    args = ["run", "--executor", "expert", "--planner", "rules", "--inject-drops", "1.0", "--replans", "0"]
    result = runner.invoke(app, [*args, "--retries", "0", "put the red block in the bowl"])
    assert result.exit_code == 1, result.output  # every grasp slips and nothing is left to try
    assert "stopped: step 'put the red block in the bowl' failed" in result.output
    assert "faults injected 1" in result.output


def test_vla_run_usage_errors_are_clear() -> None:
    result = runner.invoke(app, ["run", REQUEST])
    assert result.exit_code == 2 and "needs --checkpoint DIR (or run the scripted expert" in _text(
        result.output
    )
    result = runner.invoke(app, ["run", "--executor", "expert", "--planner", "rules", "juggle the red block"])
    assert result.exit_code == 2 and "no skill of the policy matches 'juggle the red block'" in _text(
        result.output
    )
    result = runner.invoke(app, ["run", "--executor", "expert", "--planner", "rulez", REQUEST])
    assert result.exit_code != 0 and "rules" in str(result.exception or result.output)


def test_vla_eval_long_horizon_split_with_the_expert(tmp_path) -> None:
    out = tmp_path / "eval"
    args = [
        "eval",
        "--split",
        "long_horizon",
        "--executor",
        "expert",
        "--planner",
        "rules",
        "--out",
        str(out),
    ]
    result = runner.invoke(app, [*args, "--episodes-per-task", "2", "--families", "put_two,spatial"])
    assert result.exit_code == 0, result.output
    headline = json.loads(result.output.strip().splitlines()[-2])
    assert headline["episodes"] == 4 and headline["plan_accuracy"] == 1.0
    saved = json.loads((out / "results.json").read_text())
    assert set(saved["per_kind"]) == {"put_two", "spatial"}
    assert all(r["plan_correct"] for r in saved["rollouts"])
    assert saved["success_rate"] == headline["success_rate"]


def test_vla_eval_long_horizon_needs_a_checkpoint_or_the_expert() -> None:
    result = runner.invoke(app, ["eval", "--split", "long_horizon_paraphrase"])
    assert result.exit_code == 2 and "--executor expert" in _text(result.output)


def test_vla_bench_planner_reports_accuracy_and_latency() -> None:
    result = runner.invoke(app, ["bench", "planner", "--planner", "rules", "--episodes-per-kind", "2"])
    assert result.exit_code == 0, result.output
    line = json.loads(result.output.strip().splitlines()[-1])
    assert line["requests"] == 20 and 0.0 <= line["plan_accuracy"] <= 1.0
    assert line["latency_ms"]["p95"] >= line["latency_ms"]["median"] >= 0
