"""`vla env ...` and `vla bench sim` end to end (tiny sizes)."""

from __future__ import annotations

import json

from PIL import Image
from typer.testing import CliRunner

from vla.cli.main import app

runner = CliRunner()


def test_env_cli_list() -> None:
    result = runner.invoke(app, ["env", "list"])
    assert result.exit_code == 0, result.output
    assert "tabletop" in result.output
    assert "move_next_to" in result.output
    assert "paraphrase" in result.output


def test_env_cli_show_writes_both_cameras(tmp_path) -> None:
    out = tmp_path / "frame.png"
    result = runner.invoke(
        app,
        [
            "env",
            "show",
            "tabletop",
            "--task",
            "put the red block in the bowl",
            "--out",
            str(out),
            "--image-size",
            "40x40",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "red block" in result.output
    assert Image.open(out).size == (80, 40)
    bad = runner.invoke(app, ["env", "show", "tabletp", "--out", str(out)])
    assert bad.exit_code != 0
    assert "Did you mean 'tabletop'" in str(bad.exception)


def test_env_cli_expert_prints_json_and_video(tmp_path) -> None:
    video = tmp_path / "ex.mp4"
    result = runner.invoke(
        app,
        [
            "env",
            "expert",
            "tabletop",
            "--episodes-per-task",
            "1",
            "--family",
            "touch",
            "--family",
            "pick_up",
            "--video",
            str(video),
        ],
    )
    assert result.exit_code == 0, result.output
    last = json.loads(result.output.strip().splitlines()[-1])
    assert last["expert_success"] == 1.0
    assert set(last["per_family"]) == {"touch", "pick_up"}
    assert last["steps_per_s"] > 0
    assert video.stat().st_size > 1000


def test_env_cli_bench_sim_json() -> None:
    result = runner.invoke(
        app, ["bench", "sim", "--seconds", "0.5", "--processes", "1", "--image-size", "16x16"]
    )
    assert result.exit_code == 0, result.output
    last = json.loads(result.output.strip().splitlines()[-1])
    assert last["steps_per_s_one_process"] > 0
    assert last["steps_per_s_all_cores"] > 0


def test_env_cli_bench_sim_humanoid_json() -> None:
    result = runner.invoke(
        app,
        [
            "bench",
            "sim",
            "--robot",
            "humanoid",
            "--seconds",
            "0.5",
            "--processes",
            "1",
            "--image-size",
            "16x16",
        ],
    )
    assert result.exit_code == 0, result.output
    last = json.loads(result.output.strip().splitlines()[-1])
    assert last["steps_per_s_all_cores"] > 0 and last["steps_per_s_one_process"] > 0
    assert last["robot"] == "humanoid" and last["cameras"] == 3


def test_env_cli_bench_sim_unknown_robot_names_the_known_ones() -> None:
    result = runner.invoke(app, ["bench", "sim", "--robot", "humanoyd", "--seconds", "0.5"])
    assert result.exit_code != 0
    text = " ".join(result.output.replace("│", " ").split())  # the error box wraps the message
    assert "Did you mean 'humanoid'? Known: humanoid, panda" in text


def test_env_cli_expert_humanoid_reports_its_own_action_mode() -> None:
    result = runner.invoke(
        app,
        ["env", "expert", "tabletop", "--robot", "humanoid", "--family", "touch", "--episodes-per-task", "1"],
    )
    assert result.exit_code == 0, result.output
    last = json.loads(result.output.strip().splitlines()[-1])
    assert last["action_mode"] == "whole_body" and last["robot"] == "humanoid"
