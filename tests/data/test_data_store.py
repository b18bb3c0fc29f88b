"""Store round trip, validation errors, and recorder behaviour."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from vla.data.episode import Episode, Step
from vla.data.reader import EpisodeDataset
from vla.data.recorder import Recorder
from vla.data.writer import DatasetWriter
from vla.spaces import Embodiment


def assert_same(a: Episode, b: Episode) -> None:
    assert a.instruction == b.instruction
    assert a.success == b.success
    assert a.meta == b.meta
    np.testing.assert_array_equal(a.state, b.state)
    np.testing.assert_array_equal(a.actions, b.actions)
    np.testing.assert_array_equal(a.timestamps, b.timestamps)
    assert a.images.keys() == b.images.keys()
    for cam in a.images:
        np.testing.assert_array_equal(a.images[cam], b.images[cam])


@pytest.mark.parametrize("compression", ["lzf", "gzip", "none"])
def test_data_store_round_trip(
    tmp_path: Path, rng: np.random.Generator, compression: str, embodiment: Embodiment, episode_factory: Any
) -> None:
    path = tmp_path / "rt.h5"
    writer = DatasetWriter(path, embodiment=embodiment, suite="synthetic", compression=compression)
    eps = [episode_factory(rng, n, index=i) for i, n in enumerate((4, 1, 6))]
    assert [writer.append(e) for e in eps] == [0, 1, 2]
    with EpisodeDataset(path) as ds:
        assert len(ds) == 3
        assert ds.embodiment == embodiment
        assert ds.cameras == ("scene", "wrist")
        assert ds.image_size == (12, 16)
        assert ds.suite == "synthetic"
        assert ds.lengths.tolist() == [4, 1, 6]
        assert ds.instructions == [e.instruction for e in eps]
        for i, e in enumerate(eps):
            assert_same(ds.episode(i), e)
        assert ds.stats is None
        with pytest.raises(ValueError, match="no normalization statistics"):
            ds.require_stats()


def test_data_store_is_robomimic_layout(small_dataset: tuple[Path, list[Episode]]) -> None:
    path, eps = small_dataset
    with h5py.File(path, "r") as f:
        demo = f["data/demo_2"]
        assert demo["obs/scene_image"].shape == (9, 12, 16, 3)
        assert demo["obs/scene_image"].chunks == (1, 12, 16, 3)
        assert demo["obs/state"].dtype == np.float32
        assert demo.attrs["num_samples"] == 9
        assert demo.attrs["family"] == "open"
        assert demo["dones"][-1] == 1
        assert f["data"].attrs["total"] == sum(len(e) for e in eps)
        assert json.loads(f["data"].attrs["env_args"])["env_name"] == "synthetic"


def test_data_store_append_reopens_and_checks_shapes(
    small_dataset: tuple[Path, list[Episode]],
    rng: np.random.Generator,
    embodiment: Embodiment,
    episode_factory: Any,
) -> None:
    path, _ = small_dataset
    writer = DatasetWriter(path, embodiment=embodiment)
    assert writer.append(episode_factory(rng, 2, index=6)) == 6
    bad = episode_factory(rng, 2)
    bad = Episode(
        images={"scene": bad.images["scene"]},
        state=bad.state,
        actions=bad.actions,
        timestamps=bad.timestamps,
        instruction="x",
        success=True,
    )
    with pytest.raises(ValueError, match=r"small\.h5: new episode's cameras is \['scene'\]"):
        writer.append(bad)
    with EpisodeDataset(path) as ds:  # the refused append left the file as it was
        assert len(ds) == 7


def test_data_store_rejects_wrong_state_dim(
    tmp_path: Path, rng: np.random.Generator, embodiment: Embodiment, episode_factory: Any
) -> None:
    writer = DatasetWriter(tmp_path / "e.h5", embodiment=embodiment)
    ep = episode_factory(rng, 3)
    wrong = Episode(
        images=ep.images,
        state=np.zeros((3, 4), np.float32),
        actions=ep.actions,
        timestamps=ep.timestamps,
        instruction="x",
        success=True,
    )
    with pytest.raises(ValueError, match="state has 4 dims, embodiment 'synthetic_arm' declares 5"):
        writer.append(wrong)


def test_data_store_reports_corrupt_fields(small_dataset: tuple[Path, list[Episode]]) -> None:
    path, _ = small_dataset
    with h5py.File(path, "r+") as f:
        del f["data/demo_3/obs/state"]
        f["data/demo_3/obs"].create_dataset("state", data=np.zeros((7, 4), np.float32))
    with pytest.raises(
        ValueError, match=r"small\.h5: demo_3/obs/state has shape \(7, 4\), expected \(7, 5\)"
    ):
        EpisodeDataset(path)
    with h5py.File(path, "r+") as f:
        del f["data/demo_3/obs/state"]
        f["data/demo_3/obs"].create_dataset("state", data=np.zeros((7, 5), np.float64))
    with pytest.raises(ValueError, match=r"demo_3/obs/state has dtype float64, expected float32"):
        EpisodeDataset(path)
    with h5py.File(path, "r+") as f:
        del f["data/demo_3/actions"]
    with pytest.raises(ValueError, match=r"demo_3: missing 'actions'"):
        EpisodeDataset(path)


def test_data_store_truncated_file_error(small_dataset: tuple[Path, list[Episode]]) -> None:
    path, _ = small_dataset
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 3])
    with pytest.raises(ValueError, match=r"small\.h5: not a readable HDF5 file"):
        EpisodeDataset(path)
    path.write_bytes(b"not hdf5 at all")
    with pytest.raises(ValueError, match="not a readable HDF5 file"):
        EpisodeDataset(path)
    with pytest.raises(FileNotFoundError, match="no such dataset"):
        EpisodeDataset(path.with_name("missing.h5"))


def test_data_episode_validation() -> None:
    with pytest.raises(ValueError, match=r"images\['scene'\] has dtype float32, expected uint8"):
        Step(
            images={"scene": np.zeros((4, 4, 3), np.float32)},
            state=np.zeros(2, np.float32),
            action=np.zeros(1, np.float32),
            timestamp=0.0,
        )
    with pytest.raises(ValueError, match="actions has 2 steps, expected 3"):
        Episode(
            images={"scene": np.zeros((3, 4, 4, 3), np.uint8)},
            state=np.zeros((3, 2), np.float32),
            actions=np.zeros((2, 1), np.float32),
            timestamps=np.zeros(3),
            instruction="x",
            success=True,
        )


def _step(rng: np.random.Generator, t: int) -> Step:
    return Step(
        images={"scene": rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)},
        state=np.full(5, t, np.float32),
        action=np.full(3, t, np.float32),
        timestamp=t / 10,
    )


def test_data_recorder_keeps_only_successes_unless_asked(
    tmp_path: Path, rng: np.random.Generator, embodiment: Embodiment
) -> None:
    path = tmp_path / "rec.h5"
    rec = Recorder(path, embodiment=embodiment)
    with pytest.raises(RuntimeError, match="before start"):
        rec.add(_step(rng, 0))
    for success in (True, False, True):
        rec.start("stack the blocks", {"family": "stack", "seed": 3})
        for t in range(4):
            rec.add(_step(rng, t))
        rec.end(success=success)
    kept = Recorder(path, keep_failed=True)
    kept.start("push it", {"family": "push"})
    kept.add(_step(rng, 0))
    assert kept.end(success=False) == 2
    with EpisodeDataset(path) as ds:
        assert len(ds) == 3
        assert [ds.info(i).success for i in range(3)] == [True, True, False]
        ep = ds.episode(0)
        assert ep.meta == {"family": "stack", "seed": 3}
        np.testing.assert_array_equal(ep.state[:, 0], [0, 1, 2, 3])


def test_data_store_damaged_chunk_error(small_dataset: tuple[Path, list[Episode]]) -> None:
    path, _ = small_dataset
    with h5py.File(path, "r") as f:
        offset = f["data/demo_2/obs/wrist_image"].id.get_chunk_info(1).byte_offset
    blob = bytearray(path.read_bytes())
    blob[offset : offset + 64] = b"\xff" * 64
    path.write_bytes(bytes(blob))
    with EpisodeDataset(path) as ds:
        ds.episode(1)  # undamaged episodes still read
        with pytest.raises(ValueError, match=r"small\.h5: demo_2/obs/wrist_image: unreadable"):
            ds.read_frames(2, "wrist")
        with pytest.raises(ValueError, match=r"small\.h5: demo_2: unreadable"):
            ds.episode(2)


def test_data_reads_plain_robomimic_file(tmp_path: Path) -> None:
    """A robomimic-style file written by another tool (no vla attributes) still opens."""
    path = tmp_path / "robomimic.h5"
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        for i, n in ((1, 3), (0, 4)):  # written out of order: the reader sorts demo_N numerically
            g = f.create_group(f"data/demo_{i}")
            g.create_dataset("obs/agentview_image", data=rng.integers(0, 255, (n, 8, 8, 3), dtype=np.uint8))
            g.create_dataset("obs/state", data=np.full((n, 2), i, np.float32))
            g.create_dataset("actions", data=np.zeros((n, 1), np.float32))
            g.attrs["num_samples"] = n
            g.attrs["lang"] = f"task {i}"
    with EpisodeDataset(path) as ds:
        assert len(ds) == 2
        assert ds.cameras == ("agentview",)
        assert ds.embodiment is None
        assert ds.lengths.tolist() == [4, 3]
        ep = ds.episode(1)
        assert ep.state[0, 0] == 1
        np.testing.assert_allclose(ep.timestamps, [0.0, 0.1, 0.2])
        assert ep.meta["lang"] == "task 1"
        assert ep.instruction == "task 1"
