"""LeRobot v3.0 export -> import round trip on a small synthetic dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from vla.data import lerobot_format as lf
from vla.data.episode import Episode
from vla.data.lerobot_export import export_lerobot
from vla.data.lerobot_import import import_lerobot
from vla.data.reader import EpisodeDataset
from vla.data.writer import DatasetWriter
from vla.spaces import Embodiment

# h264 at crf 18 on smooth rendered-like frames; the figure is reported in docs/data.md.
MAX_MEAN_ABS_ERROR = 3.0


def smooth_frames(n: int, hi: int, wi: int, phase: float) -> np.ndarray:
    """uint8 [n, hi, wi, 3]: colour gradients with a moving square, like a simple rendered scene."""
    y, x = np.mgrid[0:hi, 0:wi].astype(np.float32)
    frames = np.empty((n, hi, wi, 3), dtype=np.uint8)
    for t in range(n):
        img = np.stack([x / wi * 200 + 20, y / hi * 180 + 40, np.full_like(x, 90 + 10 * phase)], axis=-1)
        cx = int((t * 3 + phase * 5) % (wi - 8))
        img[8:16, cx : cx + 8] = (230, 40, 40)
        frames[t] = img.astype(np.uint8)
    return frames


@pytest.fixture
def video_dataset(tmp_path: Path, embodiment: Embodiment) -> tuple[Path, list[Episode]]:
    rng = np.random.default_rng(5)
    path = tmp_path / "src.h5"
    writer = DatasetWriter(path, embodiment=embodiment, suite="synthetic", env_args={"image_size": [64, 64]})
    eps = []
    for i, n in enumerate((6, 3, 9)):
        ep = Episode(
            images={"scene": smooth_frames(n, 64, 64, i), "wrist": smooth_frames(n, 64, 64, i + 7)},
            state=rng.normal(size=(n, 5)).astype(np.float32),
            actions=rng.normal(size=(n, 3)).astype(np.float32),
            timestamps=np.arange(n, dtype=np.float64) / 10.0,
            instruction=["open the drawer", "push the cube", "open the drawer"][i],
            success=i != 1,
            meta={"family": ["open", "push", "open"][i], "seed": i, "split": "train"},
        )
        writer.append(ep)
        eps.append(ep)
    return path, eps


def test_data_lerobot_round_trip(tmp_path: Path, video_dataset: tuple[Path, list[Episode]]) -> None:
    src, eps = video_dataset
    out = export_lerobot(src, tmp_path / "lerobot" / "synthetic")
    info = json.loads((out / lf.INFO_PATH).read_text())
    assert info["codebase_version"] == "v3.0"
    assert info["total_episodes"] == 3
    assert info["total_frames"] == 18
    assert info["total_tasks"] == 2
    assert info["fps"] == 10
    assert info["features"]["observation.images.wrist"]["shape"] == [64, 64, 3]
    assert info["features"]["observation.state"]["names"][:3] == ["joints_0", "joints_1", "joints_2"]
    data = pq.read_table(out / "data/chunk-000/file-000.parquet").to_pydict()
    assert data["episode_index"] == [0] * 6 + [1] * 3 + [2] * 9
    assert data["index"] == list(range(18))
    assert data["task_index"] == [0] * 6 + [1] * 3 + [0] * 9
    assert data["frame_index"][6:9] == [0, 1, 2]
    episodes = pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet").to_pydict()
    assert episodes["dataset_from_index"] == [0, 6, 9]
    assert episodes["videos/observation.images.scene/from_timestamp"] == [0.0, 0.6, 0.9]
    stats = json.loads((out / lf.STATS_PATH).read_text())
    assert stats["action"]["count"] == [18]
    assert np.asarray(stats["observation.images.scene"]["mean"]).shape == (3, 1, 1)

    back = import_lerobot(out, tmp_path / "back.h5")
    with EpisodeDataset(back) as ds:
        assert len(ds) == 3
        assert ds.embodiment == EpisodeDataset(src).embodiment
        assert ds.stats is not None
        assert ds.stats.action.count == 18
        for i, orig in enumerate(eps):
            ep = ds.episode(i)
            np.testing.assert_array_equal(ep.state, orig.state)
            np.testing.assert_array_equal(ep.actions, orig.actions)
            np.testing.assert_array_equal(ep.timestamps, orig.timestamps)
            assert ep.instruction == orig.instruction
            assert ep.success == orig.success
            assert ep.meta == orig.meta
            for cam in ("scene", "wrist"):
                err = np.abs(ep.images[cam].astype(np.float64) - orig.images[cam]).mean()
                assert err < MAX_MEAN_ABS_ERROR, f"episode {i} {cam}: mean abs error {err:.2f}/255"


def test_data_lerobot_errors(tmp_path: Path, video_dataset: tuple[Path, list[Episode]]) -> None:
    src, _ = video_dataset
    out = export_lerobot(src, tmp_path / "x")
    with pytest.raises(FileExistsError, match="already exists"):
        export_lerobot(src, out)
    info = json.loads((out / lf.INFO_PATH).read_text())
    info["codebase_version"] = "v2.1"
    (out / lf.INFO_PATH).write_text(json.dumps(info))
    with pytest.raises(ValueError, match=r"codebase_version is 'v2\.1', expected 'v3\.0'"):
        import_lerobot(out, tmp_path / "y.h5")
    with pytest.raises(FileNotFoundError, match=r"info\.json: missing"):
        import_lerobot(tmp_path / "nowhere", tmp_path / "z.h5")
