"""The data commands end to end: `vla collect` on the real tabletop suite, info, show, export/import."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from vla.cli.main import app
from vla.data.episode import Episode
from vla.data.reader import EpisodeDataset

runner = CliRunner()


def run(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, f"vla {' '.join(args)} failed:\n{result.output}\n{result.exception!r}"
    return result.output


@pytest.mark.slow
def test_data_collect_real_tabletop(tmp_path: Path) -> None:
    out = tmp_path / "tabletop.h5"
    text = run(
        "collect", "tabletop", "--episodes-per-task", "1", "--families", "pick_up,push",
        "--out", str(out), "--workers", "2", "--image-size", "48",
    )  # fmt: skip
    assert "wrote 2 episodes" in text
    assert "steps/s" in text
    with EpisodeDataset(out) as ds:
        assert len(ds) == 2
        assert sorted(ds.families) == ["pick_up", "push"]
        assert all(i.success for i in ds.infos)
        assert ds.cameras == ("scene", "wrist")
        assert ds.image_size == (48, 48)
        assert ds.embodiment is not None
        assert ds.state_dim == ds.embodiment.state_dim
        assert ds.action_dim == ds.embodiment.action_space().dim
        assert ds.stats is not None
        ep = ds.episode(0)
        assert ep.meta["split"] == "train"
        assert ep.images["scene"].std() > 1.0  # real renders, not blank frames
        np.testing.assert_allclose(np.diff(ep.timestamps), 1.0 / ds.embodiment.control_hz)
    info = run("data", "info", str(out))
    assert "episodes: 2" in info
    assert "success rate: 100.0%" in info
    assert "joint_pos[0]" in info


def test_data_cli_info_show_export_import(tmp_path: Path, small_dataset: tuple[Path, list[Episode]]) -> None:
    path, eps = small_dataset
    assert "stats: not computed" in run("data", "info", str(path))
    run("data", "stats", str(path))
    text = run("data", "info", str(path))
    assert "episodes: 6" in text
    assert f"steps: {sum(len(e) for e in eps)}" in text
    assert "families: open (2), pick (2), push (2)" in text
    assert "arm_pos[1]" in text
    run("data", "show", str(path), "--episode", "2", "--out", str(tmp_path / "ep.png"))
    sheet = np.asarray(Image.open(tmp_path / "ep.png"))
    assert sheet.ndim == 3
    assert sheet.shape[0] > 100
    run("data", "show", str(path), "--episode", "2", "--out", str(tmp_path / "ep.mp4"))
    assert (tmp_path / "ep.mp4").stat().st_size > 1000
    run("data", "export", str(path), "--format", "lerobot", "--out", str(tmp_path / "lr"))
    assert json.loads((tmp_path / "lr/meta/info.json").read_text())["total_episodes"] == 6
    run("data", "import", str(tmp_path / "lr"), "--format", "lerobot", "--out", str(tmp_path / "back.h5"))
    with EpisodeDataset(tmp_path / "back.h5") as ds:
        assert ds.instructions == [e.instruction for e in eps]


def test_data_cli_errors_name_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"garbage")
    result = runner.invoke(app, ["data", "info", str(bad)])
    assert result.exit_code != 0
    assert "not a readable HDF5 file" in str(result.exception)


def test_data_bench_command_ends_with_json(tmp_path: Path, small_dataset: tuple[Path, list[Episode]]) -> None:
    path, _ = small_dataset
    text = run("bench", "data", "--path", str(path), "--batch-size", "8", "--batches", "3")
    last = json.loads(text.strip().splitlines()[-1])
    assert last["bench"] == "data"
    assert last["windows_per_s"] > 0


@pytest.mark.slow
def test_data_collect_function_returns_summary(tmp_path: Path) -> None:
    from vla.data.collect import collect

    summary = collect(
        "tabletop",
        out=tmp_path / "d.h5",
        families=("touch",),
        episodes_per_task=1,
        workers=1,
        seed=5,
        image_size=32,
    )
    assert summary["episodes"] == 1
    assert summary["recorded"] == {"touch": 1}
    assert summary["steps_per_second"] > 0
    json.dumps(summary)
    # Appending continues after the seeds already in the file instead of repeating episodes.
    collect(
        "tabletop",
        out=tmp_path / "d.h5",
        families=("touch",),
        episodes_per_task=1,
        workers=1,
        seed=5,
        image_size=32,
    )
    with EpisodeDataset(tmp_path / "d.h5") as ds:
        assert [i.meta["seed"] for i in ds.infos] == [5, 6]
        assert ds.stats is not None
        assert ds.stats.action.count == int(ds.lengths.sum())
    with pytest.raises(ValueError, match=r"unknown families \['tuch'\]"):
        collect("tabletop", out=tmp_path / "e.h5", families=("tuch",), episodes_per_task=1, workers=1)
